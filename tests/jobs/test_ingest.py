"""Ingest end to end: monitorsim's 'faults' scenario with every HTTP fault on, into a real database.

What is stored must equal monitorsim's /truth exactly — per datastream, the number of
observations, the sum of their latest values and the quarantine by reason — and a second pull
must change nothing.
"""

import httpx
import psycopg
import pytest

from jobs import ingest
from jobs.platform import PlatformClient, RetryPolicy
from registry import db
from tests.jobs.ingest_sim import assert_matches_truth, faults, get, monitorsim, table_state

SCENARIO = (
    "--scenario", "faults", "--seed", "7", "--start", "2026-09-26", "--days", "4",
    "--now", "2026-09-30T00:00:00+08:00",
    "--outage-start", "2026-09-27T01:00:00+08:00", "--outage-hours", "6",
    "--outage-backfill-hours", "20",
)  # fmt: skip
PAGE = 2_000


@pytest.fixture(scope="module")
def platform():
    with monitorsim(*SCENARIO) as base:
        # on top of the scenario's 429s, 5xx, truncated bodies and one self-linking page:
        # a lost nextLink, and answers slower than the client waits
        faults(base, drop_next_link=1, delay_ms=1500, delay_every=9)
        yield base


def client(base: str) -> PlatformClient:
    return PlatformClient(
        base,
        retry=RetryPolicy(attempts=8, backoff_s=0.05, backoff_max_s=0.5),
        timeout=httpx.Timeout(1.0, connect=5.0),
    )


async def pull(db_url: str, base: str, key: str) -> ingest.PullResult:
    async with client(base) as c:
        return await ingest.pull_job(key, db_url, base, page_size=PAGE, client=c)


@pytest.fixture(scope="module")
async def pulled(db_url, platform):
    """Pull until the feed's end is reached; the results of every pull."""
    truth = get(platform, "/truth")
    end = truth["watermark"]
    results: list[ingest.PullResult | ingest.PullFailed] = []
    for n in range(8):
        try:
            results.append(await pull(db_url, platform, f"test:{n}"))
        except ingest.PullFailed as exc:
            results.append(exc)
            continue
        mark = results[-1].watermark
        if mark and (ingest.utc_text(mark[0]), mark[1]) == (end["resultTime"], end["@iot.id"]):
            break
    return truth, results


def totals(results) -> dict:
    out = {"stored": 0, "revisions": 0, "duplicates": 0, "quarantined": {}}
    for r in results:
        r = r.result if isinstance(r, ingest.PullFailed) else r
        out["stored"] += r.stored
        out["revisions"] += r.revisions
        out["duplicates"] += r.duplicates
        for reason, n in r.quarantined.items():
            out["quarantined"][reason] = out["quarantined"].get(reason, 0) + n
    return out


async def test_every_fault_on_stored_equals_truth(db_url, platform, pulled):
    truth, results = pulled
    assert_matches_truth(db_url, truth)
    t = truth["totals"]
    assert totals(results) == {
        "stored": t["stored"],
        "revisions": t["corrections"],
        "duplicates": t["duplicates"],
        "quarantined": {k: v for k, v in t["quarantined"].items() if v},
    }
    fired = get(platform, "/faults")["fired"]
    for fault in ("rate_limit", "error", "truncate", "delay", "repeat_next_link", "drop_next_link"):
        assert fired.get(fault), f"{fault} never fired"


async def test_the_watermark_is_the_last_row_of_the_feed(db_url, pulled):
    truth, _ = pulled
    with psycopg.connect(db.libpq_url(db_url)) as conn:
        rt, oid = conn.execute(
            "SELECT result_time, platform_obs_id FROM ingest_watermark WHERE source = %s",
            (ingest.WATERMARK_SOURCE,),
        ).fetchone()
    assert (ingest.utc_text(rt), oid) == (
        truth["watermark"]["resultTime"],
        truth["watermark"]["@iot.id"],
    )


async def test_a_loop_fails_the_pull_and_every_pull_is_recorded(db_url, pulled):
    _, results = pulled
    failed = [r for r in results if isinstance(r, ingest.PullFailed)]
    assert failed and "nextLink loop" in str(failed[0])
    with psycopg.connect(db.libpq_url(db_url)) as conn:
        runs = conn.execute(
            "SELECT window_key, status, error, counts->>'stored' FROM job_run "
            "WHERE job = 'pull' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in runs] == [f"test:{n}" for n in range(len(results))]
    for run, result in zip(runs, results, strict=True):
        if isinstance(result, ingest.PullFailed):
            assert run[1] == "FAILED" and "nextLink loop" in run[2]
            assert int(run[3]) == result.result.stored
        else:
            assert run[1] == "SUCCEEDED" and run[2] is None and int(run[3]) == result.stored


async def test_corrections_became_revisions(db_url, pulled):
    truth, _ = pulled
    with psycopg.connect(db.libpq_url(db_url)) as conn:
        revisions = conn.execute("SELECT count(*) FROM observation WHERE revision > 0").fetchone()
        gaps = conn.execute(
            "SELECT count(*) FROM (SELECT datastream_id, phenomenon_time, max(revision) AS top, "
            "count(*) AS n FROM observation GROUP BY 1, 2) k WHERE top <> n - 1"
        ).fetchone()
    assert revisions[0] == truth["totals"]["corrections"] > 0
    assert gaps[0] == 0  # revisions count 0, 1, 2, … per key


async def test_dirty_days_are_the_local_days_of_every_stored_slot(db_url, pulled):
    with psycopg.connect(db.libpq_url(db_url)) as conn:
        missing = conn.execute(
            """
            SELECT DISTINCT datastream_id,
                   ((phenomenon_time - interval '15 minutes') AT TIME ZONE 'Asia/Shanghai')::date
            FROM observation
            EXCEPT SELECT datastream_id, day FROM dirty_day
            """
        ).fetchall()
        extra = conn.execute(
            """
            SELECT datastream_id, day FROM dirty_day
            EXCEPT SELECT DISTINCT datastream_id,
                   ((phenomenon_time - interval '15 minutes') AT TIME ZONE 'Asia/Shanghai')::date
            FROM observation
            """
        ).fetchall()
    assert missing == [] and extra == []


async def test_things_became_registry_versions(db_url, pulled):
    truth, _ = pulled
    with psycopg.connect(db.libpq_url(db_url)) as conn:
        streams = conn.execute("SELECT count(*) FROM datastream").fetchone()[0]
        wells = conn.execute(
            "SELECT count(*), count(DISTINCT well_id) FROM well_version"
        ).fetchone()
        sources = conn.execute("SELECT DISTINCT source FROM well_version").fetchall()
    assert streams == len(truth["datastreams"])
    assert wells[0] == wells[1]  # unchanged Things made no new versions, pull after pull
    assert sources == [("platform",)]


async def test_a_second_pull_changes_nothing(db_url, platform, pulled):
    faults(platform, reset=True)
    before = table_state(db_url)
    result = await pull(db_url, platform, "test:again")
    assert table_state(db_url) == before
    assert (result.stored, result.revisions, sum(result.quarantined.values())) == (0, 0, 0)
    assert result.complete and result.rows == result.overlap
