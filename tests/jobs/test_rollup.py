"""The rollup on a real PostgreSQL: daily rows, outage slots and project months from observations.

Outage slots depend on every project in the database, so each test gets a database of its own.
"""

from datetime import date

import pytest

from jobs.rollup import run_rollup
from registry.db import make_engine
from tests.conftest import drop_database, new_database
from tests.jobs.metrics_world import World, local, slot_ends

DEC = date(2025, 12, 1)
JAN = date(2026, 1, 1)


@pytest.fixture
def world(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    eng = make_engine(url)
    yield World(eng)
    eng.dispose()
    drop_database(pg_admin_url, url)


def _daily(world, ds):
    return {
        r.day: r
        for r in world.rows(
            "SELECT r.*, c.slots, c.completeness FROM daily_rollup r "
            "JOIN daily_coverage c USING (datastream_id, day) WHERE datastream_id = :d",
            d=ds,
        )
    }


def _month(world, project, month):
    (row,) = world.rows(
        "SELECT * FROM project_month_metric WHERE project_id = :p AND month = :m",
        p=project,
        m=month,
    )
    return row


def _doublet(world, *, type="MEDIUM_DEEP", city="运城市", accumulation="interval"):
    """A project with one extraction and one reinjection well: (project, extraction ds, reinj ds)."""
    p = world.project(world.company(), type=type, city=city)
    e = world.datastream(world.well(p, "EXTRACTION"), "extraction_volume", accumulation)
    r = world.datastream(world.well(p, "REINJECTION"), "reinjection_volume", accumulation)
    return p, e, r


def test_interval_volumes_roll_up_by_local_day_and_month(world):
    p, e, r = _doublet(world)
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 3))
    world.observe(e, times, 10.0)
    world.observe(r, times, 9.5)
    world.watermark(local(2025, 12, 3, 0, 5))

    result = run_rollup(world.engine)

    assert (result.days, result.datastream_days) == (2, 4)
    daily = _daily(world, e)
    assert sorted(daily) == [date(2025, 12, 1), date(2025, 12, 2)]
    day = daily[date(2025, 12, 1)]
    # The slot ending at 00:00 on 2 Dec is the last of 1 Dec (local).
    assert (day.n, day.total, day.minimum, day.maximum, day.mean) == (96, 960.0, 10, 10, 10)
    assert day.slots == "1" * 96 and day.completeness == 1.0

    dec = _month(world, p, DEC)
    assert dec.evaluated and not dec.final
    assert (dec.expected_slots, dec.outage_slots) == (192, 0)
    assert dec.extraction_completeness == dec.reinjection_completeness == 1.0
    assert dec.layers == [
        {"aquifer": "K1", "extraction_m3": 1920, "reinjection_m3": 1824,
         "reinjection_tds_mean": None, "reinjection_ph_mean": None}
    ]  # fmt: skip
    assert (dec.max_daily_extraction_m3, dec.extraction_m3, dec.ytd_extraction_m3) == (
        960,
        1920,
        1920,
    )
    # Heating season in 运城 starts 15 Nov: November is evaluated from then, but nothing arrived
    # from anyone, so all of it is outage and nothing is expected.
    nov = _month(world, p, date(2025, 11, 1))
    assert nov.evaluated and (nov.expected_slots, nov.outage_slots) == (0, 16 * 96)
    assert nov.extraction_completeness is None


def test_highest_revision_counts(world):
    _p, e, r = _doublet(world)
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    world.observe(e, times, 10.0)
    world.observe(r, times, 10.0)
    world.observe(e, times[:4], 40.0, revision=1)
    world.watermark(local(2025, 12, 2, 0, 5))
    run_rollup(world.engine)
    assert _daily(world, e)[DEC].total == 92 * 10 + 4 * 40


def test_cumulative_readings_become_interval_volumes(world):
    _p, e, _r = _doublet(world, accumulation="cumulative")
    day1 = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    # 10 m³ per slot; the meter is replaced at slot 50 (restarts from 0, reads 10 there).
    readings = [1000 + 10 * (i + 1) for i in range(50)] + [10 * (i - 49) for i in range(50, 96)]
    world.observe(e, day1, lambda i, t: readings[i])
    # Day 2: readings resume after a 4-slot gap; the first covers the whole gap (5 slots), its
    # difference spread evenly over them (all in day 2: nothing estimated).
    day2 = slot_ends(local(2025, 12, 2), local(2025, 12, 3))[4:]
    world.observe(e, day2, lambda i, t: readings[-1] + 10 * (i + 5))
    world.watermark(local(2025, 12, 3, 0, 5))
    run_rollup(world.engine)

    daily = _daily(world, e)
    first = daily[DEC]
    # The first reading ever has no volume; the reset interval's volume is the new reading.
    assert first.total == 95 * 10 and first.n == 96
    assert (first.minimum, first.maximum) == (10, 10)
    second = daily[date(2025, 12, 2)]
    assert second.n == 92 and second.total == 96 * 10 and second.maximum == 10
    assert second.slots == "0000" + "1" * 92 and second.estimated_m3 == 0

    # A corrected last reading of day 1 changes day 2's first difference too.
    world.observe(e, day1[-1:], readings[-1] - 5, revision=1)
    result = run_rollup(world.engine)
    assert result.datastream_days == 2
    daily = _daily(world, e)
    assert daily[DEC].total == 95 * 10 - 5
    assert daily[date(2025, 12, 2)].total == 96 * 10 + 5


def test_outage_slots_follow_the_share_of_silent_projects(world):
    projects = [_doublet(world) for _ in range(4)]
    world.project(world.company(), type="CLOSED_LOOP")  # takes no water: not counted
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    for i, (_p, e, r) in enumerate(projects):
        # Slots 0-9: projects 0 and 1 silent (half: outage). Slots 10-19: project 0 silent.
        silent = range(0, 20) if i == 0 else range(0, 10) if i == 1 else ()
        sent = [t for k, t in enumerate(times) if k not in silent]
        world.observe(e, sent, 10.0)
        world.observe(r, sent, 10.0)
    world.watermark(local(2025, 12, 2, 0, 5))
    run_rollup(world.engine)

    (outage,) = world.rows("SELECT * FROM outage_day WHERE day = :d", d=DEC)
    assert outage.projects == 4
    assert outage.slots == "1" * 10 + "0" * 86 and outage.outage_slots == 10
    p0, e0, _ = projects[0]
    assert _daily(world, e0)[DEC].completeness == 76 / 86
    dec = _month(world, p0, DEC)
    assert (dec.expected_slots, dec.outage_slots) == (86, 10)
    assert dec.extraction_completeness == 76 / 86
    p1 = projects[1][0]
    assert _month(world, p1, DEC).extraction_completeness == 1.0  # silent only in outage slots


def test_completeness_counts_each_well_of_the_role(world):
    p, e, r = _doublet(world)
    world.well(p, "EXTRACTION")  # a second extraction well with no datastream: silent
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    world.observe(e, times, 10.0)
    world.observe(r, times, 10.0)
    world.watermark(local(2025, 12, 2, 0, 5))
    run_rollup(world.engine)
    dec = _month(world, p, DEC)
    assert dec.extraction_completeness == 0.5 and dec.reinjection_completeness == 1.0


def test_monitoring_quality_layers_and_daily_peaks(world):
    p = world.project(world.company())
    world.permit(p, annual=1e6, daily=1000.0)
    e1 = world.well(p, "EXTRACTION", "K1")
    e2 = world.well(p, "EXTRACTION", "K2")
    r1 = world.well(p, "REINJECTION", "K1")
    streams = {
        "e1": world.datastream(e1, "extraction_volume"),
        "e2": world.datastream(e2, "extraction_volume"),
        "r1": world.datastream(r1, "reinjection_volume"),
        "tds": world.datastream(r1, "water_quality_tds"),
        "ph": world.datastream(r1, "water_quality_ph"),
        "level": world.datastream(e1, "water_level"),
        "temp": world.datastream(e1, "water_temperature"),
    }
    d1 = slot_ends(local(2026, 1, 1), local(2026, 1, 2))
    d2 = slot_ends(local(2026, 1, 2), local(2026, 1, 3))
    world.observe(streams["e1"], d1 + d2, lambda i, t: 12.0 if i < 96 else 8.0)  # 1152, 768
    world.observe(streams["e2"], d1 + d2, 2.0)  # 192 a day
    world.observe(streams["r1"], d1 + d2, 11.0)
    world.observe(streams["tds"], d1, 1500.0)
    world.observe(streams["tds"], d2, 1800.0)
    world.observe(streams["ph"], d1 + d2, 7.5)
    world.observe(streams["level"], d1 + d2[:48], 40.0)  # half of day 2 missing
    world.watermark(local(2026, 1, 3, 0, 5))
    run_rollup(world.engine)

    jan = _month(world, p, JAN)
    assert jan.layers == [
        {"aquifer": "K1", "extraction_m3": 1920, "reinjection_m3": 2112,
         "reinjection_tds_mean": 1650, "reinjection_ph_mean": 7.5},
        {"aquifer": "K2", "extraction_m3": 384, "reinjection_m3": 0,
         "reinjection_tds_mean": None, "reinjection_ph_mean": None},
    ]  # fmt: skip
    assert (jan.max_daily_extraction_m3, jan.days_over_daily_limit) == (1344, 1)
    assert jan.level_completeness == 144 / 192
    assert jan.temperature_completeness == 0  # registered, never sent
    assert jan.quality_completeness == 1.0
    assert (jan.season, jan.season_level_n, jan.season_level_sum) == (2025, 144, 144 * 40.0)


def test_the_evaluated_part_follows_season_and_watermark(world):
    p, e, r = _doublet(world, city="运城市")  # season 15 Nov - 15 Mar
    # 14 Mar - 18 Mar: the season ends on 15 Mar (included).
    times = slot_ends(local(2026, 3, 14), local(2026, 3, 18))
    world.observe(e, times, lambda i, t: 10.0 if t <= local(2026, 3, 16) else 0.0)
    world.observe(r, times, 10.0)
    world.watermark(local(2026, 3, 18, 12, 7))
    run_rollup(world.engine)
    mar = _month(world, p, date(2026, 3, 1))
    assert mar.scope_start == local(2026, 3, 1) and mar.scope_end == local(2026, 3, 16)
    assert mar.expected_slots == 2 * 96 and mar.outage_slots == 13 * 96
    assert mar.layers[0]["extraction_m3"] == 2 * 960

    # Extraction after the season brings the whole month in, up to the watermark.
    world.observe(e, slot_ends(local(2026, 3, 18), local(2026, 3, 18, 12)), 5.0)
    world.observe(r, slot_ends(local(2026, 3, 18), local(2026, 3, 18, 12)), 5.0)
    run_rollup(world.engine)
    mar = _month(world, p, date(2026, 3, 1))
    assert mar.scope_end == local(2026, 3, 18, 12, 7)
    # 14-17 Mar and the morning of the 18th have data; the slot 12:00-12:15 ends after the
    # watermark and is not expected.
    assert mar.expected_slots == 4 * 96 + 48
    assert mar.outage_slots == 13 * 96
    assert mar.extraction_completeness == 1.0


def test_incremental_runs_touch_only_what_changed(world):
    p, e, r = _doublet(world)
    times = slot_ends(local(2026, 1, 1), local(2026, 1, 3))
    world.observe(e, times, 10.0)
    world.observe(r, times, 10.0)
    world.watermark(local(2026, 1, 3, 0, 5))
    run_rollup(world.engine)

    again = run_rollup(world.engine)
    assert (again.days, again.months) == (0, 0)

    # Late data for 1 Dec: that day and December are recomputed, January is not.
    world.observe(e, slot_ends(local(2025, 12, 1), local(2025, 12, 1, 1)), 10.0)
    late = run_rollup(world.engine)
    assert (late.days, late.datastream_days) == (1, 1)
    assert late.recomputed_months == ["2025-12"]
    assert _month(world, p, DEC).extraction_m3 == 40
    assert _month(world, p, JAN).ytd_extraction_m3 == 2 * 960  # a new year

    # The watermark passes 3 days after December's end: December turns final.
    world.watermark(local(2026, 1, 4, 0, 0))
    later = run_rollup(world.engine)
    assert "2025-12" in later.recomputed_months and _month(world, p, DEC).final
    assert not _month(world, p, JAN).final

    # A well added to the project (registry change): its months are recomputed.
    world.well(p, "REINJECTION")
    changed = run_rollup(world.engine)
    assert changed.project_months >= 3
    assert _month(world, p, JAN).reinjection_completeness == 0.5


def test_everything_recomputes_from_the_observations(world):
    p, e, r = _doublet(world)
    times = slot_ends(local(2026, 1, 1), local(2026, 1, 2))
    world.observe(e, times, 10.0)
    world.observe(r, times, 10.0)
    world.watermark(local(2026, 1, 2, 0, 5))
    run_rollup(world.engine)
    before = _month(world, p, JAN)
    result = run_rollup(world.engine, everything=True)
    assert result.days == 1 and result.datastream_days == 2
    after = _month(world, p, JAN)
    assert after.layers == before.layers and after.expected_slots == before.expected_slots


def test_months_start_at_applies_from_and_end_at_the_watermark(world):
    """…and the heating season before applies_from's is kept too: its water levels are the
    first season's baseline (v2026.2, WATER_LEVEL)."""
    _p, e, _r = _doublet(world)
    world.observe(e, slot_ends(local(2025, 10, 1), local(2025, 10, 2)), 10.0)
    world.watermark(local(2026, 2, 10))
    run_rollup(world.engine)
    months = [m for (m,) in world.rows("SELECT month FROM project_month_metric ORDER BY month")]
    previous_season = [date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1),
                       date(2025, 2, 1), date(2025, 3, 1)]  # fmt: skip
    assert months == [*previous_season, date(2025, 11, 1), DEC, JAN, date(2026, 2, 1)]
    assert _daily(world, e)[date(2025, 10, 1)].total == 960  # the daily row exists all the same
