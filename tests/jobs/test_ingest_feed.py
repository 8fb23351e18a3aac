"""Ingest semantics on exact feeds (a respx platform, a fresh real database per test)."""

import sys
from datetime import timedelta

import httpx
import psycopg
import pytest
import respx

from jobs import dirty_days, ingest, observations
from jobs.platform import PlatformClient, RetryPolicy
from registry import db
from tests.conftest import drop_database, new_database
from tests.jobs.ingest_fake import BASE, T0, FakePlatform, datastream, obs, thing
from tests.jobs.ingest_sim import table_state

THINGS = [thing(1, "W-1", [datastream(11), datastream(12, "water_level", "m")])]


@pytest.fixture
def url(pg_admin_url, template_db):
    target = new_database(pg_admin_url, template_db)
    yield target
    drop_database(pg_admin_url, target)


def rows_of(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(db.libpq_url(url), options="-c timezone=UTC") as conn:
        return conn.execute(sql, params).fetchall()


async def run(url: str, fake: FakePlatform, page_size: int = 100) -> ingest.PullResult:
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        retry = RetryPolicy(attempts=2, backoff_s=0.01)
        async with PlatformClient(BASE, retry=retry) as client:
            return await ingest.pull(url, BASE, page_size=page_size, client=client)


def slot(n: int):
    return T0 + timedelta(minutes=15 * n)


def corrected_feed() -> list[dict]:
    """Slot 1 sent, re-sent, corrected, corrected back; slot 2 sent twice the same; slot 3 once."""
    rows = [
        obs(101, 11, slot(1), 5.0, slot(1) + timedelta(minutes=1)),
        obs(102, 11, slot(1), 5.0, slot(1) + timedelta(minutes=2)),
        obs(103, 11, slot(1), 6.0, slot(1) + timedelta(minutes=3)),
        obs(104, 11, slot(2), 7.0, slot(1) + timedelta(minutes=3)),
        obs(105, 11, slot(1), 5.0, slot(1) + timedelta(minutes=4)),
        obs(106, 11, slot(2), 7.0, slot(2) + timedelta(minutes=5)),
        obs(107, 11, slot(3), 8.0, slot(3) + timedelta(minutes=1)),
    ]
    return rows


@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
async def test_corrections_are_revisions_wherever_the_pages_break(url, page_size):
    result = await run(url, FakePlatform(THINGS, corrected_feed()), page_size)
    stored = rows_of(
        url,
        "SELECT phenomenon_time, revision, value, platform_obs_id FROM observation ORDER BY 1, 2",
    )
    assert stored == [
        (slot(1), 0, 5.0, 101),
        (slot(1), 1, 6.0, 103),
        (slot(1), 2, 5.0, 105),
        (slot(2), 0, 7.0, 104),
        (slot(3), 0, 8.0, 107),
    ]
    assert (result.stored, result.revisions, result.duplicates) == (3, 2, 2)
    assert result.complete and result.pages == -(-7 // page_size)


async def test_a_second_pull_and_a_replay_change_nothing(url):
    fake = FakePlatform(THINGS, corrected_feed())
    await run(url, fake)
    before = table_state(url)
    again = await run(url, fake)
    assert table_state(url) == before
    assert again.overlap == again.rows > 0  # the rows at the watermark's time, read again
    # the whole feed once more from the start (say, a lost watermark): still nothing new
    rows_of(url, "DELETE FROM ingest_watermark RETURNING source")
    replay = await run(url, fake, page_size=3)
    assert (replay.stored, replay.revisions, replay.duplicates) == (0, 0, 7)
    assert table_state(url)["observation"] == before["observation"]


async def test_rows_stored_by_someone_else_meanwhile_are_merged_not_duplicated(url, monkeypatch):
    """The ingest copies rows later than anything it knows to be stored straight in; when another
    writer stored one of them meanwhile, the page is merged instead: revisions, not an error."""
    await run(url, FakePlatform(THINGS, [obs(1, 11, slot(1), 1.0, slot(1))]))
    rows_of(url, "DELETE FROM ingest_watermark RETURNING source")
    monkeypatch.setattr(observations.Store, "latest_stored", lambda self, since: {})  # stale
    result = await run(url, FakePlatform(THINGS, corrected_feed()))
    stored = rows_of(
        url,
        "SELECT phenomenon_time, revision, value, platform_obs_id FROM observation ORDER BY 1, 2",
    )
    assert stored == [
        (slot(1), 0, 1.0, 1),
        (slot(1), 1, 5.0, 101),
        (slot(1), 2, 6.0, 103),
        (slot(1), 3, 5.0, 105),
        (slot(2), 0, 7.0, 104),
        (slot(3), 0, 8.0, 107),
    ]
    assert (result.stored, result.revisions, result.duplicates) == (2, 3, 2)


async def test_a_backfill_into_a_month_without_partition_just_works(url):
    old = T0.replace(year=2025, month=3)
    rows = [obs(1, 11, old, 1.5, T0), obs(2, 11, old + timedelta(days=40), 2.5, T0)]
    result = await run(url, FakePlatform(THINGS, rows))
    assert result.stored == 2
    partitions = {
        name
        for (name,) in rows_of(
            url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'observation'::regclass",
        )
    }
    assert {"observation_202503", "observation_202504"} <= partitions


async def test_the_watermark_never_passes_rows_not_stored(url):
    rows = [obs(i, 11, slot(i), float(i), slot(i) + timedelta(minutes=1)) for i in range(1, 7)]
    fake = FakePlatform(THINGS, rows)
    fake.fail = {n: httpx.Response(503) for n in range(3, 10)}  # Things, page 1, then down
    switch_interval = sys.getswitchinterval()
    with pytest.raises(ingest.PullFailed, match="503") as failed:
        await run(url, fake, page_size=2)
    assert sys.getswitchinterval() == switch_interval  # the pull's own setting is undone
    assert failed.value.result.stored == 2
    ((rt, oid),) = rows_of(url, "SELECT result_time, platform_obs_id FROM ingest_watermark")
    assert (rt, oid) == (slot(2) + timedelta(minutes=1), 2)
    assert rows_of(url, "SELECT count(*) FROM observation") == [(2,)]

    fake.fail = {}
    resumed = await run(url, fake, page_size=2)
    assert resumed.stored == 4 and resumed.complete
    assert rows_of(url, "SELECT count(*), count(DISTINCT platform_obs_id) FROM observation") == [
        (6, 6)
    ]


async def test_a_page_that_fails_to_store_leaves_the_watermark_before_it(url, monkeypatch):
    rows = [obs(i, 11, slot(i), float(i), slot(i) + timedelta(minutes=1)) for i in range(1, 7)]
    store, calls = observations.Store._store, []

    def failing(self, batch, merge, new):
        calls.append(1)
        if len(calls) == 2:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return store(self, batch, merge, new)

    monkeypatch.setattr(observations.Store, "_store", failing)
    with pytest.raises(ingest.PullFailed, match="closed the connection"):
        await run(url, FakePlatform(THINGS, rows), page_size=2)
    assert rows_of(url, "SELECT platform_obs_id FROM ingest_watermark") == [(2,)]
    monkeypatch.setattr(observations.Store, "_store", store)
    await run(url, FakePlatform(THINGS, rows), page_size=2)
    assert rows_of(url, "SELECT count(*) FROM observation") == [(6,)]


async def test_an_unknown_datastream_resyncs_things_once_then_is_quarantined(url):
    rows = [
        obs(1, 11, slot(1), 1.0),
        obs(2, 13, slot(1), 2.0),  # a well added since the last sync
        obs(3, 99, slot(1), 3.0),  # never registered
        obs(4, 13, slot(2), 4.0),
    ]
    fake = FakePlatform(THINGS, rows)
    fake.feed_order()
    original = fake._handle

    def things_grow(request):
        if request.url.path.endswith("/Things") and fake.things_requests == 1:
            fake.things = [*THINGS, thing(2, "W-2", [datastream(13)])]
        return original(request)

    fake._handle = things_grow
    result = await run(url, fake)
    assert fake.things_requests == 2  # the pull's own sync, then one more for the unknown ids
    assert result.stored == 3 and dict(result.quarantined) == {"unknown_datastream": 1}
    assert rows_of(url, "SELECT datastream_platform_id, platform_obs_id FROM quarantine") == [
        ("99", 3)
    ]
    assert [len(r.rejected) for r in result.things] == [0, 0]


async def test_rows_without_id_or_time_are_quarantined_once_even_when_read_again(url):
    good = [obs(i, 11, slot(i), float(i), slot(3)) for i in (1, 2)]
    broken = obs(0, 11, slot(1), 9.0, slot(3))
    del broken["@iot.id"]
    fake = FakePlatform(THINGS, [good[0], broken, good[1]])
    await run(url, fake)
    await run(url, fake)  # the same resultTime is read again: the broken row comes back
    assert rows_of(url, "SELECT reason, platform_obs_id FROM quarantine") == [("malformed", None)]
    assert rows_of(url, "SELECT count(*) FROM observation") == [(2,)]


async def test_one_pull_at_a_time(url):
    with psycopg.connect(db.libpq_url(url)) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", (observations.LOCK,))
        with pytest.raises(ingest.PullBusy):
            await run(url, FakePlatform(THINGS, corrected_feed()))


async def test_a_pull_job_records_its_run(url):
    with respx.mock(assert_all_called=False) as router:
        FakePlatform(THINGS, corrected_feed()).install(router)
        await ingest.pull_job("w1", url, BASE)
        with pytest.raises(ingest.PullBusy, match="has run already"):
            await ingest.pull_job("w1", url, BASE)
    ((status, counts),) = rows_of(url, "SELECT status, counts FROM job_run WHERE job = 'pull'")
    assert status == "SUCCEEDED" and counts["stored"] == 3 and counts["revisions"] == 2


async def test_a_rollup_between_two_pages_still_gets_the_later_pages_day(url, monkeypatch):
    """A pull sends each dirty-day mark once; when a rollup claims that mark between two pages
    of the day, the later page marks the day again, so its rows are rolled up too."""
    store = observations.Store.store
    pages = []

    def store_then_claim(self, batch):
        stored = store(self, batch)
        pages.append(batch)
        if len(pages) == 1:  # a rollup, on its own connection, claims the day's marks
            with psycopg.connect(db.libpq_url(url), autocommit=False) as rollup:
                rollup.execute(dirty_days.CLAIMS_LOCK)
                rollup.execute(dirty_days.COUNT_CLAIM)
                rollup.execute("DELETE FROM dirty_day")
        return stored

    monkeypatch.setattr(observations.Store, "store", store_then_claim)
    rows = [obs(1, 11, slot(1), 1.0), obs(2, 11, slot(2), 2.0)]  # the same day, one per page
    result = await run(url, FakePlatform(THINGS, rows), page_size=1)
    assert result.stored == 2 and len(pages) == 2
    assert len(rows_of(url, "SELECT datastream_id, day FROM dirty_day")) == 1
