"""Cumulative meter readings (totalizers) → interval volumes, so that no fault of a meter ever
becomes volume. Parameters: the rulebook's `meters` section.

Pure: readings in, classification out — no database, no clock. Times are seconds on any epoch
(strictly increasing), readings m³.

The volume between two consecutive counted readings is their difference when it is ≥ 0 and the
implied flow is plausible (≤ `max_flow_m3_per_hour`). Any other reading is *suspicious* and is
decided by the readings after it, within its lookahead (the next `lookahead_readings`, or those
within `lookahead_minutes`, whichever reach further):
- glitch: a reading in the lookahead returns to the last counted level, with a plausible flow
  since it. The suspicious readings up to it are glitches and yield no volume; the volume runs
  from the last counted reading to the returning one.
- reset: a drop that did not return (the meter was replaced or zeroed). The interval's volume is
  the new reading when that flow is plausible, else unknown.
- jump: an implausible rise that did not return. The interval's volume is unknown.
After a reset or a jump the meter continues from the new level.
- waiting: the lookahead is not complete yet (the newest readings); nothing counts from here on
  until more readings arrive.

Across a silent gap an interval covers several slots: `day_volumes` spreads its volume evenly
over them; only the slot of its closing reading was transmitted.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from scoring.rulebook import Meters


class Kind(StrEnum):
    FIRST = "first"  # the first reading known: the meter's level, no volume before it
    GOOD = "good"  # a plausible difference from the last counted reading
    GLITCH = "glitch"  # the meter came back from it: no volume, quarantined
    RESET = "reset"  # a drop that persisted: volume = the reading when plausible, else unknown
    JUMP = "jump"  # an implausible rise that persisted: volume unknown
    WAITING = "waiting"  # its lookahead is not complete yet


COUNTED = frozenset({Kind.FIRST, Kind.GOOD, Kind.RESET, Kind.JUMP})  # set the meter's level


class Interval(NamedTuple):
    """The volume between two counted readings: (start, end], closed by reading `closing`."""

    start: float
    end: float
    volume: float | None  # m³; None when unknown (its slots count as missing)
    closing: int


@dataclass(frozen=True, slots=True)
class Classified:
    kinds: tuple[Kind, ...]  # per reading
    # per reading: the last index whose reading its decision looked at (its own index when it
    # needed no lookahead; the number of readings when it is waiting)
    decided_by: tuple[int, ...]
    intervals: tuple[Interval, ...]  # in time order, never overlapping


def classify(
    times: Sequence[float],
    values: Sequence[float],
    meters: Meters,
    anchor: tuple[float, float] | None = None,
) -> Classified:
    """Classify readings (time order) that follow `anchor`, the last counted reading before them
    (time, value); without one the first reading is the meter's level."""
    n = len(times)
    rate = meters.max_flow_m3_per_hour / 3600.0
    ahead, window = meters.lookahead_readings, meters.lookahead_minutes * 60.0
    kinds = [Kind.GOOD] * n  # (the common case; set otherwise below)
    decided_by = list(range(n))
    intervals: list[Interval] = []
    add = intervals.append
    i = 0
    if anchor is None:
        if not n:
            return Classified((), (), ())
        kinds[0], i = Kind.FIRST, 1
        lt, lv = times[0], values[0]
    else:
        lt, lv = anchor
    while i < n:
        t, v = times[i], values[i]
        if 0.0 <= v - lv <= rate * (t - lt):  # good
            add(Interval(lt, t, v - lv, i))
            lt, lv = t, v
            i += 1
            continue
        back = beyond = None  # the reading returning to the level / the first past the lookahead
        for j in range(i + 1, n):
            tj, vj = times[j], values[j]
            if j - i > ahead and tj - t > window:
                beyond = j
                break
            if vj >= lv and vj - lv <= rate * (tj - lt):
                back = j
                break
        if back is not None:
            kinds[i:back] = [Kind.GLITCH] * (back - i)
            decided_by[i:back] = [back] * (back - i)
            tb, vb = times[back], values[back]
            add(Interval(lt, tb, vb - lv, back))
            lt, lv = tb, vb
            i = back + 1
        elif beyond is None:  # waiting, and so is everything after it
            kinds[i:] = [Kind.WAITING] * (n - i)
            decided_by[i:] = [n] * (n - i)
            break
        else:
            if v < lv:
                kinds[i], volume = Kind.RESET, (v if v <= rate * (t - lt) else None)
            else:
                kinds[i], volume = Kind.JUMP, None
            decided_by[i] = beyond
            add(Interval(lt, t, volume, i))
            lt, lv = t, v
            i += 1
    return Classified(tuple(kinds), tuple(decided_by), tuple(intervals))


def settled_before(result: Classified, end: int) -> int | None:
    """The last counted reading before reading `end` whose classification, and that of every
    reading before it, looked at no reading from `end` on: classifying the readings after it
    from it as anchor gives them the same kinds and intervals, whatever follows. None when there
    is none (the readings' own anchor stays the place to start from)."""
    best, looked = None, -1
    kinds, decided_by = result.kinds, result.decided_by
    for i in range(end):
        if decided_by[i] > looked:
            looked = decided_by[i]
            if looked >= end:
                break
        if kinds[i] is not Kind.GLITCH and kinds[i] is not Kind.WAITING:
            best = i
    return best


def slot_of(t: float, slot: float) -> int:
    """Index of the slot an observation at phenomenon time `t` belongs to: the slot [t − slot, t)
    on the grid of `slot`-long slots from the epoch (the one ending at `t` when `t` is on it)."""
    return math.floor(t / slot) - 1


@dataclass(frozen=True, slots=True)
class DayVolumes:
    """The part of a classified series in the slots [first, first + count) (a local day)."""

    volumes: tuple[float | None, ...]  # per slot; None: no volume known
    covered: tuple[bool, ...]  # per slot: a counted reading with a known volume arrived in it
    estimated: float  # m³ of the total spread from intervals reaching beyond these slots

    @property
    def total(self) -> float | None:
        known = [v for v in self.volumes if v is not None]
        return math.fsum(known) if known else None


def day_volumes(
    result: Classified, times: Sequence[float], slot: float, first: int, count: int
) -> DayVolumes:
    """Spread each interval's volume evenly over its slots (those after its start's slot up to its
    closing reading's) and keep the slots [first, first + count). A first reading counts as
    transmitted; the closing reading of an interval with a known volume too; nothing else."""
    last = first + count - 1
    volumes: list[float | None] = [None] * count
    covered = [False] * count
    estimated: list[float] = []
    floor = math.floor
    if result.kinds and result.kinds[0] is Kind.FIRST:
        s = slot_of(times[0], slot)
        if first <= s <= last:
            covered[s - first] = True
    for start, end, volume, _ in result.intervals:
        hi = floor(end / slot) - 1  # slot_of(end)
        if volume is None or hi < first:
            continue
        lo = floor(start / slot)  # slot_of(start) + 1
        if lo > hi:
            lo = hi
        if lo > last:
            break  # intervals follow each other
        if hi <= last:
            covered[hi - first] = True
        if lo == hi:  # within one slot: measured
            k = hi - first
            volumes[k] = volume if volumes[k] is None else volumes[k] + volume
            continue
        share = volume / (hi - lo + 1)
        spread = lo < first or hi > last
        for k in range(max(lo, first) - first, min(hi, last) - first + 1):
            volumes[k] = share if volumes[k] is None else volumes[k] + share
            if spread:
                estimated.append(share)
    return DayVolumes(tuple(volumes), tuple(covered), math.fsum(estimated))
