"""The scoring run on a real PostgreSQL: what it appends to the credit file and when.

Each test has a database of its own (outage slots depend on every project in it).
"""

from datetime import date

import pytest
import sqlalchemy as sa

from jobs.rollup import run_rollup
from jobs.scoring_run import run_listing_expiry, run_scoring
from registry import db, reviews
from registry.rescoring import inputs_digest, load_inputs, rescore_in_session
from scoring.rulebook import load_rulebook
from tests.conftest import drop_database, new_database
from tests.jobs.metrics_world import World, local, slot_ends

RB = load_rulebook()
DEC = date(2025, 12, 1)


@pytest.fixture
def world(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    eng = db.make_engine(url)
    w = World(eng)
    w.url = url
    yield w
    eng.dispose()
    drop_database(pg_admin_url, url)


def _project(world, type="MEDIUM_DEEP"):
    cid = world.company()
    p = world.project(cid, type=type)
    for month in (date(2025, 11, 1), DEC):
        world.report(p, month)
    e = world.datastream(world.well(p, "EXTRACTION"), "extraction_volume")
    r = world.datastream(world.well(p, "REINJECTION"), "reinjection_volume")
    return cid, p, e, r


def _active(world, cid):
    return {
        row.key.split(":", 1)[0] + ":" + row.key.rsplit(":", 1)[1]: row
        for row in world.rows(
            "SELECT f.* FROM credit_finding f WHERE company_id = :c AND NOT EXISTS "
            "(SELECT 1 FROM finding_event e WHERE e.finding_id = f.id)",
            c=cid,
        )
    }


def _snapshot(world, cid):
    return world.rows(
        "SELECT * FROM score_snapshot WHERE company_id = :c ORDER BY id DESC LIMIT 1", c=cid
    )[0]


def _listings(world, cid):
    return world.rows(
        "SELECT l.*, e.how, e.reason AS end_reason FROM listing l "
        "LEFT JOIN listing_end e ON e.listing_id = l.id WHERE l.company_id = :c ORDER BY l.id",
        c=cid,
    )


def _run(world, now):
    run_rollup(world.engine)
    summary = run_scoring(world.engine, now=now)
    assert not summary.errors, summary.errors
    return summary


def test_late_data_voids_a_final_month_and_withdraws_its_listing(world):
    cid, _p, e, r = _project(world, "SHALLOW_WATER_SOURCE")
    december = slot_ends(local(2025, 12, 1), local(2026, 1, 1))
    world.observe(e, december, 10.0)
    world.observe(r, december, 0.0)  # metered, but nothing put back
    world.watermark(local(2026, 1, 5))
    _run(world, local(2026, 1, 6, 10))
    assert _snapshot(world, cid).grade == "D"
    (listing,) = _listings(world, cid)
    assert listing.critical and listing.how is None

    # The reinjection meter's readings are corrected (new revisions): 97 % was put back.
    world.observe(r, december, 9.7, revision=1)
    world.watermark(local(2026, 1, 7))
    summary = _run(world, local(2026, 1, 7, 10))
    assert summary.findings_voided == 2 and summary.listings_ended == 1
    assert _active(world, cid) == {}
    assert (_snapshot(world, cid).score, _snapshot(world, cid).grade) == (100, "A")
    (listing,) = _listings(world, cid)
    assert listing.how == "WITHDRAWN"
    voided = world.rows(
        "SELECT f.rule_id, e.kind, e.reason, e.recorded_by FROM finding_event e "
        "JOIN credit_finding f ON f.id = e.finding_id ORDER BY f.rule_id"
    )
    assert [(v.rule_id, v.kind, v.recorded_by) for v in voided] == [
        ("NO_REINJECTION", "VOIDED", "job:score"),
        ("REINJ_RATIO", "VOIDED", "job:score"),
    ]
    assert all("no longer found" in v.reason for v in voided)
    actors = {a for (a,) in world.rows("SELECT DISTINCT actor FROM audit_log WHERE "
                                       "table_name IN ('credit_finding', 'listing_end')")}  # fmt: skip
    assert actors == {"job:score"}


def test_a_provisional_finding_is_kept_while_only_its_numbers_move(world):
    cid, _p, e, r = _project(world)
    first = slot_ends(local(2026, 1, 1), local(2026, 1, 3))
    world.observe(e, first, 10.0)
    world.observe(r, first, 9.0)  # 90 %: within 10 pp of 98 % → MINOR
    world.watermark(local(2026, 1, 3, 0, 5))
    _run(world, local(2026, 1, 3, 1))
    (finding,) = _active(world, cid).values()
    assert (finding.rule_id, finding.severity, finding.final) == ("REINJ_RATIO", "MINOR", False)

    more = slot_ends(local(2026, 1, 3), local(2026, 1, 4))
    world.observe(e, more, 10.0)
    world.observe(r, more, 9.1)
    world.watermark(local(2026, 1, 4, 0, 5))
    summary = _run(world, local(2026, 1, 4, 1))
    assert summary.scored == 1 and summary.findings_added == 0
    assert list(_active(world, cid).values()) == [finding]

    # Severity changes: the finding is replaced, the old one voided with what changed.
    worse = slot_ends(local(2026, 1, 4), local(2026, 1, 6))
    world.observe(e, worse, 10.0)
    world.observe(r, worse, 2.0)
    world.watermark(local(2026, 1, 6, 0, 5))
    summary = _run(world, local(2026, 1, 6, 1))
    assert (summary.findings_added, summary.findings_voided) == (1, 1)
    (now,) = _active(world, cid).values()
    assert now.severity == "MAJOR" and now.id != finding.id
    (reason,) = world.rows("SELECT reason FROM finding_event WHERE finding_id = :f", f=finding.id)
    assert "severity" in reason[0] and "deduction" in reason[0]

    # The month turns final (watermark 3 days past its end): recorded again, as final.
    world.watermark(local(2026, 2, 4))
    _run(world, local(2026, 2, 4, 1))
    (final,) = _active(world, cid).values()
    assert final.final and final.severity == "MAJOR"


def test_an_overturned_appeal_withdraws_the_listing_it_carried(world):
    cid, _p, e, r = _project(world)
    december = slot_ends(local(2025, 12, 1), local(2026, 1, 1))
    world.observe(e, december, 10.0)
    world.observe(r, december, 4.0)
    world.watermark(local(2026, 1, 5))
    _run(world, local(2026, 1, 6))
    critical = _active(world, cid)["NO_REINJECTION:2025-12"]
    with world.engine.begin() as conn:  # what registry.reviews.decide_appeal appends
        appeal = conn.scalar(
            sa.text("INSERT INTO appeal (company_id, finding_id, filed_on, grounds, recorded_by) "
                    "VALUES (:c, :f, '2026-01-07', 'meter fault', 'r') RETURNING id"),
            {"c": cid, "f": critical.id},
        )  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO appeal_decision (appeal_id, outcome, reason, decided_by) "
                    "VALUES (:a, 'OVERTURNED', 'proven', 'r')"),
            {"a": appeal},
        )  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO finding_event (finding_id, kind, reason, appeal_id, recorded_by)"
                    " VALUES (:f, 'OVERTURNED', 'proven', :a, 'r')"),
            {"f": critical.id, "a": appeal},
        )  # fmt: skip
    summary = run_scoring(world.engine, now=local(2026, 1, 8))
    assert summary.findings_added == 0 and summary.findings_voided == 0
    (listing,) = _listings(world, cid)
    assert listing.how == "WITHDRAWN"
    snap = _snapshot(world, cid)
    assert (snap.score, snap.grade) == (85, "B") and critical.id not in snap.finding_ids


def test_listing_expiry_ends_a_listing_after_its_maximum(world):
    cid, _p, _e, _r = _project(world)
    world.watermark(local(2026, 1, 5))
    with world.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO listing (company_id, started_at, min_end, max_end, critical, "
                    "reason, finding_ids, recorded_by) VALUES (:c, '2023-01-01', '2024-01-01', "
                    "'2026-01-01', false, 'manual', '[]', 'admin')"),
            {"c": cid},
        )  # fmt: skip
    summary = run_listing_expiry(world.engine, now=local(2026, 1, 6))
    assert summary.companies == 1 and summary.listings_ended == 1
    (listing,) = _listings(world, cid)
    assert listing.how == "EXPIRED"
    assert run_listing_expiry(world.engine, now=local(2026, 1, 7)).companies == 0


def test_everything_rescores_and_snapshots_every_company(world):
    a = _project(world)[0]
    b = _project(world)[0]
    world.watermark(local(2026, 1, 5))
    _run(world, local(2026, 1, 6))
    assert run_scoring(world.engine, now=local(2026, 1, 6, 1)).scored == 0
    summary = run_scoring(world.engine, everything=True, now=local(2026, 1, 6, 1))
    assert (summary.scored, summary.snapshots) == (2, 2)
    # A new local day: everyone is looked at again (report due dates, deadlines pass).
    assert run_scoring(world.engine, now=local(2026, 1, 7, 0, 1)).scored == 2
    assert {_snapshot(world, c).grade for c in (a, b)} == {"A"}


def test_the_digest_is_stable_and_follows_the_inputs(world):
    cid, _p, e, r = _project(world)
    world.observe(e, slot_ends(local(2026, 1, 1), local(2026, 1, 2)), 10.0)
    world.watermark(local(2026, 1, 2, 0, 5))
    run_rollup(world.engine)
    now = local(2026, 1, 2, 1)
    with world.engine.connect() as conn:
        one = inputs_digest(load_inputs(conn, [cid], now=now, rulebook=RB)[cid].inputs)
        two = inputs_digest(load_inputs(conn, [cid], now=now, rulebook=RB)[cid].inputs)
    assert one == two and len(one) == 64
    world.observe(r, slot_ends(local(2026, 1, 1), local(2026, 1, 2)), 10.0)
    run_rollup(world.engine)
    with world.engine.connect() as conn:
        three = inputs_digest(load_inputs(conn, [cid], now=now, rulebook=RB)[cid].inputs)
    assert three != one


async def test_a_reviewer_rescores_one_company_in_the_same_transaction(world):
    cid, p, _e, _r = _project(world)
    world.watermark(local(2026, 1, 5))
    run_rollup(world.engine)
    engine = db.make_async_engine(world.url, pool_size=1)
    factory = db.session_factory(engine)
    try:
        ((code, project_code),) = world.rows(
            "SELECT c.credit_code, p.code FROM company c, project p WHERE c.id = :c AND p.id = :p",
            c=cid,
            p=p,
        )
        async with db.transaction(factory, "reviewer:王芳") as session:
            await reviews.record_inspection(
                session,
                reviews.InspectionInput(
                    credit_code=code,
                    project_code=project_code,
                    inspected_on=date(2026, 1, 4),
                    inspector="李明",
                    findings=[{"severity": "MAJOR", "description": "回灌井未安装计量"}],
                ),
                "reviewer:王芳",
            )
            summary = await rescore_in_session(session, [cid], now=local(2026, 1, 6))
        assert summary.findings_added == 1 and summary.snapshots == 1
        assert summary.results[cid].score == 85
    finally:
        await engine.dispose()
    (finding,) = _active(world, cid).values()
    assert finding.rule_id == "INSPECTION" and finding.source == "REVIEWER"
    (actor,) = world.rows(
        "SELECT actor FROM audit_log WHERE table_name = 'credit_finding' AND row_id = :f",
        f=finding.id,
    )
    assert actor[0] == "reviewer:王芳"
