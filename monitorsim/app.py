"""The HTTP side: a bare ASGI app serving SensorThings 1.1 reads plus monitorsim's own endpoints.

A bare ASGI callable rather than a framework: the hot path is one bytes body built from arrays,
and the fault injection needs full control of status, headers and (truncated) bodies.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter, OrderedDict
from urllib.parse import parse_qsl

import msgspec

from .config import Config, iso_local, iso_utc, parse_time
from .feed import Feed
from .generator import CITIES, PROPERTIES, PROPERTY_ID, UNITS, World
from .odata import ODataError, parse
from .truth import truth

_json = msgspec.json.Encoder()
VERSION = "v1.1"
FAULT_DEFAULTS = {
    "rate_limit_every": 0,  # every Nth /v1.1 request: 429 with Retry-After
    "retry_after": 1,  # seconds, the Retry-After of those 429s
    "error_every": 0,  # every Mth /v1.1 request: a 5xx (503, 500, 502 in turn)
    "truncate_every": 0,  # every Kth /v1.1 request: 200 with the body cut in half
    "delay_ms": 0,  # sleep this long before answering ...
    "delay_every": 1,  # ... every Jth /v1.1 request
    "repeat_next_link": 0,  # the next n feed pages with a nextLink point to themselves
    "drop_next_link": 0,  # the next n feed pages with a nextLink lose it (the client stops early)
    # the feed's last page ends with n more rows stamped 2099 (a platform clock gone wrong): they
    # are in no world, so /truth leaves them out; a correct client quarantines them once
    "far_future_rows": 0,
}


class Faults:
    """HTTP-level faults, deterministic: they fire on request counts, never at random."""

    def __init__(self, initial: dict):
        self.config = dict(FAULT_DEFAULTS)
        self.update(initial)

    def update(self, changes: dict) -> None:
        if not isinstance(changes, dict):
            raise ODataError("POST /faults takes a JSON object")
        changes = dict(changes)
        if changes.pop("reset", False):
            self.config = dict(FAULT_DEFAULTS)
        unknown = set(changes) - set(FAULT_DEFAULTS)
        if unknown:
            raise ODataError(
                f"unknown fault knobs {sorted(unknown)}; known: {list(FAULT_DEFAULTS)}"
            )
        for key, value in changes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ODataError(f"{key} must be a non-negative integer")
            self.config[key] = value
        self.requests = 0  # counting restarts with every change
        self.fired: Counter = Counter()

    def state(self) -> dict:
        return {"config": self.config, "requests": self.requests, "fired": dict(self.fired)}

    def tick(self) -> tuple[int, str | None, bool]:
        """Count a /v1.1 request: (delay ms, 'rate_limit' | 'error' | None, truncate?)."""
        self.requests += 1
        n, c = self.requests, self.config
        delay = c["delay_ms"] if c["delay_ms"] and n % max(c["delay_every"], 1) == 0 else 0
        if delay:
            self.fired["delay"] += 1
        kind = None
        if c["rate_limit_every"] and n % c["rate_limit_every"] == 0:
            kind = "rate_limit"
        elif c["error_every"] and n % c["error_every"] == 0:
            kind = "error"
        if kind:
            self.fired[kind] += 1
        truncate = bool(kind is None and c["truncate_every"] and n % c["truncate_every"] == 0)
        return delay, kind, truncate

    def take(self, key: str) -> bool:
        """Use up one of a one-shot fault (repeat_next_link, drop_next_link)."""
        if self.config[key] > 0:
            self.config[key] -= 1
            self.fired[key] += 1
            return True
        return False


class Clock:
    """The server's "now": frozen at a time, or the wall clock."""

    def __init__(self, frozen: float | None):
        self.frozen = frozen

    def now(self) -> float:
        return self.frozen if self.frozen is not None else time.time()


class MonitorSim:
    def __init__(self, config: Config, world: World | None = None):
        self.world = world or World(config)
        self.config = self.world.config
        self.feed = Feed(self.world)
        c = self.config
        frozen = None if c.wall_clock else (c.now.timestamp() if c.now else self.world.last_rt)
        self.clock = Clock(frozen)
        self.faults = Faults(c.http_faults)
        self._truth: OrderedDict[int, dict] = OrderedDict()
        self._things: dict[tuple[bool, int], list[bytes]] = {}  # (expand, changes applied)

    # ---- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        try:
            if path.startswith(f"/{VERSION}"):
                await self._sensorthings(scope, path, method, send)
                return
            route = _ROUTES.get(path)
            if route is None:
                raise ODataError(f"no such resource: {path}", status=404)
            methods, handler = route
            if method not in methods:
                raise ODataError(f"{method} not allowed on {path}", status=405)
            body = await _read_body(receive) if method == "POST" else b""
            status, payload = handler(self, scope, body)
            await _respond(send, status, _json.encode(payload))
        except ODataError as e:
            await _respond(send, e.status, _json.encode(e.body()))

    async def _sensorthings(self, scope, path: str, method: str, send) -> None:
        if method != "GET":
            raise ODataError("this platform is read-only", status=405)
        resource = path[len(VERSION) + 2 :]
        if resource not in ("Things", "Observations", ""):
            raise ODataError(f"no such resource: {path}", status=404)
        delay, kind, truncate = self.faults.tick()
        if delay:
            await asyncio.sleep(delay / 1000)
        if kind == "rate_limit":
            retry = str(self.faults.config["retry_after"]).encode()
            body = _json.encode(
                {"error": {"code": "TooManyRequests", "message": "rate limit exceeded"}}
            )
            await _respond(send, 429, body, [(b"retry-after", retry)])
            return
        if kind == "error":
            status = (503, 500, 502)[(self.faults.fired["error"] - 1) % 3]
            body = _json.encode({"error": {"code": str(status), "message": "upstream failure"}})
            await _respond(send, status, body)
            return
        if resource == "Observations":
            body = self._observations(scope)
        elif resource == "Things":
            body = self._things_page(scope)
        else:
            body = self._service_root(scope)
        if truncate:
            self.faults.fired["truncate"] += 1
            body = body[: len(body) // 2]
        await _respond(send, 200, body)

    # ---- SensorThings ----------------------------------------------------------------------
    def _observations(self, scope) -> bytes:
        c, w = self.config, self.world
        q = parse(scope["query_string"], 100, c.page_max, feed=True)
        hi = self.visible()
        lo = 0
        if q.filter_time is not None:
            find = bisect.bisect_left if q.filter_op == "ge" else bisect.bisect_right
            lo = find(w.rt, q.filter_time, 0, hi)
        start = min(lo + q.skip, hi)
        end = min(start + q.top, hi)
        head = f'{{"@iot.count":{hi - lo},' if q.count else "{"
        link = None
        if end < hi and not self.faults.take("drop_next_link"):
            if self.faults.take("repeat_next_link"):
                query = scope["query_string"].decode("latin-1")
                link = self._link(scope, "Observations", query, start // q.top)
            else:
                query = q.next_query(end - lo, "resultTime,@iot.id")
                link = self._link(scope, "Observations", query, start // q.top)
        if link:
            head += f'"@iot.nextLink":{_json.encode(link).decode()},'
        rows = self.feed.rows_json(start, end)
        if end == hi and self.faults.config["far_future_rows"]:
            rows = ",".join(filter(None, [rows, self._far_future_rows()]))
        return (head + '"value":[' + rows + "]}").encode()

    def _far_future_rows(self) -> str:
        w = self.world
        first = 1000 + 2 * len(w)  # after every id of the world
        ds = min(w.datastreams)
        return ",".join(
            _json.encode(
                {
                    "@iot.id": first + 2 * i,
                    "phenomenonTime": "2099-01-01T08:00:00+08:00",
                    "resultTime": "2099-01-01T00:00:00Z",
                    "result": 1.0,
                    "Datastream": {"@iot.id": ds},
                }
            ).decode()
            for i in range(self.faults.config["far_future_rows"])
        )

    def _things_page(self, scope) -> bytes:
        q = parse(scope["query_string"], 100, self.config.things_page_max, feed=False)
        key = ("Datastreams" in (q.expand or ""), self.world.changes.applied(self.clock.now()))
        things = self._things.get(key)
        if things is None:
            things = self._things[key] = [
                _json.encode(self._thing(w, *key)) for w in self.world.wells
            ]
        start = min(q.skip, len(things))
        end = min(start + q.top, len(things))
        parts = [b'{"@iot.count":%d,' % len(things) if q.count else b"{"]
        if end < len(things):
            link = self._link(scope, "Things", q.next_query(end, None), start // q.top)
            parts.append(b'"@iot.nextLink":%s,' % _json.encode(link))
        parts += [b'"value":[', b",".join(things[start:end]), b"]}"]
        return b"".join(parts)

    def _link(self, scope, resource: str, query: str, page: int) -> str:
        """nextLink: absolute on even pages, server-relative on odd ones (platforms do both)."""
        relative = f"/{VERSION}/{resource}?{query}"
        if page % 2:
            return relative
        return f"{_base_url(scope)}{relative}"

    def _service_root(self, scope) -> bytes:
        base = f"{_base_url(scope)}/{VERSION}"
        return _json.encode(
            {
                "value": [
                    {"name": name, "url": f"{base}/{name}"}
                    for name in ("Things", "Datastreams", "ObservedProperties", "Observations")
                ],
                "serverSettings": {
                    "conformance": ["http://www.opengis.net/spec/iot_sensing/1.1/req/core"]
                },
            }
        )

    def _thing(self, well, expand: bool, applied: int = 0) -> dict:
        p = well.project
        operating, ptype = self.world.changes.state(well, applied)
        thing: dict = {
            "@iot.id": well.thing_id,
            "name": f"{well.code} {_ROLE_CN[well.role]}",
            "description": f"{p.company.name} {p.code} {_ROLE_CN[well.role]}",
            "properties": {
                "wellCode": well.code,
                "role": well.role,
                "aquifer": well.aquifer,
                "projectCode": p.code,
                "projectName": p.name,
                "projectType": ptype,
                "operating": operating,
                "companyCreditCode": p.company.credit_code,
                "companyName": p.company.name,
                "city": p.city,
            },
        }
        if not expand:
            thing["Datastreams@iot.navigationLink"] = f"Things({well.thing_id})/Datastreams"
            return thing
        thing["Datastreams"] = [_datastream(ds) for ds in well.datastreams]
        return thing

    # ---- monitorsim's own ------------------------------------------------------------------
    def visible(self, now: float | None = None) -> int:
        """Number of feed rows visible at ``now`` (resultTime <= now)."""
        return bisect.bisect_right(self.world.rt, self.clock.now() if now is None else now)

    def truth(self, now: float | None = None) -> dict:
        hi = self.visible(now)
        if hi not in self._truth:
            self._truth[hi] = truth(self.world, hi)
            while len(self._truth) > 4:
                self._truth.popitem(last=False)
        t = self._truth[hi]
        last = hi - 1
        return {
            "now": iso_utc(self.clock.now() if now is None else now),
            "watermark": None
            if hi == 0
            else {"resultTime": iso_utc(self.world.rt[last]), "@iot.id": self.world.ids[last]},
            **t,
        }

    def scenario(self) -> dict:
        c, w = self.config, self.world
        outage = None
        if w.outage:
            o_start = w.t0 + w.outage.start * 900
            o_end = w.t0 + w.outage.stop * 900
            outage = {
                "start": iso_utc(o_start),
                "end": iso_utc(o_end),
                "startLocal": iso_local(o_start),
                "endLocal": iso_local(o_end),
                "hours": (o_end - o_start) / 3600,
                "slots": len(w.outage),
                "note": "no data at all has a phenomenonTime in (start, end]",
                "backfill": None
                if c.outage_backfill_hours is None
                else {"delayHours": c.outage_backfill_hours},
            }
        return {
            "scenario": c.scenario,
            "seed": c.seed,
            "start": iso_utc(w.t0),
            "end": iso_utc(w.t0 + w.slots * 900),
            "now": iso_utc(self.clock.now()),
            "clock": "frozen" if self.clock.frozen is not None else "wall",
            "cadenceMinutes": 15,
            "outage": outage,
            "gapFraction": c.gap_fraction,
            "dataFaults": c.data_faults,
            "meterFaults": c.meter_faults,
            "meterSilenceHours": c.meter_silence_hours,
            "injected": w.injected,
            "counts": {
                "companies": len(w.companies),
                "projects": sum(len(co.projects) for co in w.companies),
                "wells": len(w.wells),
                "datastreams": len(w.datastreams),
                "observations": len(w),
                "visible": self.visible(),
            },
            "companies": [_company(co) for co in w.companies],
            "registryChanges": [
                {**ch, "at": iso_utc(ch["at"].timestamp())} for ch in c.registry_changes
            ],
        }


def _datastream(ds) -> dict:
    name, definition = UNITS[ds.unit]
    prop_name, prop_desc = PROPERTIES[PROPERTY_ID[ds.prop] - 1]
    out: dict = {
        "@iot.id": ds.id,
        "name": f"{ds.well.code} {ds.prop}",
        "description": prop_desc,
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "unitOfMeasurement": {"name": name, "symbol": ds.unit, "definition": definition},
    }
    if ds.accumulation:
        out["properties"] = {"accumulation": ds.accumulation}
    out["ObservedProperty"] = {
        "@iot.id": PROPERTY_ID[ds.prop],
        "name": prop_name,
        "definition": f"urn:shanxi:geothermal:property:{prop_name}",
        "description": prop_desc,
    }
    return out


def _company(co) -> dict:
    return {
        "creditCode": co.credit_code,
        "name": co.name,
        "city": co.city,
        "role": co.role,
        "filesMonthlyReports": co.files_reports,
        "projects": [
            {
                "projectCode": p.code,
                "projectName": p.name,
                "projectType": p.type,
                "city": p.city,
                "operating": p.operating,
                "aquifer": p.aquifer,
                "reinjectionRatio": p.spec.ratio if p.spec.ratio is not None else None,
                "features": list(p.spec.features),
                "heatingSeason": "{:02d}-{:02d}/{:02d}-{:02d}".format(
                    *CITIES[p.city][1], *CITIES[p.city][2]
                ),
                "wells": [
                    {
                        "thingId": w.thing_id,
                        "wellCode": w.code,
                        "role": w.role,
                        "aquifer": w.aquifer,
                        "datastreams": [
                            {
                                "id": ds.id,
                                "property": ds.prop,
                                "unit": ds.unit,
                                "accumulation": ds.accumulation,
                            }
                            for ds in w.datastreams
                        ],
                    }
                    for w in p.wells
                ],
            }
            for p in co.projects
        ],
    }


_ROLE_CN = {"EXTRACTION": "开采井", "REINJECTION": "回灌井", "MONITORING": "监测井"}


def _base_url(scope) -> str:
    for key, value in scope["headers"]:
        if key == b"host":
            return f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
    host, port = scope.get("server") or ("127.0.0.1", 80)
    return f"http://{host}:{port}"


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _respond(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _query(scope) -> dict[str, str]:
    return dict(parse_qsl(scope["query_string"].decode("latin-1")))


def _json_body(body: bytes) -> dict:
    try:
        return msgspec.json.decode(body) if body.strip() else {}
    except msgspec.DecodeError as e:
        raise ODataError(f"invalid JSON body: {e}") from None


def _get_truth(app: MonitorSim, scope, body: bytes):
    now = _query(scope).get("now")
    at = None
    if now:
        try:
            at = parse_time(now).timestamp()
        except ValueError:
            raise ODataError(f"bad now={now!r}", "now") from None
    return 200, app.truth(at)


def _get_scenario(app: MonitorSim, scope, body: bytes):
    return 200, app.scenario()


def _faults(app: MonitorSim, scope, body: bytes):
    if scope["method"] == "POST":
        app.faults.update(_json_body(body))
    return 200, app.faults.state()


def _clock(app: MonitorSim, scope, body: bytes):
    if scope["method"] == "POST":
        data = _json_body(body)
        clock = app.clock
        if data.get("now") == "wall":
            clock.frozen = None
        elif "now" in data:
            try:
                clock.frozen = parse_time(str(data["now"])).timestamp()
            except ValueError:
                raise ODataError(f"bad now {data['now']!r}", "now") from None
        if "advance_seconds" in data:
            clock.frozen = clock.now() + float(data["advance_seconds"])
    now = app.clock.now()
    return 200, {
        "now": iso_utc(now),
        "clock": "frozen" if app.clock.frozen is not None else "wall",
        "visible": app.visible(),
    }


def _health(app: MonitorSim, scope, body: bytes):
    return 200, {"status": "ok", "observations": len(app.world)}


_ROUTES = {
    "/": ({"GET"}, _health),
    "/healthz": ({"GET"}, _health),
    "/truth": ({"GET"}, _get_truth),
    "/scenario": ({"GET"}, _get_scenario),
    "/faults": ({"GET", "POST"}, _faults),
    "/clock": ({"GET", "POST"}, _clock),
}


def build_app(config: Config | None = None, world: World | None = None) -> MonitorSim:
    """The ASGI app for a config (generates the world up front)."""
    return MonitorSim(config or Config(), world)
