"""Rows that must neither stop the ingest nor make it skip rows, against monitorsim over HTTP:
values that fit no float, phenomenonTimes in year 1, and rows stamped 2099 at the feed's end."""

import httpx
import psycopg
import pytest

from jobs import ingest
from registry import db
from tests.jobs.ingest_sim import assert_matches_truth, faults, get, monitorsim, table_state

SCENARIO = (
    "--scenario", "demo", "--seed", "11", "--start", "2026-09-26", "--days", "3",
    "--now", "2026-09-28T00:00:00+08:00", "--outage-hours", "0",
    "--data-fault", "huge_integer=0.002", "--data-fault", "year_one=0.002",
)  # fmt: skip
LATER = "2026-09-29T00:00:00+08:00"
FAR_ROWS = 2


@pytest.fixture(scope="module")
def platform():
    with monitorsim(*SCENARIO) as base:
        faults(base, far_future_rows=FAR_ROWS)
        yield base


def far_ids(base: str) -> frozenset[int]:
    rows = httpx.get(f"{base}/v1.1/Observations?$filter=resultTime ge 2090-01-01T00:00:00Z").json()
    ids = frozenset(r["@iot.id"] for r in rows["value"])
    assert len(ids) == FAR_ROWS
    return ids


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(db.libpq_url(url)) as conn:
        return conn.execute(sql, params).fetchall()


def watermark(url: str) -> dict:
    ((rt, oid),) = query(url, "SELECT result_time, platform_obs_id FROM ingest_watermark")
    return {"resultTime": ingest.utc_text(rt), "@iot.id": oid}


def partitions(url: str) -> set[str]:
    rows = query(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'observation'::regclass",
    )
    return {name for (name,) in rows}


@pytest.fixture(scope="module")
async def first(db_url, platform):
    truth = get(platform, "/truth")
    result = await ingest.pull_job("poison:1", db_url, platform, page_size=1_000)
    return truth, result


async def test_poison_rows_are_quarantined_and_every_page_is_stored(db_url, platform, first):
    truth, result = first
    assert result.complete and result.error is None
    injected = get(platform, "/scenario")["injected"]
    assert injected["huge_integer"] > 0 and injected["year_one"] > 0
    assert_matches_truth(db_url, truth, ignore=far_ids(platform))
    quarantined = truth["totals"]["quarantined"]
    assert result.quarantined["early_time"] == quarantined["early_time"] > 0
    huge = query(db_url, "SELECT count(*) FROM quarantine WHERE raw->>'result' = %s", str(10**400))
    assert huge[0][0] > 0  # the integers were kept as sent


async def test_no_partition_for_an_impossible_time(db_url, first):
    assert partitions(db_url) == {"observation_202609"}


async def test_a_row_from_2099_is_quarantined_and_the_watermark_stays_on_the_last_due_row(
    db_url, platform, first
):
    truth, _ = first
    assert watermark(db_url) == truth["watermark"]
    rows = query(
        db_url,
        "SELECT platform_obs_id, reason FROM quarantine WHERE platform_obs_id = ANY(%s)",
        list(far_ids(platform)),
    )
    assert sorted(rows) == [(oid, "future_time") for oid in sorted(far_ids(platform))]


async def test_later_rows_are_pulled_and_the_2099_rows_stay_quarantined_once(
    db_url, platform, first
):
    before, _ = first
    httpx.post(f"{platform}/clock", json={"now": LATER}).raise_for_status()
    truth = get(platform, "/truth")
    assert truth["totals"]["stored"] > before["totals"]["stored"]  # rows arrived meanwhile

    result = await ingest.pull_job("poison:2", db_url, platform, page_size=1_000)
    assert result.stored > 0
    assert_matches_truth(db_url, truth, ignore=far_ids(platform))
    assert watermark(db_url) == truth["watermark"]
    counts = query(
        db_url,
        "SELECT count(*) FROM quarantine WHERE platform_obs_id = ANY(%s)",
        list(far_ids(platform)),
    )
    assert counts == [(FAR_ROWS,)]

    state = table_state(db_url)
    again = await ingest.pull_job("poison:3", db_url, platform, page_size=1_000)
    assert again.stored == 0 and again.quarantined == {"future_time": FAR_ROWS}
    assert table_state(db_url) == state
