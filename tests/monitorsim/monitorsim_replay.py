"""Test helpers: a small SensorThings client and an independent replay of the ingest rules.

The replay applies the rules from the brief to the raw JSON (it knows nothing of the generator's
labels), so comparing it with /truth checks the generator and /truth against the rules.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter, defaultdict
from datetime import datetime
from urllib.parse import urljoin

import httpx

from monitorsim import Config
from monitorsim.config import parse_time

START = "2026-11-12"  # spans the 15 Nov start of the heating season outside 太原
NOW = "2026-11-15T04:00:00Z"  # noon local on 15 Nov: later rows exist but are not visible yet


def small_config(**overrides) -> Config:
    """Four days of the 'faults' scenario (heavy data faults), 'now' frozen inside them."""
    base = dict(scenario="faults", seed=11, start=parse_time(START), days=4, now=parse_time(NOW))
    return Config(**{**base, **overrides})


FEED = (
    "/v1.1/Observations?$filter=resultTime ge {t}&$orderby=resultTime,@iot.id&$top={top}"
    "&$expand=Datastream($select=@iot.id)"
)
LIMITS = {
    "water_temperature": (-5.0, 150.0),
    "water_quality_ph": (0.0, 14.0),
    "water_quality_tds": (0.0, 100_000.0),
    "water_level": (-100.0, 2000.0),
}


def get_json(client: httpx.Client, url: str, retries: int = 50) -> tuple[dict, int]:
    """GET with the retries a real client needs (429, 5xx, invalid JSON). Returns (body, tries)."""
    for attempt in range(1, retries + 1):
        r = client.get(url)
        if r.status_code == 429 or r.status_code >= 500:
            time.sleep(min(float(r.headers.get("retry-after", 0)), 0.01))
            continue
        r.raise_for_status()
        try:
            return r.json(), attempt
        except ValueError:
            continue
    raise AssertionError(f"gave up on {url}")


def pull(client: httpx.Client, since: str = "2000-01-01T00:00:00Z", top: int = 1000):
    """Read the feed from ``since`` to its end, following nextLink. Returns (rows, links)."""
    url = FEED.format(t=since, top=top)
    rows, links, seen = [], [], set()
    while url:
        seen.add(str(client.build_request("GET", url).url))
        body, _ = get_json(client, url)
        rows.extend(body["value"])
        link = body.get("@iot.nextLink")
        if link is None:
            break
        links.append(link)
        absolute = urljoin(str(client.base_url).rstrip("/") + "/", link)
        if absolute in seen:  # a repeating nextLink: don't loop, resume from the watermark
            break
        seen.add(absolute)
        url = absolute
    return rows, links


def pull_with_watermark(client: httpx.Client, top: int, max_pages: int | None = None) -> list:
    """The docs/platform.md client: watermark (resultTime, @iot.id); ask with ge, skip at or below.

    Stops after ``max_pages`` pages (to simulate a pull interrupted and resumed), else at the end.
    """
    mark: tuple[str, int] | None = None
    rows: list[dict] = []
    pages = 0
    while True:
        since = mark[0] if mark else "2000-01-01T00:00:00Z"
        url = FEED.format(t=since, top=top)
        progressed = False
        while url:
            body, _ = get_json(client, url)
            pages += 1
            for row in body["value"]:
                key = (parse(row["resultTime"]), row["@iot.id"])
                if mark is None or key > (parse(mark[0]), mark[1]):
                    rows.append(row)
                    mark = (row["resultTime"], row["@iot.id"])
                    progressed = True
            link = body.get("@iot.nextLink")
            if max_pages is not None and pages >= max_pages:
                return rows
            url = urljoin(str(client.base_url) + "/", link) if link else None
        if not progressed:
            return rows


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def datastream_index(things: list[dict]) -> dict[int, dict]:
    out = {}
    for thing in things:
        for ds in thing["Datastreams"]:
            out[ds["@iot.id"]] = {
                "property": ds["ObservedProperty"]["name"],
                "unit": ds["unitOfMeasurement"]["symbol"],
                "accumulation": (ds.get("properties") or {}).get("accumulation"),
            }
    return out


def classify(ds: dict, row: dict) -> tuple[str | None, float | None]:
    """(reason, value in canonical units) for one observation, by the rules of the brief."""
    r = row["result"]
    if isinstance(r, bool) or not isinstance(r, int | float) or math.isnan(r):
        return "not_a_number", None
    v = float(r) / (1000.0 if ds["unit"] == "L" else 1.0)
    prop = ds["property"]
    if prop.endswith("_volume"):
        if v < 0:
            return "negative_value", None
        cap = 1e10 if ds["accumulation"] == "cumulative" else 10_000.0
        if v > cap:
            return "out_of_range", None
    else:
        lo, hi = LIMITS[prop]
        if not lo <= v <= hi:
            return "out_of_range", None
    ahead = (parse(row["phenomenonTime"]) - parse(row["resultTime"])).total_seconds()
    if ahead > 15 * 60:
        return "future_time", None
    return None, v


def replay(rows: list[dict], datastreams: dict[int, dict]) -> dict:
    """What an ingest applying the rules stores, per datastream, shaped like /truth."""
    latest: dict[tuple[int, datetime], float] = {}
    quarantined: dict[int, Counter] = defaultdict(Counter)
    duplicates: Counter = Counter()
    corrections: Counter = Counter()
    for row in sorted(rows, key=lambda r: (parse(r["resultTime"]), r["@iot.id"])):
        d = row["Datastream"]["@iot.id"]
        reason, v = classify(datastreams[d], row)
        if reason:
            quarantined[d][reason] += 1
            continue
        key = (d, parse(row["phenomenonTime"]))
        if key not in latest:
            latest[key] = v
        elif latest[key] == v:
            duplicates[d] += 1
        else:
            latest[key] = v
            corrections[d] += 1
    series: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for (d, pt), v in latest.items():
        series[d].append((pt, v))
    out = {}
    for d, ds in datastreams.items():
        values = [v for _, v in sorted(series[d])]
        entry = {
            "stored": len(values),
            "sum": math.fsum(values),
            "quarantined": dict(quarantined[d]),
            "duplicates": duplicates[d],
            "corrections": corrections[d],
        }
        if ds["property"].endswith("_volume"):
            if ds["accumulation"] == "cumulative":
                steps = [b - a if b >= a else b for a, b in itertools.pairwise(values)]
                entry["volume"] = math.fsum(steps)
            else:
                entry["volume"] = entry["sum"]
        out[str(d)] = entry
    return out


def things(client: httpx.Client, top: int = 7) -> list[dict]:
    url = f"/v1.1/Things?$expand=Datastreams($expand=ObservedProperty)&$top={top}"
    out = []
    while url:
        body, _ = get_json(client, url)
        out.extend(body["value"])
        link = body.get("@iot.nextLink")
        url = urljoin(str(client.base_url) + "/", link) if link else None
    return out
