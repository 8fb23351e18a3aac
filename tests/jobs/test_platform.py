"""The platform client against exact HTTP shapes (respx): paging, retries, loops."""

import json
import math
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.platform import (
    FeedRow,
    NextLinkLoop,
    PlatformClient,
    PlatformError,
    RetryPolicy,
    as_json_row,
    link_key,
    parse_collection,
    parse_feed_page,
)

BASE = "http://platform.test"
FEED = f"{BASE}/v1.1/Observations"


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(sleeps=None, **retry) -> PlatformClient:
    return PlatformClient(
        BASE, retry=RetryPolicy(**retry), sleep=Sleeps() if sleeps is None else sleeps
    )


def page(rows, next_link=None) -> httpx.Response:
    body = {"value": rows}
    if next_link:
        body["@iot.nextLink"] = next_link
    return httpx.Response(200, json=body)


async def walk(c: PlatformClient, url: str) -> list:
    return [p async for p in c.walk(url)]


@respx.mock
async def test_next_links_absolute_and_relative_are_followed_until_absent():
    # a full page without a nextLink is the end: the size of a page proves nothing
    respx.get(FEED, params={"$skip": "4"}).mock(return_value=page([5, 6]))
    respx.get(FEED, params={"$skip": "2"}).mock(
        return_value=page([3, 4], "/v1.1/Observations?$top=2&$skip=4")
    )
    respx.get(FEED).mock(return_value=page([1, 2], f"{BASE}/v1.1/Observations?$top=2&$skip=2"))
    async with client() as c:
        pages = await walk(c, f"{FEED}?$top=2")
    assert [p.rows for p in pages] == [[1, 2], [3, 4], [5, 6]]
    assert pages[-1].next_url is None and pages[-1].loop is None


@respx.mock
async def test_429_waits_as_long_as_retry_after_says():
    when = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)
    respx.get(FEED).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(429, headers={"Retry-After": when}),  # an HTTP date (now)
            httpx.Response(503, headers={"Retry-After": "2"}),
            page([1]),
        ]
    )
    sleeps = Sleeps()
    async with client(sleeps) as c:
        (result,) = await walk(c, FEED)
    assert result.rows == [1]
    assert sleeps[0] == 7 and sleeps[1] <= 1 and sleeps[2] == 2
    assert c.stats.by_cause == {"http_429": 2, "http_503": 1}


@respx.mock
async def test_errors_timeouts_and_broken_json_are_retried_with_growing_jittered_backoff():
    respx.get(FEED).mock(
        side_effect=[
            httpx.Response(500),
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(200, content=b'{"value": [1, 2'),  # truncated
            httpx.Response(200, content=b"<html>bad gateway</html>"),
            page([1, 2]),
        ]
    )
    sleeps = Sleeps()
    async with client(sleeps, attempts=6, backoff_s=1.0, backoff_max_s=8.0) as c:
        (result,) = await walk(c, FEED)
    assert result.rows == [1, 2]
    ceilings = [1, 2, 4, 8, 8]
    assert len(sleeps) == 5
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


@respx.mock
async def test_retries_are_bounded():
    route = respx.get(FEED).mock(return_value=httpx.Response(502))
    async with client(attempts=3) as c:
        with pytest.raises(PlatformError, match="gave up after 3 attempts"):
            await walk(c, FEED)
    assert route.call_count == 3


@respx.mock
async def test_a_retry_after_beyond_the_limit_fails_the_request_at_once():
    route = respx.get(FEED).mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    async with client(retry_after_max_s=300) as c:
        with pytest.raises(PlatformError, match="Retry-After 3600"):
            await walk(c, FEED)
    assert route.call_count == 1


@respx.mock
async def test_client_errors_are_not_retried():
    route = respx.get(FEED).mock(return_value=httpx.Response(400, json={"error": "bad $filter"}))
    async with client() as c:
        with pytest.raises(PlatformError, match="HTTP 400"):
            await walk(c, FEED)
    assert route.call_count == 1


@respx.mock
async def test_a_next_link_already_followed_stops_the_walk():
    respx.get(FEED, params={"$skip": "0"}).mock(
        return_value=page([1], "/v1.1/Observations?$top=1&$skip=1")
    )
    respx.get(FEED, params={"$skip": "1"}).mock(
        # the same link again, spelled differently (absolute, other order, encoded)
        return_value=page([2], f"{BASE}/v1.1/Observations?%24skip=1&$top=1")
    )
    async with client() as c:
        pages = await walk(c, f"{FEED}?$top=1&$skip=0")
    assert [p.rows for p in pages] == [[1], [2]]
    assert pages[-1].loop is not None and pages[-1].next_url is None


@respx.mock
async def test_a_page_that_links_to_itself_is_a_loop():
    respx.get(FEED).mock(return_value=page([1], "/v1.1/Observations?$top=5"))
    async with client() as c:
        pages = await walk(c, f"{FEED}?$top=5")
    assert len(pages) == 1 and pages[0].loop


def test_observations_url_asks_in_utc_with_z_in_receipt_order_without_count():
    c = PlatformClient(BASE)
    since = datetime.fromisoformat("2026-12-01T08:30:00+08:00")
    url = httpx.URL(c.observations_url(since, 5000))
    assert url.path == "/v1.1/Observations"
    assert url.params["$filter"] == "resultTime ge 2026-12-01T00:30:00Z"
    assert url.params["$orderby"] == "resultTime,@iot.id"
    assert url.params["$top"] == "5000"
    assert "$count" not in url.params
    first = httpx.URL(c.observations_url(None, 10))
    assert "$filter" not in first.params


def test_link_keys_ignore_spelling():
    a = f"{BASE}/v1.1/Observations?$top=2&$filter=resultTime%20ge%202026-12-01T00:00:00Z"
    b = f"{BASE}/v1.1/Observations?%24filter=resultTime+ge+2026-12-01T00:00:00Z&$top=2"
    assert link_key(a) == link_key(b)


@respx.mock
async def test_things_with_paged_expanded_datastreams():
    things = f"{BASE}/v1.1/Things"
    respx.get(things, params={"$skip": "1"}).mock(return_value=page([{"@iot.id": 2}]))
    respx.get(f"{BASE}/v1.1/Things(1)/Datastreams").mock(return_value=page([{"@iot.id": 12}]))
    respx.get(things).mock(
        return_value=page(
            [
                {
                    "@iot.id": 1,
                    "Datastreams": [{"@iot.id": 11}],
                    "Datastreams@iot.nextLink": "/v1.1/Things(1)/Datastreams?$skip=1",
                }
            ],
            "/v1.1/Things?$skip=1",
        )
    )
    async with client() as c:
        got = await c.things()
    assert [t["@iot.id"] for t in got] == [1, 2]
    assert [d["@iot.id"] for d in got[0]["Datastreams"]] == [11, 12]


@respx.mock
async def test_a_loop_in_things_fails_rather_than_return_part_of_the_registry():
    respx.get(f"{BASE}/v1.1/Things").mock(return_value=page([{"@iot.id": 1}], "/v1.1/Things"))
    async with client() as c:
        with pytest.raises(NextLinkLoop):
            await c.things()


@respx.mock
async def test_json_with_bare_nan_is_read():
    respx.get(FEED).mock(return_value=httpx.Response(200, content=b'{"value": [{"result": NaN}]}'))
    async with client() as c:
        (result,) = await walk(c, FEED)
    assert result.rows[0]["result"] != result.rows[0]["result"]  # NaN


# ---------------------------------------------------------------- typed feed pages

_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
_feed_rows = st.fixed_dictionaries(
    {},
    optional={
        "@iot.id": st.integers(-(2**70), 2**70) | st.text(max_size=3) | _any_json,
        "phenomenonTime": st.just("2026-12-01T00:15:00+08:00") | _any_json,
        "resultTime": st.just("2026-11-30T16:08:53Z") | _any_json,
        "result": st.floats(allow_nan=False) | st.integers() | _any_json,
        "Datastream": st.fixed_dictionaries({"@iot.id": st.integers() | st.text(max_size=3)})
        | _any_json,
        "@iot.selfLink": st.text(max_size=5) | _any_json,
        "FeatureOfInterest@iot.navigationLink": st.text(max_size=5) | _any_json,
        "extra": _any_json,
    },
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_feed_rows, max_size=6), typed=st.lists(st.booleans(), max_size=6))
def test_a_feed_page_is_what_was_sent_however_it_is_parsed(rows, typed):
    """Well-formed rows become FeedRows and the rest stay as parsed, but every row says what the
    generic parse says: typed decoding changes nothing a quarantine record would show."""
    well_formed = {
        "@iot.id": 7,
        "phenomenonTime": "2026-12-01T00:15:00+08:00",
        "resultTime": "2026-11-30T16:08:53Z",
        "result": 1.5,
        "Datastream": {"@iot.id": 3},
    }
    rows = [well_formed if t else r for r, t in zip(rows, typed, strict=False)] + rows[len(typed) :]
    body = json.dumps({"value": rows, "@iot.nextLink": "next"}).encode()
    parsed = parse_feed_page(body)
    assert parsed["@iot.nextLink"] == "next"
    assert [as_json_row(r) for r in parsed["value"]] == parse_collection(body)["value"]
    assert all(type(r) is FeedRow for r, t in zip(parsed["value"], typed, strict=False) if t)


def test_a_feed_page_with_bare_nan_falls_back_and_keeps_the_well_formed_rows_typed():
    body = (
        b'{"value":[{"@iot.id":1,"phenomenonTime":"2026-12-01T00:15:00+08:00",'
        b'"resultTime":"2026-11-30T16:08:53Z","result":NaN,"Datastream":{"@iot.id":3}},'
        b'{"@iot.id":2,"phenomenonTime":"2026-12-01T00:15:00+08:00",'
        b'"resultTime":"2026-11-30T16:08:53Z","result":2.5,"Datastream":{"@iot.id":3},"x":1}]}'
    )
    first, second = parse_feed_page(body)["value"]
    assert type(first) is FeedRow and math.isnan(first.result)
    assert second == {**as_json_row(second), "x": 1} and type(second) is dict


def test_rows_as_standard_servers_send_them_are_typed():
    """FROST and others add self and navigation links to every row when no $select is asked."""
    row = {
        "@iot.selfLink": "https://p/v1.1/Observations(5)",
        "@iot.id": 5,
        "phenomenonTime": "2026-12-01T00:15:00+08:00",
        "resultTime": "2026-11-30T16:08:53Z",
        "result": 2.5,
        "Datastream@iot.navigationLink": "https://p/v1.1/Observations(5)/Datastream",
        "FeatureOfInterest@iot.navigationLink": "https://p/v1.1/Observations(5)/FeatureOfInterest",
        "Datastream": {"@iot.selfLink": "https://p/v1.1/Datastreams(3)", "@iot.id": 3},
    }
    (parsed,) = parse_feed_page(json.dumps({"value": [row]}).encode())["value"]
    assert type(parsed) is FeedRow and as_json_row(parsed) == row
