"""The server over HTTP: SensorThings reads, paging, /truth against an independent replay, faults."""

from __future__ import annotations

import itertools
import math
import time
from urllib.parse import urljoin

import httpx
import pytest

from monitorsim import build_app, run_in_thread
from monitorsim.config import parse_time
from monitorsim.creditcode import is_valid
from tests.monitorsim.monitorsim_replay import (
    FEED,
    NOW,
    datastream_index,
    get_json,
    parse,
    pull,
    pull_with_watermark,
    replay,
    small_config,
    things,
)

THING_KEYS = {
    "wellCode",
    "role",
    "aquifer",
    "projectCode",
    "projectName",
    "projectType",
    "operating",
    "companyCreditCode",
    "companyName",
    "city",
}
UNITS = {
    "extraction_volume": {"m3", "L"},
    "reinjection_volume": {"m3", "L"},
    "water_level": {"m"},
    "water_temperature": {"degC"},
    "water_quality_tds": {"mg/L"},
    "water_quality_ph": {"pH"},
}


@pytest.fixture(scope="module")
def feed(sim):
    """The whole visible feed, read once with an odd page size."""
    _, _, client = sim
    rows, links = pull(client, top=997)
    return rows, links


def test_things_carry_the_registry_keys(sim):
    _, app, client = sim
    all_things = things(client, top=7)
    assert len(all_things) == len(app.world.wells)
    assert len({t["@iot.id"] for t in all_things}) == len(all_things)
    for t in all_things:
        props = t["properties"]
        assert set(props) == THING_KEYS
        assert props["role"] in {"EXTRACTION", "REINJECTION", "MONITORING"}
        assert props["projectType"] in {
            "CLOSED_LOOP",
            "SHALLOW_WATER_SOURCE",
            "MEDIUM_DEEP",
            "DIRECT_USE",
        }
        assert isinstance(props["operating"], bool)
        assert is_valid(props["companyCreditCode"])
        for ds in t["Datastreams"]:
            name = ds["ObservedProperty"]["name"]
            assert ds["unitOfMeasurement"]["symbol"] in UNITS[name]
            assert set(ds["unitOfMeasurement"]) == {"name", "symbol", "definition"}
            accumulation = (ds.get("properties") or {}).get("accumulation")
            if name.endswith("_volume"):
                assert accumulation in {"interval", "cumulative"}
            else:
                assert accumulation is None
    bare = client.get("/v1.1/Things?$top=2").json()["value"][0]
    assert "Datastreams" not in bare and "Datastreams@iot.navigationLink" in bare


def test_next_links_alternate_absolute_and_relative(sim, feed):
    url, _, client = sim
    _, links = feed
    assert len(links) > 4
    assert links[0].startswith(url + "/v1.1/Observations?")
    assert links[1].startswith("/v1.1/Observations?")
    assert {link.startswith("http") for link in links} == {True, False}
    body = client.get("/v1.1/Things?$top=3").json()
    assert body["@iot.nextLink"].startswith("http")


def test_feed_has_every_visible_row_exactly_once_in_order(sim, feed):
    _, app, _ = sim
    rows, _ = feed
    w = app.world
    visible = app.visible()
    assert 0 < visible < len(w)  # some rows are not visible yet at NOW
    assert len(rows) == visible
    assert [r["@iot.id"] for r in rows] == list(w.ids[:visible])
    keys = [(parse(r["resultTime"]), r["@iot.id"]) for r in rows]
    assert all(a < b for a, b in itertools.pairwise(keys))
    assert max(k[0] for k in keys) <= parse(NOW)
    assert sum(1 for a, b in itertools.pairwise(keys) if a[0] == b[0]) > 100  # ties
    assert any(a[1] > b[1] for a, b in itertools.pairwise(keys))  # id order != feed
    for r in rows[:50]:
        assert set(r) == {"@iot.id", "phenomenonTime", "resultTime", "result", "Datastream"}
        assert r["phenomenonTime"].endswith("+08:00") and r["resultTime"].endswith("Z")


def test_truth_matches_an_independent_replay_of_the_feed(sim, feed):
    _, _, client = sim
    rows, _ = feed
    index = datastream_index(things(client, top=50))
    expected = replay(rows, index)
    truth = client.get("/truth").json()
    assert truth["rows"] == len(rows)
    assert truth["watermark"]["@iot.id"] == rows[-1]["@iot.id"]
    assert set(truth["datastreams"]) == set(expected)
    for d, want in expected.items():
        got = truth["datastreams"][d]
        for key in ("stored", "quarantined", "duplicates", "corrections"):
            assert got[key] == want[key], (d, key, got, want)
        for key in ("sum", "volume"):
            if key in want:
                assert math.isclose(got[key], want[key], rel_tol=1e-9, abs_tol=1e-6), (d, key)
        assert ("volume" in got) == ("volume" in want)
    totals = truth["totals"]
    assert totals["stored"] == sum(e["stored"] for e in expected.values())
    assert totals["quarantinedRows"] == sum(
        sum(e["quarantined"].values()) for e in expected.values()
    )
    assert all(totals["quarantined"][r] > 0 for r in totals["quarantined"])
    assert totals["duplicates"] > 0 and totals["corrections"] > 0


def test_truth_at_an_earlier_time(sim):
    _, app, client = sim
    early = client.get("/truth", params={"now": "2026-11-13T00:00:00Z"}).json()
    assert early["rows"] == app.visible(parse_time("2026-11-13T00:00:00Z").timestamp())
    assert early["rows"] < client.get("/truth").json()["rows"]


def test_watermark_resume_inside_a_group_of_shared_result_times(sim, feed):
    _, app, client = sim
    rows, _ = feed
    w = app.world
    k = next(k for k in range(500, len(rows)) if w.rt[k - 1] == w.rt[k])  # k-1, k share a time
    first = client.get(FEED.format(t="2000-01-01T00:00:00Z", top=k)).json()["value"]
    last = first[-1]
    assert last["resultTime"] == rows[k]["resultTime"]  # the page ends inside the group
    mark = (parse(last["resultTime"]), last["@iot.id"])
    rest, _ = pull(client, since=last["resultTime"], top=333)
    rest = [r for r in rest if (parse(r["resultTime"]), r["@iot.id"]) > mark]
    assert [r["@iot.id"] for r in first + rest] == [r["@iot.id"] for r in rows]


def test_interrupted_and_resumed_pull_gets_everything_once(sim, feed):
    _, _, client = sim
    rows, _ = feed
    got = pull_with_watermark(client, top=1500)
    assert [r["@iot.id"] for r in got] == [r["@iot.id"] for r in rows]


def test_filter_gt_excludes_the_time_itself(sim, feed):
    _, _, client = sim
    rows, _ = feed
    t = rows[1000]["resultTime"]
    ge = client.get(FEED.format(t=t, top=5)).json()["value"]
    gt = client.get(FEED.format(t=t, top=5).replace(" ge ", " gt ")).json()["value"]
    assert ge[0]["resultTime"] == t
    assert all(parse(r["resultTime"]) > parse(t) for r in gt)
    offset = client.get(FEED.format(t="2026-11-13T08:00:00+08:00", top=1)).json()["value"]
    assert parse(offset[0]["resultTime"]) >= parse("2026-11-13T00:00:00Z")


def test_odata_options(sim):
    _, app, client = sim
    capped = client.get("/v1.1/Observations?$top=5000&$resultFormat=dataArray&foo=1").json()
    assert len(capped["value"]) == app.config.page_max == 2000  # unknown options are ignored
    assert "$top=2000" in capped["@iot.nextLink"]
    counted = client.get("/v1.1/Observations?$top=1&$count=true").json()
    assert counted["@iot.count"] == app.visible()
    asc = client.get("/v1.1/Observations?$orderby=resultTime asc,@iot.id asc&$top=1")
    assert asc.status_code == 200
    for query, target in (
        ("$top=abc", "$top"),
        ("$top=-1", "$top"),
        ("$skip=x", "$skip"),
        ("$filter=phenomenonTime ge 2026-01-01T00:00:00Z", "$filter"),
        ("$filter=resultTime ge yesterday", "$filter"),
        ("$orderby=phenomenonTime", "$orderby"),
        ("$orderby=resultTime desc", "$orderby"),
        ("$count=maybe", "$count"),
    ):
        r = client.get(f"/v1.1/Observations?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] == "BadRequest" and r.json()["error"]["target"] == target
    assert client.get("/v1.1/Datastreams").status_code == 404
    assert client.post("/v1.1/Observations").status_code == 405
    assert client.get("/v1.1").json()["value"][0]["name"] == "Things"


def test_rate_limit_fault(sim):
    _, _, client = sim
    r = client.post("/faults", json={"rate_limit_every": 3, "retry_after": 2})
    assert r.status_code == 200 and r.json()["requests"] == 0
    statuses = [client.get("/v1.1/Observations?$top=1") for _ in range(6)]
    assert [s.status_code for s in statuses] == [200, 200, 429, 200, 200, 429]
    assert statuses[2].headers["retry-after"] == "2"
    assert statuses[2].json()["error"]["code"] == "TooManyRequests"
    state = client.get("/faults").json()
    assert state["fired"] == {"rate_limit": 2} and state["requests"] == 6


def test_server_error_fault(sim):
    _, _, client = sim
    client.post("/faults", json={"error_every": 2})
    codes = [client.get("/v1.1/Things?$top=1").status_code for _ in range(6)]
    assert codes == [200, 503, 200, 500, 200, 502]


def test_truncated_body_fault(sim):
    _, _, client = sim
    client.post("/faults", json={"truncate_every": 2})
    ok = client.get("/v1.1/Observations?$top=100")
    cut = client.get("/v1.1/Observations?$top=100")
    assert ok.status_code == cut.status_code == 200
    ok.json()
    assert len(cut.content) == len(ok.content) // 2
    with pytest.raises(ValueError):
        cut.json()


def test_delay_fault(sim):
    _, _, client = sim
    client.post("/faults", json={"delay_ms": 300, "delay_every": 2})
    delayed = []
    for _ in range(2):
        t = time.perf_counter()
        client.get("/v1.1/Observations?$top=1")
        took = time.perf_counter() - t
        delayed.append(client.get("/faults").json()["fired"].get("delay", 0))
    assert delayed == [0, 1]  # only the second request was held back …
    assert took >= 0.3  # … for the whole delay (a lower bound: the server slept that long)


def test_repeating_next_link_fault(sim):
    _, _, client = sim
    client.post("/faults", json={"repeat_next_link": 1})
    url = FEED.format(t="2000-01-01T00:00:00Z", top=10)
    response = client.get(url)
    first = response.json()
    again_url = urljoin(str(client.base_url) + "/", first["@iot.nextLink"])
    assert httpx.URL(again_url).params == response.request.url.params
    again = client.get(again_url).json()  # the fault fired once: now a real next page
    assert again["value"] == first["value"]
    assert "$skip=10" in again["@iot.nextLink"]


def test_missing_next_link_fault_then_resume(sim, feed):
    _, _, client = sim
    rows, _ = feed
    client.post("/faults", json={"drop_next_link": 1})
    page = client.get(FEED.format(t="2000-01-01T00:00:00Z", top=100)).json()
    assert len(page["value"]) == 100 and "@iot.nextLink" not in page
    got = pull_with_watermark(client, top=2000)  # stops early once, resumes from its mark
    assert [r["@iot.id"] for r in got] == [r["@iot.id"] for r in rows]


def test_all_faults_at_once_lose_nothing(sim, feed):
    _, _, client = sim
    rows, _ = feed
    client.post(
        "/faults",
        json={
            "rate_limit_every": 5,
            "retry_after": 0,
            "error_every": 7,
            "truncate_every": 4,
            "repeat_next_link": 2,
            "drop_next_link": 1,
            "delay_ms": 5,
            "delay_every": 3,
        },
    )
    got = pull_with_watermark(client, top=1777)
    assert [r["@iot.id"] for r in got] == [r["@iot.id"] for r in rows]
    fired = client.get("/faults").json()["fired"]
    assert set(fired) == {
        "rate_limit",
        "error",
        "truncate",
        "repeat_next_link",
        "drop_next_link",
        "delay",
    }


def test_bad_fault_requests(sim):
    _, _, client = sim
    assert client.post("/faults", json={"nope": 1}).status_code == 400
    assert client.post("/faults", json={"error_every": -1}).status_code == 400
    assert client.post("/faults", content=b"{not json").status_code == 400
    assert client.get("/faults").json()["config"]["error_every"] == 0


def test_scenario_describes_roles_and_outage(sim):
    _, app, client = sim
    s = client.get("/scenario").json()
    assert s["scenario"] == "faults" and s["clock"] == "frozen" and s["now"] == NOW
    roles = {c["role"] for c in s["companies"]}
    assert roles >= {
        "compliant",
        "low_reinjection_80",
        "metering_gaps",
        "no_reinjection",
        "closed_loop",
        "direct_use",
        "cumulative_meters",
    }
    assert s["outage"]["hours"] == 6 and s["outage"]["backfill"] == {"delayHours": 26.0}
    assert s["counts"]["observations"] == len(app.world)
    assert s["counts"]["visible"] == app.visible()
    wells = [w for c in s["companies"] for p in c["projects"] for w in p["wells"]]
    assert len(wells) == s["counts"]["wells"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_clock_moves_and_new_rows_appear():
    app = build_app(small_config(http_faults={"reset": True}))
    url, stop, app = run_in_thread(app=app)
    try:
        with httpx.Client(base_url=url) as client:
            before, _ = pull(client, top=5000)
            mark = before[-1]
            clock = client.post("/clock", json={"advance_seconds": 3600}).json()
            assert clock["now"] == "2026-11-15T05:00:00Z" and clock["clock"] == "frozen"
            new, _ = pull(client, since=mark["resultTime"], top=5000)
            new = [r for r in new if r["@iot.id"] != mark["@iot.id"]]
            assert len(before) + len(new) == clock["visible"] > len(before)
            assert all(parse(r["resultTime"]) <= parse("2026-11-15T05:00:00Z") for r in new)
            assert client.post("/clock", json={"now": "wall"}).json()["clock"] == "wall"
            assert client.post("/clock", json={"now": "not a time"}).status_code == 400
    finally:
        stop()


def test_wall_clock_demo_shows_only_the_past():
    now = time.time()
    config = small_config(
        scenario="demo",
        start=parse_time(time.strftime("%Y-%m-%d", time.gmtime(now - 86400))),
        days=3,
        now=None,
        wall_clock=True,
    )
    url, stop, app = run_in_thread(config)
    try:
        s = httpx.get(url + "/scenario").json()
        assert s["clock"] == "wall"
        assert 0 < s["counts"]["visible"] < s["counts"]["observations"]
        last = app.world.rt[s["counts"]["visible"] - 1]
        assert last <= time.time()
    finally:
        stop()


def test_get_json_helper_gives_up(sim):
    _, _, client = sim
    client.post("/faults", json={"error_every": 1})
    with pytest.raises(AssertionError):
        get_json(client, "/v1.1/Things", retries=3)
