"""Faults of cumulative meters (totalizers) through pull → rollup → score on a real PostgreSQL:
monitorsim's roster, 1 Dec 2025 – 5 Jan 2026 (December final), no data faults but the platform's
6-hour outage, and meter faults on the one project read by totalizers (MEDIUM_DEEP, 太原; its
meter E01 is also replaced on 22 Dec). Reviewers recorded every monthly report.

- glitches (one reading of 0 or a low value) and spikes (one reading ×10): no volume, quarantined
  as `meter_glitch`, no CRITICAL, no D, no listing;
- a meter's own 2-day silence and its catch-up reading: the difference spread over the gap, the
  estimated days not judged for the daily intensity cap, the month's total whole, the silent
  slots still missing for METERING_GAP.
"""

import math
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from jobs import ingest
from jobs.rollup import run_rollup
from jobs.scoring_run import run_scoring
from monitorsim.config import CST, DATA_FAULT_KINDS, SLOT, Config, local_midnight
from monitorsim.generator import World as Simulated
from registry.db import make_engine
from tests.conftest import drop_database, new_database
from tests.jobs.ingest_sim import monitorsim
from tests.jobs.metrics_world import local

NOW = local(2026, 1, 6, 10)
START, END = date(2025, 12, 1), date(2026, 1, 6)
DEC_SLOTS = 31 * 96
GLITCHES = {"meter_glitch": 0.002, "meter_spike": 0.002}
SILENCE = {"meter_silence": 0.0004}  # with seed 7: E01 silent 5–7 and 25–27 Dec


def _config(faults: dict[str, float]) -> Config:
    return Config(
        scenario="demo",
        seed=7,
        start=local_midnight(START),
        end=local_midnight(END),
        now=local_midnight(END),
        data_faults=dict.fromkeys(DATA_FAULT_KINDS, 0.0),
        meter_faults=faults,
    )


def _args(faults: dict[str, float]) -> list[str]:
    args = ["--scenario", "demo", "--seed", "7", "--start", START.isoformat()]
    args += ["--end", END.isoformat(), "--now", f"{END.isoformat()}T00:00:00+08:00"]
    args += ["--no-data-faults"]
    for kind, rate in faults.items():
        args += ["--meter-fault", f"{kind}={rate}"]
    return args


class Scenario:
    def __init__(self, engine: sa.Engine, sim: Simulated):
        self.engine, self.sim = engine, sim
        self.cap: float | None = None  # the permit's daily intensity, when recorded
        (self.company,) = [c for c in sim.companies if c.role == "cumulative_meters"]
        (self.project,) = self.company.projects

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def standing(self):
        """The company's latest snapshot, its active findings by rule:month, its open listings."""
        (cid,) = self.rows("SELECT id FROM company WHERE credit_code = :c", c=self.company.credit_code)[0]  # fmt: skip
        (snap,) = self.rows(
            "SELECT * FROM score_snapshot WHERE company_id = :c ORDER BY id DESC LIMIT 1", c=cid
        )
        findings = self.rows(
            "SELECT f.* FROM credit_finding f WHERE f.company_id = :c AND NOT EXISTS "
            "(SELECT 1 FROM finding_event e WHERE e.finding_id = f.id)",
            c=cid,
        )
        listings = self.rows(
            "SELECT l.* FROM listing l WHERE company_id = :c AND NOT EXISTS "
            "(SELECT 1 FROM listing_end e WHERE e.listing_id = l.id)",
            c=cid,
        )
        by_key = {f.key.split(":")[0] + ":" + f.key.split(":")[-1]: f for f in findings}
        return snap, by_key, listings

    def december(self):
        (row,) = self.rows(
            "SELECT m.* FROM project_month_metric m JOIN project p ON p.id = m.project_id "
            "WHERE p.code = :code AND m.month = '2025-12-01'",
            code=self.project.code,
        )
        return row

    def meters(self, role: str) -> list:
        return [
            ds
            for well in self.project.wells
            if well.role == role
            for ds in well.datastreams
            if ds.is_volume
        ]

    def true_volume(self, ds, first: int, last: int) -> float:
        """What the meter really measured in the slots [first, last] (the first reading of the
        feed, slot 0, has no volume before it)."""
        return math.fsum(self.sim.true_steps[ds.id][max(first, 1) : last + 1])

    def quarantine(self) -> dict[str, int]:
        return dict(self.rows("SELECT reason, count(*) FROM quarantine GROUP BY reason"))

    def daily_state(self) -> list:
        return self.rows(
            "SELECT r.datastream_id, r.day, r.n, r.total, r.minimum, r.maximum, r.mean, "
            "r.estimated_m3, r.meter_at, r.meter_reading, r.meter_tail, c.slots "
            "FROM daily_rollup r JOIN daily_coverage c USING (datastream_id, day) ORDER BY 1, 2"
        )


async def _scenario(pg_admin_url, template_db, faults, setup=None):
    url = new_database(pg_admin_url, template_db)
    engine = make_engine(url)
    try:
        with monitorsim(*_args(faults)) as base:
            result = await ingest.pull(url, base)
        assert result.complete and not result.quarantined
        scenario = Scenario(engine, Simulated(_config(faults)))
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO monthly_report (project_id, month, submitted_on, recorded_by) "
                    "SELECT id, m, m + 40, 'reviewer' FROM project "
                    "CROSS JOIN (VALUES (DATE '2025-11-01'), (DATE '2025-12-01')) x(m)"
                )
            )
            if setup:
                setup(conn, scenario)
        run_rollup(engine)
        summary = run_scoring(engine, now=NOW)
        assert not summary.errors
        yield scenario
    finally:
        engine.dispose()
        drop_database(pg_admin_url, url)


@pytest.fixture(scope="module")
async def glitches(pg_admin_url, template_db):
    async for scenario in _scenario(pg_admin_url, template_db, GLITCHES):
        yield scenario


def _slot(pt: int, sim: Simulated) -> int:
    return (pt - sim.t0) // SLOT - 1


def test_glitches_and_spikes_of_a_totalizer_make_no_critical_and_no_listing(glitches):
    """二(二)6: a glitch to 0 or a ×10 spike of an extraction meter in a final month is not
    extraction; reinjection stays at its true ratio; no NO_REINJECTION, no D, no listing."""
    sim = glitches.sim
    extraction = {ds.id for ds in glitches.meters("EXTRACTION")}
    sent = dict(zip(zip(sim.ds, sim.pt, strict=True), sim.val, strict=True))
    in_december = [
        (kind, sent.get((d, sim.t0 + (s + 1) * SLOT)))
        for kind, d, s, _ in sim.meter_events
        if d in extraction and s < DEC_SLOTS
    ]
    assert ("meter_glitch", 0.0) in in_december and ("meter_spike" in {k for k, _ in in_december})
    snap, findings, listings = glitches.standing()
    assert not [f for f in findings.values() if f.severity == "CRITICAL"], findings
    assert "NO_REINJECTION:2025-12" not in findings and "REINJ_RATIO:2025-12" not in findings
    assert snap.grade != "D" and not listings
    assert (snap.score, snap.grade) == (100, "A"), findings
    # December's volumes are what the meters really measured (the glitches' intervals run from
    # the last good reading to the one the meter came back with).
    dec = glitches.december()
    for role, key in (("EXTRACTION", "extraction_m3"), ("REINJECTION", "reinjection_m3")):
        true = math.fsum(glitches.true_volume(ds, 0, DEC_SLOTS - 1) for ds in glitches.meters(role))
        assert dec.layers[0][key] == pytest.approx(true, rel=1e-9)
    assert dec.extraction_completeness > 0.99  # a glitch's slot is not received


def test_glitch_readings_are_quarantined_as_meter_glitch(glitches):
    """二(三)6: every glitch and spike reading is kept with its reason, none dropped; the newest
    readings, whose lookahead is not complete, wait."""
    sim = glitches.sim
    last = defaultdict(int)
    sent = set(zip(sim.ds, sim.pt, strict=True))  # the outage's readings never arrived
    for d, p in sent:
        last[d] = max(last[d], p)
    expected = {
        (str(d), p)
        for kind, d, s, _ in sim.meter_events
        if kind in ("meter_glitch", "meter_spike")
        and (d, p := sim.t0 + (s + 1) * SLOT) in sent
        and p < last[d] - 7200
    }
    rows = glitches.rows(
        "SELECT datastream_platform_id, phenomenon_time, detail, raw, platform_obs_id "
        "FROM quarantine WHERE reason = 'meter_glitch'"
    )
    got = {(r.datastream_platform_id, int(r.phenomenon_time.timestamp())) for r in rows}
    assert len(expected) > 40 and expected <= got
    assert len(got - expected) <= 2  # at most the waiting tail's, decided since
    assert len(rows) == len(got)  # once each
    sample = rows[0]
    assert (
        sample.raw["reading"] < sample.raw["level"]
        or sample.raw["reading"] > 5 * sample.raw["level"]
    )
    assert "no volume" in sample.detail and sample.platform_obs_id is not None
    assert glitches.quarantine().get("meter_glitch_withdrawn", 0) == 0


def test_rolling_up_again_or_everything_changes_nothing(glitches):
    before = glitches.daily_state(), glitches.quarantine()
    again = run_rollup(glitches.engine)
    assert again.days == 0 and again.meter_glitches == 0
    assert (glitches.daily_state(), glitches.quarantine()) == before
    everything = run_rollup(glitches.engine, everything=True)
    assert everything.meter_glitches == everything.meter_glitches_withdrawn == 0
    assert (glitches.daily_state(), glitches.quarantine()) == before
    summary = run_scoring(glitches.engine, now=NOW)  # (the listed company is scored once more)
    assert summary.snapshots == summary.findings_added == summary.findings_voided == 0


# ------------------------------------------------------------------ a meter's own silence


def _day_of(pt: int) -> date:
    return datetime.fromtimestamp(pt - SLOT, CST).date()


def _true_days(scenario: Scenario) -> dict[date, float]:
    """The project's true extraction per local day of December."""
    days: dict[date, float] = defaultdict(float)
    for ds in scenario.meters("EXTRACTION"):
        for s in range(1, DEC_SLOTS):
            days[_day_of(scenario.sim.t0 + (s + 1) * SLOT)] += scenario.sim.true_steps[ds.id][s]
    return days


def _permit(conn: sa.Connection, scenario: Scenario) -> None:
    """A water permit whose daily intensity is a quarter above the project's busiest true day."""
    scenario.cap = 1.25 * max(_true_days(scenario).values())
    conn.execute(
        sa.text(
            "INSERT INTO permit (project_id, kind, number, annual_total_m3, daily_intensity_m3, "
            "valid_from, recorded_by) SELECT id, 'WATER_PERMIT', '取水(晋)字[2024]1号', 1e8, :cap, "
            "'2024-01-01', 'reviewer' FROM project WHERE code = :code"
        ),
        {"cap": scenario.cap, "code": scenario.project.code},
    )


@pytest.fixture(scope="module")
async def silence(pg_admin_url, template_db):
    async for scenario in _scenario(pg_admin_url, template_db, SILENCE, setup=_permit):
        yield scenario


def test_a_catch_up_reading_after_a_silence_is_no_daily_cap_finding(silence):
    """二(三)1: a meter silent for two days sends one reading covering them: spread over the gap,
    the days it estimates are not judged for the daily intensity, and no day is over it."""
    sim = silence.sim
    (e01,) = [ds for ds in silence.meters("EXTRACTION") if ds.well.code.endswith("-E01")]
    gaps = [(s, n) for kind, d, s, n in sim.meter_events if kind == "meter_silence"]
    assert len(gaps) == 2 and {d for _, d, _, _ in sim.meter_events} == {e01.id}
    true_days = _true_days(silence)
    # Before: the catch-up reading put two days on its own day, far over the permit.
    s, n = gaps[0]
    catch_up = _day_of(sim.t0 + (s + n + 1) * SLOT)
    assert true_days[catch_up] + silence.true_volume(e01, s, s + n - 1) > silence.cap
    snap, findings, listings = silence.standing()
    assert "EXTRACTION_CAP:2025-12" not in findings, findings
    dec = silence.december()
    assert dec.days_over_daily_limit == 0
    assert dec.max_daily_extraction_m3 == pytest.approx(
        max(v for d, v in true_days.items() if not _estimated(silence, d)), rel=1e-9
    )
    # The month's total has the gaps' volume.
    true = math.fsum(
        silence.true_volume(ds, 0, DEC_SLOTS - 1) for ds in silence.meters("EXTRACTION")
    )
    assert dec.extraction_m3 == pytest.approx(true, rel=1e-9)
    # The days inside a gap: volume, all of it estimated, nothing received.
    (inside,) = silence.rows(
        "SELECT r.* FROM daily_rollup r JOIN datastream d ON d.id = r.datastream_id "
        "WHERE d.platform_id = :ds AND r.day = :day",
        ds=str(e01.id),
        day=_day_of(sim.t0 + (s + 1) * SLOT) + timedelta(days=1),
    )
    assert inside.n == 0 and inside.total > 0
    assert inside.estimated_m3 == pytest.approx(inside.total, rel=1e-12)
    assert (snap.grade, listings) != ("D", [])


def _estimated(scenario: Scenario, day: date) -> bool:
    return bool(
        scenario.rows(
            "SELECT 1 FROM daily_rollup r JOIN datastream d ON d.id = r.datastream_id "
            "WHERE d.platform_id = ANY(:ds) AND r.day = :day AND r.estimated_m3 > 0",
            ds=[str(ds.id) for ds in scenario.meters("EXTRACTION")],
            day=day,
        )
    )


def test_the_silent_slots_still_count_as_missing_for_metering_gap(silence):
    """二(二)6、二(三)6: the meter did not transmit the gap's slots; outage slots excepted."""
    sim = silence.sim
    dec = silence.december()
    outage = {  # as the rollup found them: nobody's data (the platform's outage)
        int(datetime(d.year, d.month, d.day, tzinfo=CST).timestamp()) + (i + 1) * SLOT
        for d, bits in silence.rows(
            "SELECT day, slots::text FROM outage_day WHERE day < '2026-01-01'"
        )
        for i, bit in enumerate(bits)
        if bit == "1"
    }
    assert outage and dec.outage_slots == len(outage)
    missing = sum(
        1 for d, p in sim.silenced if sim.t0 < p <= sim.t0 + DEC_SLOTS * SLOT and p not in outage
    )
    wells = len(silence.meters("EXTRACTION"))
    assert dec.extraction_completeness == pytest.approx(
        (wells * dec.expected_slots - missing) / (wells * dec.expected_slots)
    )
    _, findings, _ = silence.standing()
    gap = findings["METERING_GAP:2025-12"]
    assert gap.severity == "MINOR" and gap.evidence["completeness"]["extraction"] < 0.95
    assert gap.evidence["completeness"]["reinjection"] == 1.0


def test_the_estimated_days_are_marked_and_the_received_ones_are_not(silence):
    sim = silence.sim
    estimated = {
        d
        for (d,) in silence.rows(
            "SELECT r.day FROM daily_rollup r WHERE r.estimated_m3 > 0 AND r.day < '2026-01-01'"
        )
    }
    gap_days = set()
    for kind, _, s, n in sim.meter_events:
        if kind == "meter_silence":
            gap_days |= {_day_of(sim.t0 + (k + 1) * SLOT) for k in range(s, s + n + 1)}
    assert estimated == gap_days
