"""The scenario companies of the simulated platform (monitorsim's roster), end to end below the
HTTP layer: their observations stored as ingest stores them, then rollup and scoring run, and
each company's grade is what docs/rulebook.md says for its behaviour.

The feed covers 1 Dec 2025 – 5 Jan 2026 with no data faults but the platform's 6-hour outage
(never backfilled), which must penalise nobody. December is final, January provisional.
Reviewers recorded every monthly report, so MONTHLY_REPORT stays out of the picture.
"""

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from jobs.rollup import run_rollup
from jobs.scoring_run import run_scoring
from monitorsim.config import DATA_FAULT_KINDS, Config, local_midnight
from monitorsim.generator import World as Simulated
from tests.jobs.metrics_world import World, local

NOW = local(2026, 1, 6, 10)


@pytest.fixture(scope="module")
def scenario(engine):
    sim = Simulated(
        Config(
            scenario="demo",
            start=local_midnight(date(2025, 12, 1)),
            end=local_midnight(date(2026, 1, 6)),
            now=local_midnight(date(2026, 1, 6)),
            wall_clock=False,
            data_faults=dict.fromkeys(DATA_FAULT_KINDS, 0.0),
        )
    )
    world = World(engine)
    streams: dict[int, tuple[int, int, float]] = {}  # simulated ds → (well, ds, divisor)
    companies = {}
    for company in sim.companies:
        cid = world.company(company.name, company.credit_code)
        companies[company.credit_code] = (company.role, company.city, cid)
        for project in company.projects:
            pid = world.project(cid, project.type, project.city, project.operating, project.code)
            for month in (date(2025, 11, 1), date(2025, 12, 1)):
                world.report(pid, month)
            for well in project.wells:
                wid = world.well(pid, well.role, well.aquifer)
                for ds in well.datastreams:
                    acc = ds.accumulation or "interval"
                    streams[ds.id] = (wid, world.datastream(wid, ds.prop, acc), 1 / ds.scale)
    with engine.begin() as conn:
        for month in (date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1)):
            conn.execute(sa.text("SELECT geocredit_ensure_observation_partition(:m)"), {"m": month})
    raw = engine.raw_connection()
    try:
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY observation (well_id, datastream_id, phenomenon_time, revision, value,"
                " result_time, platform_obs_id) FROM STDIN"
            ) as copy,
        ):
            for k in range(len(sim)):
                well, ds, divisor = streams[sim.ds[k]]
                copy.write_row((well, ds, _t(sim.pt[k]), 0, sim.val[k] / divisor, _t(sim.rt[k]), k))
        raw.commit()
    finally:
        raw.close()
    world.watermark(_t(sim.last_rt))
    run_rollup(engine, everything=True)
    summary = run_scoring(engine, now=NOW)
    assert not summary.errors
    return world, companies, sim


def _t(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _standing(world, company_id):
    (snap,) = world.rows(
        "SELECT * FROM score_snapshot WHERE company_id = :c ORDER BY id DESC LIMIT 1", c=company_id
    )
    findings = world.rows(
        "SELECT f.* FROM credit_finding f WHERE f.company_id = :c AND NOT EXISTS "
        "(SELECT 1 FROM finding_event e WHERE e.finding_id = f.id) ORDER BY key",
        c=company_id,
    )
    listings = world.rows(
        "SELECT l.* FROM listing l WHERE company_id = :c AND NOT EXISTS "
        "(SELECT 1 FROM listing_end e WHERE e.listing_id = l.id)",
        c=company_id,
    )
    return snap, {f.key.split(":")[0] + ":" + f.key.split(":")[-1]: f for f in findings}, listings


def _by_role(companies, role, city=None):
    return [cid for r, c, cid in companies.values() if r == role and (city is None or c == city)]


def test_the_outage_is_outage_slots_and_penalises_nobody(scenario):
    world, companies, sim = scenario
    outage = world.rows("SELECT day, outage_slots FROM outage_day WHERE outage_slots > 0")
    # The slots the platform lost (nothing at all arrived for them: about 6 hours); on the last
    # day the slots after the watermark count too.
    received = set(sim.pt)
    lost = [p for p in range(sim.t0 + 900, sim.t0 + 35 * 86400 + 1, 900) if p not in received]
    assert 24 <= len(lost) <= 25
    assert sum(n for d, n in outage if d < date(2026, 1, 5)) == len(lost)
    months = world.rows(
        "SELECT m.* FROM project_month_metric m WHERE month = '2025-12-01' AND evaluated"
    )
    assert months and all(m.outage_slots == len(lost) for m in months)
    gaps = {cid for cid in _by_role(companies, "metering_gaps")}
    for m in months:
        company = world.rows("SELECT company_id FROM project_version WHERE project_id = :p",
                             p=m.project_id)[0][0]  # fmt: skip
        if company not in gaps and m.operating and m.extraction_completeness is not None:
            assert m.extraction_completeness == 1.0


@pytest.mark.parametrize("role", ["compliant", "closed_loop", "direct_use", "cumulative_meters"])
def test_compliant_companies_score_a_clean_100(scenario, role):
    world, companies, _ = scenario
    for cid in _by_role(companies, role):
        snap, findings, listings = _standing(world, cid)
        assert (snap.score, snap.grade) == (100, "A"), findings
        assert not findings and not listings


def test_reinjecting_80_percent_is_a_major_ratio_finding_each_month(scenario):
    world, companies, _ = scenario
    (cid,) = _by_role(companies, "low_reinjection_80")
    snap, findings, listings = _standing(world, cid)
    dec, jan = findings["REINJ_RATIO:2025-12"], findings["REINJ_RATIO:2026-01"]
    assert (dec.severity, dec.deduction, dec.final) == ("MAJOR", 15, True)
    assert (jan.severity, jan.deduction, jan.final) == ("MAJOR", 15, False)
    assert 0.78 < dec.evidence["ratio"] < 0.82
    assert set(findings) == {"REINJ_RATIO:2025-12", "REINJ_RATIO:2026-01"}
    assert (snap.score, snap.grade) == (70, "C") and not listings


def test_metering_gaps_cost_a_minor_deduction(scenario):
    world, companies, _ = scenario
    (cid,) = _by_role(companies, "metering_gaps")
    snap, findings, listings = _standing(world, cid)
    dec = findings["METERING_GAP:2025-12"]
    assert (dec.severity, dec.deduction, dec.final) == ("MINOR", 3, True)
    assert 0.80 < dec.evidence["completeness"]["extraction"] < 0.90
    assert dec.evidence["completeness"]["reinjection"] == 1.0
    assert "REINJ_RATIO:2025-12" not in findings  # 97 % of what was metered
    assert snap.grade == "A" and snap.score >= 94 and not listings


def test_no_reinjection_in_a_final_month_gives_d_and_a_critical_listing(scenario):
    world, companies, _ = scenario
    (cid,) = _by_role(companies, "no_reinjection")
    snap, findings, listings = _standing(world, cid)
    critical = findings["NO_REINJECTION:2025-12"]
    assert (critical.severity, critical.final) == ("CRITICAL", True)
    assert findings["REINJ_RATIO:2025-12"].severity == "MAJOR"
    assert (snap.score, snap.grade) == (30, "D")  # 100 - 40 (CRITICAL cap) - 2 × 15
    (listing,) = listings
    assert listing.critical and critical.id in listing.finding_ids
    # v2026.2: 12 and 36 months, to 24:00 local time of 6 Jan 2027 and 2029
    assert listing.min_end == local(2027, 1, 7) and listing.max_end == local(2029, 1, 7)


def test_a_second_run_with_unchanged_inputs_writes_nothing(scenario):
    world, companies, _ = scenario
    count = "SELECT (SELECT count(*) FROM score_snapshot), (SELECT count(*) FROM credit_finding)"
    before = world.rows(count)
    # The listed company's inputs now include its listing: scored once more, to the same result.
    summary = run_scoring(world.engine, now=NOW)
    assert summary.scored == 1 and summary.unchanged == len(companies) - 1
    assert world.rows(count) == before
    summary = run_scoring(world.engine, now=NOW)
    assert summary.unchanged == len(companies) and summary.scored == 0
