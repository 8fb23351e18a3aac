"""A tiny SensorThings platform for respx: exact HTTP shapes for the ingest's edge cases."""

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import httpx
import respx

BASE = "http://platform.test"
CODE = "91350100M000100Y43"  # a valid unified social credit code
T0 = datetime(2026, 12, 1, tzinfo=UTC)
_CST = timezone(timedelta(hours=8))


def thing(thing_id: int, well: str, datastreams: list[dict], project: str = "P-1") -> dict:
    return {
        "@iot.id": thing_id,
        "name": well,
        "properties": {
            "wellCode": well,
            "role": "EXTRACTION",
            "aquifer": "O2",
            "projectCode": project,
            "projectType": "MEDIUM_DEEP",
            "operating": True,
            "companyCreditCode": CODE,
            "companyName": "晋能地热有限公司",
            "city": "太原",
        },
        "Datastreams": datastreams,
    }


def datastream(ds_id: int, prop: str = "extraction_volume", unit: str = "m3", acc=None) -> dict:
    out = {
        "@iot.id": ds_id,
        "name": f"ds {ds_id}",
        "unitOfMeasurement": {"symbol": unit},
        "ObservedProperty": {"name": prop},
    }
    if acc:
        out["properties"] = {"accumulation": acc}
    return out


def obs(oid: int, ds: int, pt: datetime, result, rt: datetime | None = None) -> dict:
    """An Observation as the feed sends it (phenomenonTime in +08:00, resultTime in Z)."""
    rt = rt or pt + timedelta(minutes=2)
    return {
        "@iot.id": oid,
        "phenomenonTime": pt.astimezone(_CST).isoformat(),
        "resultTime": rt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "result": result,
        "Datastream": {"@iot.id": ds},
    }


class FakePlatform:
    """Serves `things` and the feed `rows` (kept in feed order) with `$filter`/`$top`/`$skip`
    paging and relative nextLinks. Hooks: `fail` maps a request number to a response."""

    def __init__(self, things: list[dict], rows: list[dict]):
        self.things = things
        self.rows = rows
        self.requests: list[str] = []
        self.fail: dict[int, httpx.Response] = {}
        self.things_requests = 0

    def feed_order(self) -> None:
        self.rows.sort(key=lambda r: (r["resultTime"], r["@iot.id"]))

    def install(self, router: respx.MockRouter) -> None:
        router.get(url__startswith=f"{BASE}/v1.1/").mock(side_effect=self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        n = len(self.requests)
        if n in self.fail:
            return self.fail[n]
        parts = urlsplit(str(request.url))
        q = dict(parse_qsl(parts.query))
        top, skip = int(q.get("$top", 100)), int(q.get("$skip", 0))
        if parts.path.endswith("/Things"):
            self.things_requests += 1
            return httpx.Response(200, json={"value": self.things})
        rows = self.rows
        if "$filter" in q:
            since = q["$filter"].split(" ge ")[1]
            assert since.endswith("Z"), since
            since_t = datetime.fromisoformat(since)
            rows = [r for r in rows if datetime.fromisoformat(r["resultTime"]) >= since_t]
        assert "$count" not in q
        page = rows[skip : skip + top]
        body: dict = {"value": page}
        if skip + top < len(rows):
            rest = {k: v for k, v in q.items() if k != "$skip"}
            query = "&".join(f"{k}={v}" for k, v in rest.items())
            body["@iot.nextLink"] = f"/v1.1/Observations?{query}&$skip={skip + top}"
        return httpx.Response(200, json=body)
