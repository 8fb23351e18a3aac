"""Cumulative meter readings → interval volumes (scoring/meters.py): no fault of a meter becomes
volume (the rulebook's `meters`; the metering duty of 二(三)6 and the reinjection duty of 二(二)6
must never be judged on a meter's fault)."""

import itertools
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scoring.meters import Kind, classify, day_volumes, settled_before, slot_of
from scoring.rulebook import Meters, load_rulebook

METERS = Meters()  # 500 m³/h, the next 4 readings or 1 hour
RATE = METERS.max_flow_m3_per_hour / 3600
SLOT = 900.0
T0 = 1_764_518_400.0  # a slot boundary (2025-12-01 00:00 Asia/Shanghai)

settings.register_profile(
    "meters", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _times(n: int, start: float = T0) -> list[float]:
    return [start + SLOT * (k + 1) for k in range(n)]


def _volume(result) -> float:
    return math.fsum(iv.volume for iv in result.intervals if iv.volume is not None)


def test_the_packaged_rulebook_has_the_default_meter_parameters():
    rb = load_rulebook()
    assert rb.meters == Meters(max_flow_m3_per_hour=500, lookahead_readings=4, lookahead_minutes=60)


def test_plausible_differences_are_volumes_and_the_first_reading_is_the_level():
    r = classify(_times(4), [100.0, 110.0, 110.0, 135.0], METERS)
    assert r.kinds == (Kind.FIRST, Kind.GOOD, Kind.GOOD, Kind.GOOD)
    assert [iv.volume for iv in r.intervals] == [10.0, 0.0, 25.0]


def test_a_totalizer_glitch_to_zero_is_quarantined_and_yields_no_volume():
    """二(二)6: one reading of 0 from a meter at 500,000 m³ is not 500,000 m³ of extraction."""
    values = [500_000.0, 500_010.0, 0.0, 500_030.0, 500_040.0, 500_050.0, 500_060.0]
    r = classify(_times(7), values, METERS)
    assert r.kinds[2] is Kind.GLITCH and r.kinds.count(Kind.GLITCH) == 1
    assert _volume(r) == 60.0
    assert r.intervals[1].start == _times(7)[1] and r.intervals[1].volume == 20.0


def test_a_spike_ten_times_the_reading_is_a_glitch():
    """二(二)6: a ×10 reading is not extraction."""
    values = [500_000.0, 500_010.0, 5_000_200.0, 500_030.0, 500_040.0, 500_050.0]
    r = classify(_times(6), values, METERS)
    assert r.kinds[2] is Kind.GLITCH and _volume(r) == 50.0


def test_a_low_glitch_over_several_readings_within_the_lookahead_is_one_glitch():
    values = [500_000.0, 12.0, 20.0, 31.0, 500_040.0, 500_050.0, 500_060.0]
    r = classify(_times(7), values, METERS)
    assert r.kinds[1:4] == (Kind.GLITCH,) * 3 and _volume(r) == 60.0


def test_a_replaced_meter_continues_from_its_new_low_level():
    values = [500_000.0, 500_010.0, 8.0, 18.0, 28.0, 38.0, 48.0, 58.0]
    r = classify(_times(8), values, METERS)
    assert r.kinds[2] is Kind.RESET
    assert r.intervals[1].volume == 8.0 and _volume(r) == 10 + 8 + 50


def test_a_reset_whose_new_reading_is_no_plausible_flow_has_an_unknown_volume():
    values = [
        500_000.0,
        500_010.0,
        300_000.0,
        300_010.0,
        300_020.0,
        300_030.0,
        300_040.0,
        300_050.0,
    ]
    r = classify(_times(8), values, METERS)
    assert r.kinds[2] is Kind.RESET and r.intervals[1].volume is None
    assert _volume(r) == 10 + 50


def test_a_jump_that_persists_has_an_unknown_volume_and_the_meter_continues():
    values = [1_000.0, 1_010.0, 91_020.0, 91_030.0, 91_040.0, 91_050.0, 91_060.0, 91_070.0]
    r = classify(_times(8), values, METERS)
    assert r.kinds[2] is Kind.JUMP and r.intervals[1].volume is None
    assert _volume(r) == 10 + 50


def test_the_newest_suspicious_reading_waits_for_its_lookahead():
    values = [500_000.0, 500_010.0, 0.0, 0.5, 1.0]
    r = classify(_times(5), values, METERS)
    assert r.kinds[2:] == (Kind.WAITING,) * 3 and _volume(r) == 10
    # One more reading back at the level: the zeros were a glitch.
    r = classify(_times(6), [*values, 500_050.0], METERS)
    assert r.kinds[2:5] == (Kind.GLITCH,) * 3 and _volume(r) == 50
    # Or the meter stays low past the lookahead (4 readings and an hour): it was reset.
    r = classify(_times(8), [*values, 1.5, 2.0, 2.5], METERS)
    assert r.kinds[2] is Kind.RESET and r.kinds[3:] == (Kind.GOOD,) * 5


def test_the_lookahead_is_an_hour_when_that_is_more_than_four_readings():
    times = [T0 + 300 * k for k in range(1, 16)]  # every 5 minutes
    values = [1000.0, 0.0] + [1.0] * 11 + [1010.0, 1011.0]  # back after 60 min
    r = classify(times, values, METERS)
    assert r.kinds[1:13] == (Kind.GLITCH,) * 12 and r.kinds[13] is Kind.GOOD
    values = [1000.0, 0.0] + [1.0] * 12 + [1010.0]  # back after 65 min: too late
    r = classify(times, values, METERS)
    assert r.kinds[1] is Kind.RESET


def test_a_catch_up_reading_after_a_silent_gap_is_spread_over_the_gap():
    """二(三)1: two days of silence then one reading is two days of extraction, not one slot."""
    times = [T0 + SLOT, T0 + SLOT + 2 * 86_400]  # 2 days later: 192 slots
    r = classify(times, [1000.0, 1000.0 + 192 * 20], METERS)
    assert r.kinds == (Kind.FIRST, Kind.GOOD)
    first = slot_of(T0, SLOT) + 1  # the first slot of the local day starting at T0
    days = [day_volumes(r, times, SLOT, first + 96 * d, 96) for d in range(3)]
    assert [d.total for d in days] == [pytest.approx(95 * 20), 96 * 20, pytest.approx(20)]
    assert all(d.estimated == pytest.approx(d.total) for d in days)
    assert [sum(d.covered) for d in days] == [1, 0, 1]  # only the two readings transmitted
    assert days[1].volumes == (20.0,) * 96


def test_a_gap_inside_one_day_is_spread_but_not_estimated():
    times = [T0 + SLOT, T0 + 5 * SLOT, T0 + 6 * SLOT]
    r = classify(times, [0.0, 40.0, 50.0], METERS)
    day = day_volumes(r, times, SLOT, slot_of(T0, SLOT) + 1, 96)
    assert day.volumes[:6] == (None, 10.0, 10.0, 10.0, 10.0, 10.0)
    assert day.covered[:6] == (True, False, False, False, True, True)
    assert day.total == 50 and day.estimated == 0


# ------------------------------------------------------------------------- properties


@st.composite
def series(draw, isolated: bool, kinds: tuple[str, ...] = ("glitch", "spike", "reset", "jump")):
    """(times, sent readings, true volume after the first sent reading, faults injected).

    A meter in service (level ≥ 1,000 m³) read every 15 minutes, with silent gaps; its true
    increments are plausible flows. Faults: glitch (one reading of 0 or a low value), spike (one
    reading ×10), reset (the meter replaced: it continues from 0), jump (the reading jumps and
    continues from there). `isolated`: faults more than a lookahead apart, a spike only where ×10
    is an implausible rise (at a lower level it is indistinguishable from flow). A jump smaller
    than two readings' plausible flow is indistinguishable from flow too (the next reading counts
    as a return to the level), hence the bounds below."""
    n = draw(st.integers(6, 120))
    steps = draw(st.lists(st.sampled_from([1] * 12 + [2, 3, 8, 200]), min_size=n, max_size=n))
    times, t = [], T0
    for s in steps:
        t += SLOT * s
        times.append(t)
    fractions = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    faults = draw(
        st.lists(
            st.sampled_from(["none"] * 12 + list(kinds)),
            min_size=n,
            max_size=n,
        )
    )
    faults[0] = "none"
    meter = draw(st.floats(1_000, 1e7))
    offset, last_fault = 0.0, -100
    sent, true_total, injected = [], 0.0, 0
    previous = None
    for k in range(n):
        dt = times[k] - times[k - 1] if k else SLOT
        inc = 0.0 if k == 0 else round(fractions[k] * RATE * dt, 3)
        fault = faults[k]
        if isolated and k - last_fault <= METERS.lookahead_readings + 1:
            fault = "none"
        # a new meter has counted part of the slot's flow since the swap
        swap = fault == "reset"
        meter = round(inc * draw(st.floats(0, 1)), 3) if swap else round(meter + inc, 3)
        if k:
            true_total += inc
        value = meter + offset
        if fault == "jump":
            offset += round(RATE * dt * draw(st.floats(1.5, 100)), 3)
            value = meter + offset
        elif fault == "glitch" and previous is not None and previous > 0:
            value = draw(st.sampled_from([0.0, round(previous * draw(st.floats(0, 0.99)), 3)]))
        elif fault == "spike" and (not isolated or 10 * value - previous > RATE * dt * 1.01):
            value = 10 * value
        elif fault not in ("reset", "none"):
            fault = "none"
        if fault != "none":
            injected += 1
            last_fault = k
        previous = meter + offset
        sent.append(value)
    return times, sent, true_total, injected


@settings(settings.get_profile("meters"))
@given(series(isolated=True, kinds=("glitch", "spike", "reset")))
def test_isolated_faults_never_add_volume(data):
    """二(二)6: glitches, spikes and resets never make the volume exceed the true one by more
    than one reading's increment, and nothing is ever negative."""
    times, sent, true_total, _ = data
    r = classify(times, sent, METERS)
    computed = _volume(r)
    one_reading = RATE * max(b - a for a, b in itertools.pairwise(times))
    assert computed <= true_total + 1e-6 * max(1.0, true_total)  # in fact never more at all
    assert computed <= true_total + one_reading
    assert all(iv.volume is None or iv.volume >= 0 for iv in r.intervals)


@settings(settings.get_profile("meters"))
@given(series(isolated=False))
def test_any_faults_are_never_negative_never_counted_twice_and_bounded(data):
    times, sent, true_total, injected = data
    r = classify(times, sent, METERS)
    assert all(iv.volume is None or iv.volume >= 0 for iv in r.intervals)
    # Intervals follow each other without overlap, each closed by a different counted reading.
    for a, b in zip(r.intervals, r.intervals[1:], strict=False):
        assert a.end <= b.start and a.closing < b.closing
    assert all(r.kinds[iv.closing] not in (Kind.GLITCH, Kind.WAITING) for iv in r.intervals)
    one_reading = RATE * max(b - a for a, b in itertools.pairwise(times))
    assert _volume(r) <= true_total + 2 * injected * one_reading + 1e-6 * max(1.0, true_total)


@settings(settings.get_profile("meters"))
@given(series(isolated=False), st.floats(0, 1))
def test_classifying_from_a_settled_reading_gives_the_same_result(data, where):
    """What the daily rollup relies on: a day's classification restarts from the settled reading
    before it and agrees with the whole series', and what is settled before a boundary does not
    change with the readings after it."""
    times, sent, _, _ = data
    whole = classify(times, sent, METERS)
    end = round(where * len(times))  # the first reading after a day's end, say
    c = settled_before(whole, end)
    assume(c is not None)
    again = classify(times[c + 1 :], sent[c + 1 :], METERS, anchor=(times[c], sent[c]))
    assert again.kinds == whole.kinds[c + 1 :]
    tail = [iv for iv in whole.intervals if iv.closing > c]
    assert [(iv.start, iv.end, iv.volume) for iv in again.intervals] == [
        (iv.start, iv.end, iv.volume) for iv in tail
    ]
    cut = classify(times[:end], sent[:end], METERS)  # nothing after it known yet
    assert cut.kinds[: c + 1] == whole.kinds[: c + 1]
    assert settled_before(cut, end) == c


@settings(settings.get_profile("meters"))
@given(series(isolated=False), st.integers(0, 95))
def test_days_share_the_volume_without_double_counting(data, shift):
    times, sent, _, _ = data
    r = classify(times, sent, METERS)
    first = slot_of(times[0], SLOT) - shift
    total = 0.0
    for d in range(int((times[-1] - times[0]) // 86_400) + 3):
        day = day_volumes(r, times, SLOT, first + 96 * d, 96)
        total += day.total or 0.0
        assert 0 <= day.estimated <= (day.total or 0.0) + 1e-6
    assert total == pytest.approx(_volume(r), rel=1e-9, abs=1e-6)
