"""The rollup of cumulative meters on a real PostgreSQL: glitches quarantined once, readings that
wait for their successor, silent gaps spread over their days, and the days a late reading
reaches, in both directions — incremental runs end where a recomputation from scratch does."""

import random
from datetime import date, timedelta

import pytest

from jobs.rollup import run_rollup
from registry.creditfile import QUARANTINE
from registry.db import make_engine
from tests.conftest import drop_database, new_database
from tests.jobs.metrics_world import World, local, slot_ends

DEC1, DEC2, DEC3 = date(2025, 12, 1), date(2025, 12, 2), date(2025, 12, 3)


@pytest.fixture
def world(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    eng = make_engine(url)
    yield World(eng)
    eng.dispose()
    drop_database(pg_admin_url, url)


def _meter(world, daily: float | None = None):
    """A MEDIUM_DEEP project whose extraction is read by a totalizer: (project, datastream)."""
    p = world.project(world.company())
    if daily is not None:
        world.permit(p, annual=1e9, daily=daily)
    e = world.datastream(world.well(p, "EXTRACTION"), "extraction_volume", "cumulative")
    world.datastream(world.well(p, "REINJECTION"), "reinjection_volume")
    return p, e


def _days(world, ds):
    return {
        r.day: r
        for r in world.rows(
            "SELECT r.*, c.slots FROM daily_rollup r JOIN daily_coverage c "
            "USING (datastream_id, day) WHERE datastream_id = :d ORDER BY day",
            d=ds,
        )
    }


def _glitches(world):
    return world.rows(
        "SELECT q.id, q.reason, q.phenomenon_time, q.withdraws_id, q.raw FROM quarantine q "
        "WHERE q.reason LIKE 'meter_glitch%' ORDER BY q.id"
    )


def _state(world):
    return world.rows(
        "SELECT r.datastream_id, r.day, r.n, r.total, r.minimum, r.maximum, r.mean, "
        "r.estimated_m3, r.meter_at, r.meter_reading, r.meter_tail, c.slots "
        "FROM daily_rollup r JOIN daily_coverage c USING (datastream_id, day) ORDER BY 1, 2"
    )


def _level(times, start=100_000.0, per_slot=10.0):
    return {t: start + per_slot * i for i, t in enumerate(times)}


def test_a_glitch_is_quarantined_once_and_withdrawn_when_a_correction_clears_it(world):
    """二(三)6: the glitch reading is kept with its reason; a correction makes it good again and
    its record is withdrawn by a new row (the quarantine is append-only)."""
    _, e = _meter(world)
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    level = _level(times)
    bad = times[40]
    world.observe(e, times, lambda i, t: 0.0 if t == bad else level[t])
    world.watermark(local(2025, 12, 2, 0, 5))
    first = run_rollup(world.engine)
    assert first.meter_glitches == 1
    day = _days(world, e)[DEC1]
    assert day.total == 95 * 10 and day.n == 95 and day.slots[40] == "0"
    (g,) = _glitches(world)
    assert (g.reason, g.phenomenon_time, g.raw["reading"]) == ("meter_glitch", bad, 0.0)
    (shown,) = world.rows(f"SELECT * FROM ({QUARANTINE.sql}) r")
    assert (shown.id, shown.well_id) == (g.id, world.rows(
        "SELECT well_id FROM datastream WHERE id = :d", d=e)[0][0])  # fmt: skip
    assert g.raw["level"] == level[times[39]] and g.raw["returnsTo"] == level[times[41]]

    assert run_rollup(world.engine, everything=True).meter_glitches == 0
    assert len(_glitches(world)) == 1

    world.observe(e, [bad], level[bad], revision=1)  # the platform corrects it
    fixed = run_rollup(world.engine)
    assert (fixed.meter_glitches, fixed.meter_glitches_withdrawn) == (0, 1)
    old, withdrawal = _glitches(world)
    assert withdrawal.reason == "meter_glitch_withdrawn" and withdrawal.withdraws_id == old.id
    assert _days(world, e)[DEC1].n == 96
    # The credit file's quarantine no longer shows it.
    assert world.rows(f"SELECT count(*) FROM ({QUARANTINE.sql}) r") == [(0,)]
    # Wrong again: a new record.
    world.observe(e, [bad], 5_000_000.0, revision=2)
    again = run_rollup(world.engine)
    assert again.meter_glitches == 1 and len(_glitches(world)) == 3


def test_a_suspicious_reading_waits_for_its_successors_and_then_counts(world):
    """二(二)6: the newest reading after a drop counts only when later readings decide it; once
    they arrive (the next day here), the earlier day is recomputed."""
    _, e = _meter(world)
    day1 = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    level = _level(day1)
    world.observe(e, day1[:-1], lambda i, t: level[t])
    world.observe(e, day1[-1:], 3.0)  # a drop at the day's last reading: meter replaced?
    world.watermark(local(2025, 12, 2, 0, 5))
    run_rollup(world.engine)
    day = _days(world, e)[DEC1]
    assert day.total == 94 * 10 and day.n == 95 and day.meter_tail == "W|?"

    # The new meter reads on: the drop was a reset (its reading, 3 m³, is plausible).
    day2 = slot_ends(local(2025, 12, 2), local(2025, 12, 2, 2))
    world.observe(e, day2, lambda i, t: 3.0 + 10 * (i + 1))
    result = run_rollup(world.engine)
    assert result.datastream_days == 3  # 2 Dec, then back to 1 Dec, then 2 Dec again
    day = _days(world, e)[DEC1]
    assert day.total == 94 * 10 + 3 and day.n == 96 and day.meter_tail == "R|"
    assert _days(world, e)[DEC2].total == 8 * 10
    assert not _glitches(world)


def test_a_catch_up_reading_is_spread_over_the_silent_days_and_they_are_not_judged(world):
    """二(三)1: two days without readings, then one: the days get the gap's volume in equal
    shares, estimated, and are not counted over the daily intensity; the month is whole."""
    p, e = _meter(world, daily=1_500.0)
    day1 = slot_ends(local(2025, 12, 1), local(2025, 12, 2))
    world.observe(e, day1[:48], lambda i, t: 1_000.0 + 10 * i)  # until 12:00, then silent
    world.watermark(local(2025, 12, 2, 0, 5))
    run_rollup(world.engine)
    assert _days(world, e)[DEC1].meter_tail.endswith("|?")  # its afternoon is not known yet

    catch_up = local(2025, 12, 3, 12)
    world.observe(e, [catch_up], 1_470.0 + 10 * 192)  # 2 days later: 192 slots × 10 m³
    world.observe(e, slot_ends(catch_up, local(2025, 12, 4)), lambda i, t: 3_400.0 + 10 * i)
    world.watermark(local(2025, 12, 4, 0, 5))
    run_rollup(world.engine)
    days = _days(world, e)
    assert sorted(days) == [DEC1, DEC2, DEC3]
    assert [days[d].total for d in sorted(days)] == pytest.approx([950, 960, 960])
    assert [days[d].estimated_m3 for d in sorted(days)] == pytest.approx([480, 960, 480])
    assert [days[d].n for d in sorted(days)] == [48, 0, 49]
    dec = _december(world, p)
    assert dec.extraction_m3 == pytest.approx(950 + 960 + 960)
    assert dec.days_over_daily_limit == 0 and dec.max_daily_extraction_m3 is None
    # One more 2,000 m³ day, fully metered: judged, over the permit.
    times = slot_ends(local(2025, 12, 4), local(2025, 12, 5))
    world.observe(e, times, lambda i, t: 3_870.0 + 2_000 / 96 * (i + 1))
    world.watermark(local(2025, 12, 5, 0, 5))
    run_rollup(world.engine)
    dec = _december(world, p)
    assert dec.days_over_daily_limit == 1 and dec.max_daily_extraction_m3 == pytest.approx(2_000)


def _december(world, p):
    (row,) = world.rows(
        "SELECT * FROM project_month_metric WHERE project_id = :p AND month = :m", p=p, m=DEC1
    )
    return row


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_late_readings_and_corrections_end_where_a_recomputation_from_scratch_does(world, seed):
    """Days reached by a late reading, a correction or a reading that settles a wait are all
    recomputed: the incremental rows equal those of `rollup --all` from empty tables."""
    rnd = random.Random(seed)
    _, e = _meter(world)
    _, f = _meter(world)
    times = slot_ends(local(2025, 12, 1), local(2025, 12, 6))
    for ds in (e, f):
        level, readings = 50_000.0, {}
        for t in times:
            level += rnd.uniform(0, 40)
            readings[t] = level
        sent = dict(readings)
        for t in rnd.sample(times, 25):  # glitches, spikes, a reset, a jump
            sent[t] = rnd.choice([0.0, readings[t] * 10, readings[t] * 0.3])
        k = rnd.randrange(100, 300)
        for t in times[k:]:
            sent[t] -= 45_000.0  # the meter replaced: it reads on from ~5,000 m³
        for t in times[300:]:
            sent[t] += 90_000.0  # a jump that stays
        a = rnd.randrange(60, 200)
        silent = set(times[a : a + rnd.randrange(20, 150)])  # hours to more than a day: never sent
        # late readings from after the gap only: nothing but the marks of the readings that end
        # the gap reaches back into it
        late = set(rnd.sample([t for t in times if t > max(silent)], 10))
        batches = []  # pulls during each day, then the late readings
        for day in range(5):
            todays = [t for t in times[96 * day : 96 * day + 96] if t not in silent | late]
            batches += [todays[i : i + 24] for i in range(0, len(todays), 24)]
        batches.append(sorted(late))
        for batch in batches:
            world.observe(ds, batch, lambda i, t, s=sent: s[t])
            world.watermark(max(batch) + timedelta(minutes=5))
            run_rollup(world.engine)
        corrected = [*rnd.sample([t for t in times if t > max(silent)], 5), times[95]]
        world.observe(ds, sorted(corrected), lambda i, t, r=readings: r[t], revision=1)
        run_rollup(world.engine)
    incremental = _state(world)
    live = world.rows(
        "SELECT phenomenon_time FROM quarantine q WHERE reason = 'meter_glitch' AND NOT EXISTS "
        "(SELECT 1 FROM quarantine w WHERE w.withdraws_id = q.id) ORDER BY 1"
    )
    assert len(incremental) == 2 * 5 and live
    with world.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM daily_rollup; DELETE FROM daily_coverage")
    everything = run_rollup(world.engine, everything=True)
    assert _state(world) == incremental
    assert everything.meter_glitches == everything.meter_glitches_withdrawn == 0


def test_a_late_reading_inside_a_gap_splits_it(world):
    _, e = _meter(world)
    world.observe(e, [local(2025, 12, 1, 12)], 1_000.0)
    world.observe(e, [local(2025, 12, 3, 12)], 1_000.0 + 192 * 10)
    world.watermark(local(2025, 12, 4))
    run_rollup(world.engine)
    days = _days(world, e)
    assert [days[d].total for d in (DEC1, DEC2, DEC3)] == pytest.approx([480, 960, 480])
    # A reading of the 2nd arrives late: little flowed before it, much after.
    world.observe(e, [local(2025, 12, 2, 12)], 1_000.0 + 10)
    run_rollup(world.engine)
    days = _days(world, e)
    assert days[DEC2].n == 1
    assert [days[d].total for d in (DEC1, DEC2, DEC3)] == pytest.approx([5, 5 + 955, 955])
