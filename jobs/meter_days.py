"""The daily rows of cumulative meters (totalizers): the rollup's claimed (datastream, day)s of
cumulative volume datastreams, classified by scoring/meters.py.

A day is classified from the meter's settled reading that the previous stored day carries
(daily_rollup.meter_at / meter_reading: the last counted reading whose classification needed
nothing after that day), through the day's readings, and on over the readings after the day that
its suspicious readings and its last interval need. Readings after a day can so change it:
- backward: each day records in `meter_tail` what its result assumed about the readings after
  its settled reading (their kinds; the interval reaching into the day from the last of them).
  When a later day's classification, which starts from that settled reading, says otherwise, the
  days from the settled reading's day to the day before are marked dirty and the rollup goes back
  to them. A reading that waited for its successor is counted that way too;
- forward: when a day's row changes, the days up to its next counted reading are marked dirty
  (silent days in between share the interval across the gap).
Glitch readings of the day are kept in the quarantine (reason `meter_glitch`), once each; a record
that no longer holds (a correction, a late reading) is withdrawn by a new row referencing it.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from scoring.meters import (
    COUNTED,
    Classified,
    Kind,
    classify,
    day_volumes,
    settled_before,
    slot_of,
)
from scoring.rulebook import Rulebook

GLITCH = "meter_glitch"
WITHDRAWN = "meter_glitch_withdrawn"
_US = 1_000_000
_CODE = {
    Kind.FIRST: "F",
    Kind.GOOD: "G",
    Kind.GLITCH: "X",
    Kind.RESET: "R",
    Kind.JUMP: "J",
    Kind.WAITING: "W",
}
_EPOCH = "'epoch'::timestamptz + {} * interval '1 microsecond'"

# The claimed cumulative datastreams: the day's bounds, the latest stored day before it that
# carries a meter state (its settled reading and tail), and the day's current row.
_INPUT = sa.text(
    """
    CREATE TEMP TABLE meter_input ON COMMIT DROP AS
    SELECT c.datastream_id, c.well_id, c.day, c.t0, c.t1, c.nslots, s.platform_id,
           (extract(epoch FROM c.t0) * 1000000)::bigint AS t0_us,
           (extract(epoch FROM c.t1) * 1000000)::bigint AS t1_us,
           r.day AS prev_day, (extract(epoch FROM r.meter_at) * 1000000)::bigint AS prev_at,
           r.meter_reading AS prev_reading, r.meter_tail AS prev_tail,
           (extract(epoch FROM ((r.day + 1)::timestamp AT TIME ZONE :tz) + :slot) * 1000000
           )::bigint AS prev_t1,
           coalesce(r.meter_at, (  -- no meter state stored: from the reading before the day
               SELECT max(o.phenomenon_time) - interval '1 microsecond' FROM observation o
               WHERE o.well_id = c.well_id AND o.datastream_id = c.datastream_id
                 AND o.phenomenon_time < c.t0), '-infinity') AS lower,
           o.datastream_id IS NOT NULL AS old_row,
           (extract(epoch FROM o.meter_at) * 1000000)::bigint AS old_at,
           o.meter_reading AS old_reading, o.meter_tail AS old_tail
    FROM claim c
    JOIN datastream s ON s.id = c.datastream_id
    LEFT JOIN LATERAL (
        SELECT d.day, d.meter_at, d.meter_reading, d.meter_tail FROM daily_rollup d
        WHERE d.datastream_id = c.datastream_id AND d.day < c.day AND d.meter_at IS NOT NULL
        ORDER BY d.day DESC LIMIT 1
    ) r ON true
    LEFT JOIN daily_rollup o ON o.datastream_id = c.datastream_id AND o.day = c.day
    WHERE c.accumulation = 'cumulative'
    """
)

_INPUTS = sa.text(
    """
    SELECT datastream_id, day, nslots, t0_us, t1_us, prev_day, prev_at, prev_reading, prev_tail,
           prev_t1, old_row, old_at, old_reading, old_tail
    FROM meter_input
    """
)

# Readings (latest revision per phenomenon time) after the meter state up to the day's end, and
# the first `ahead` after the day.
_READINGS = sa.text(
    """
    SELECT m.datastream_id, x.*
    FROM meter_input m
    CROSS JOIN LATERAL (
        SELECT array_agg((extract(epoch FROM u.phenomenon_time) * 1000000)::bigint
                         ORDER BY u.phenomenon_time) AS us,
               array_agg(u.value ORDER BY u.phenomenon_time) AS value,
               array_agg(u.revision ORDER BY u.phenomenon_time) AS rev,
               count(*) FILTER (WHERE u.phenomenon_time >= m.t1) AS after
        FROM (
            (SELECT DISTINCT ON (o.phenomenon_time) o.phenomenon_time, o.value, o.revision
             FROM observation o
             WHERE o.well_id = m.well_id AND o.datastream_id = m.datastream_id
               AND o.phenomenon_time > m.lower AND o.phenomenon_time < m.t1
             ORDER BY o.phenomenon_time, o.revision DESC)
            UNION ALL
            (SELECT DISTINCT ON (o.phenomenon_time) o.phenomenon_time, o.value, o.revision
             FROM observation o
             WHERE o.well_id = m.well_id AND o.datastream_id = m.datastream_id
               AND o.phenomenon_time >= m.t1
             ORDER BY o.phenomenon_time, o.revision DESC LIMIT :ahead)
        ) u
    ) x
    WHERE m.datastream_id = ANY(:ids) AND x.us IS NOT NULL
    """
)

_ROWS = sa.text(
    f"""
    INSERT INTO daily (datastream_id, nslots, slots, total, minimum, maximum, mean, estimated_m3,
                       meter_at, meter_reading, meter_tail)
    SELECT ds, n, CAST(slots AS varbit), total, minimum, maximum, mean, estimated,
           CASE WHEN at IS NOT NULL THEN {_EPOCH.format("at")} END, reading, tail
    FROM unnest(CAST(:ds AS int[]), CAST(:n AS int[]), CAST(:slots AS text[]),
                CAST(:total AS float8[]), CAST(:minimum AS float8[]), CAST(:maximum AS float8[]),
                CAST(:mean AS float8[]), CAST(:estimated AS float8[]), CAST(:at AS bigint[]),
                CAST(:reading AS float8[]), CAST(:tail AS text[]))
         AS r(ds, n, slots, total, minimum, maximum, mean, estimated, at, reading, tail)
    """
)

_GLITCHES = sa.text(
    f"""
    CREATE TEMP TABLE meter_glitch ON COMMIT DROP AS
    SELECT ds AS datastream_id, {_EPOCH.format("us")} AS phenomenon_time, revision, detail,
           CAST(raw AS jsonb) AS raw
    FROM unnest(CAST(:ds AS int[]), CAST(:us AS bigint[]), CAST(:revision AS int[]),
                CAST(:detail AS text[]), CAST(:raw AS text[])) AS g(ds, us, revision, detail, raw)
    """
)

# The day's glitch records made to match its glitch readings: the new ones added, those no longer
# glitches withdrawn (by a new row: the quarantine is append-only).
_QUARANTINE = sa.text(
    f"""
    WITH active AS (
        SELECT q.*, m.datastream_id, (q.raw ->> 'revision')::int AS revision
        FROM meter_input m
        JOIN quarantine q ON q.reason = '{GLITCH}' AND q.datastream_platform_id = m.platform_id
         AND q.phenomenon_time >= m.t0 AND q.phenomenon_time < m.t1
        WHERE NOT EXISTS (SELECT 1 FROM quarantine w WHERE w.withdraws_id = q.id)
    ),
    withdrawn AS (
        INSERT INTO quarantine (reason, detail, datastream_platform_id, platform_obs_id,
                                phenomenon_time, result_time, raw, withdraws_id)
        SELECT '{WITHDRAWN}', 'no longer a meter glitch: the readings around it have changed',
               a.datastream_platform_id, a.platform_obs_id, a.phenomenon_time, a.result_time,
               jsonb_build_object('withdraws', a.id), a.id
        FROM active a
        WHERE NOT EXISTS (
            SELECT 1 FROM meter_glitch g
            WHERE (g.datastream_id, g.phenomenon_time, g.revision)
                = (a.datastream_id, a.phenomenon_time, a.revision))
        RETURNING 1
    ),
    added AS (
        INSERT INTO quarantine (reason, detail, datastream_platform_id, platform_obs_id,
                                phenomenon_time, result_time, raw)
        SELECT '{GLITCH}', g.detail, m.platform_id, o.platform_obs_id, g.phenomenon_time,
               o.result_time, g.raw
        FROM meter_glitch g
        JOIN meter_input m USING (datastream_id)
        CROSS JOIN LATERAL (  -- the reading itself, by its key
            SELECT o.platform_obs_id, o.result_time FROM observation o
            WHERE o.well_id = m.well_id AND o.datastream_id = g.datastream_id
              AND o.phenomenon_time = g.phenomenon_time AND o.revision = g.revision
            LIMIT 1  -- (kept a lookup: not flattened into a join of every reading)
        ) o
        WHERE NOT EXISTS (
            SELECT 1 FROM active a
            WHERE (a.datastream_id, a.phenomenon_time, a.revision)
                = (g.datastream_id, g.phenomenon_time, g.revision))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM withdrawn)
    """
)

_MARK = sa.text(
    """
    INSERT INTO dirty_day (datastream_id, day)
    SELECT m.ds, g.day::date
    FROM unnest(CAST(:ds AS int[]), CAST(:first AS date[]), CAST(:last AS date[]))
         AS m(ds, first, last)
    CROSS JOIN LATERAL generate_series(m.first, m.last, interval '1 day') g(day)
    ON CONFLICT DO NOTHING
    """
)


@dataclass
class MeterDays:
    """What the cumulative part of one day's rollup did."""

    streams: int = 0
    glitches_added: int = 0
    glitches_withdrawn: int = 0
    back_to: date | None = None  # the earliest earlier day marked dirty: go back to it
    marks: list[tuple[int, date, date]] = field(default_factory=list)  # (datastream, first, last)


def roll_meter_day(
    conn: sa.Connection, rb: Rulebook, tz: str, slot: timedelta, day: date
) -> MeterDays:
    """Classify the claimed cumulative datastreams of `day` and add their rows to `daily`; keep
    their glitch records; mark the days their change reaches. Needs the `claim` and `daily`
    temporary tables of jobs/rollup.py."""
    out = MeterDays()
    conn.execute(_INPUT, {"tz": tz, "slot": slot})
    inputs = {r.datastream_id: r for r in conn.execute(_INPUTS)}
    if not inputs:
        return out
    out.streams = len(inputs)
    days = _Days(ZoneInfo(tz), slot.total_seconds())
    meters = rb.meters
    ahead = 2 * (meters.lookahead_readings + 2) + 4 * math.ceil(
        meters.lookahead_minutes * 60 / days.slot
    )
    rows: list[tuple] = []
    glitches: list[tuple] = []
    pending = set(inputs)
    while pending:
        fetched = conn.execute(_READINGS, {"ids": sorted(pending), "ahead": ahead}).all()
        pending = set()
        for r in fetched:
            row, glitch, marks, determined = _classify_day(inputs[r.datastream_id], r, rb, days)
            if not determined and r.after >= ahead:
                pending.add(r.datastream_id)  # a decision lies beyond the readings fetched
                continue
            if row is not None:
                rows.append(row)
            glitches.extend(glitch)
            out.marks.extend(marks)
        ahead *= 8
    if rows:
        conn.execute(_ROWS, _columns(rows, _ROW_COLUMNS))
    conn.execute(_GLITCHES, _columns(glitches, ("ds", "us", "revision", "detail", "raw"), size=5))
    out.glitches_added, out.glitches_withdrawn = conn.execute(_QUARANTINE).one()
    if out.marks:
        conn.execute(_MARK, _columns(out.marks, ("ds", "first", "last"), size=3))
        out.back_to = min((first for _, first, _ in out.marks if first < day), default=None)
    return out


_ROW_COLUMNS = (
    "ds", "n", "slots", "total", "minimum", "maximum", "mean", "estimated", "at", "reading", "tail",
)  # fmt: skip


def _columns(rows: list[tuple], names: tuple[str, ...], size: int | None = None) -> dict:
    cols = list(zip(*rows, strict=True)) if rows else [()] * (size or len(names))
    return {name: list(col) for name, col in zip(names, cols, strict=True)}


@dataclass(frozen=True)
class _Days:
    zone: ZoneInfo
    slot: float  # seconds

    def of(self, us: int) -> date:
        """The local day of an observation at phenomenon time `us` (that of t − slot)."""
        return datetime.fromtimestamp(us / _US - self.slot, self.zone).date()

    def local(self, us: int) -> str:
        return datetime.fromtimestamp(us / _US, self.zone).isoformat(timespec="minutes")


def _classify_day(m, r, rb: Rulebook, days: _Days):
    """(row or None, glitch records, dirty marks, determined) of one datastream-day: not
    determined when something the day needs waits for readings after those given."""
    us: list[int] = r.us
    times = [t / _US for t in us]
    values: list[float] = r.value
    anchor = (m.prev_at / _US, m.prev_reading) if m.prev_at is not None else None
    result = classify(times, values, rb.meters, anchor)
    slot = days.slot
    first_slot = slot_of(m.t0_us / _US, slot)
    last_slot = first_slot + m.nslots - 1
    start = bisect.bisect_left(us, m.t0_us)
    end = bisect.bisect_left(us, m.t1_us)
    # The settled reading the next day starts from (else the one this day started from), and
    # what this day assumes about the readings after it.
    carry = settled_before(result, end)
    own_tail, determined = _tail(result, times, anchor, end, last_slot, slot, after=carry)
    if carry is not None:
        carry_at, carry_reading = us[carry], values[carry]
    else:
        carry_at, carry_reading = m.prev_at, m.prev_reading
    marks: list[tuple[int, date, date]] = []
    if m.prev_day is not None:  # did the previous stored day assume the same?
        prev_end = bisect.bisect_left(us, m.prev_t1)
        prev_last = slot_of(m.prev_t1 / _US, slot) - 1
        implied, _ = _tail(result, times, anchor, prev_end, prev_last, slot)
        if implied != m.prev_tail:
            marks.append((m.datastream_id, days.of(m.prev_at), m.day - timedelta(days=1)))

    volumes = day_volumes(result, times, slot, first_slot, m.nslots)
    known = [v for v in volumes.volumes if v is not None]
    row = None
    if end > start or known:
        total = math.fsum(known) if known else None
        row = (
            m.datastream_id,
            m.nslots,
            "".join("1" if c else "0" for c in volumes.covered),
            total,
            min(known, default=None),
            max(known, default=None),
            total / len(known) if known else None,
            volumes.estimated,
            carry_at,
            carry_reading,
            own_tail,
        )
    # The days after this one start from its meter state: when it changed, they change.
    old = (m.old_at, m.old_reading, m.old_tail) if m.old_row else None
    if (row and (carry_at, carry_reading, own_tail)) != old:
        marks.extend(_forward(m.datastream_id, result, us, end, m.day, days))

    glitches = []
    if Kind.GLITCH in result.kinds[start:end]:
        level = _levels(result, anchor, times, values)
        for i in range(start, end):
            if result.kinds[i] is Kind.GLITCH:
                glitches.append(_glitch(m.datastream_id, i, result, us, values, r.rev, level, days))
    return row, glitches, marks, determined


def _glitch(ds, i, result, us, values, revisions, level, days: _Days) -> tuple:
    back = result.decided_by[i]
    lt, lv = level[i]
    raw = {
        "reading": values[i],
        "revision": revisions[i],
        "level": lv,
        "levelAt": days.local(round(lt * _US)),
        "returnsTo": values[back],
        "returnsAt": days.local(us[back]),
    }
    detail = (
        f"meter reading {values[i]!r} m3 at {days.local(us[i])}: the meter came back to its "
        f"level ({lv!r} m3 at {raw['levelAt']}) at {raw['returnsAt']}; no volume"
    )
    return ds, us[i], revisions[i], detail, json.dumps(raw)


def _forward(ds: int, result: Classified, us: list[int], end: int, day: date, days: _Days):
    """Marks for the days after `day` up to its next counted reading (else its next reading)."""
    nxt = next((i for i in range(end, len(us)) if result.kinds[i] in COUNTED), None)
    if nxt is None and end < len(us):
        nxt = end
    if nxt is None:
        return []
    first, last = day + timedelta(days=1), days.of(us[nxt])
    return [(ds, first, last)] if last >= first else []


def _levels(result: Classified, anchor, times, values) -> list[tuple[float, float]]:
    """Per reading: the last counted reading before it (time, value)."""
    out, level = [], anchor
    for i, kind in enumerate(result.kinds):
        out.append(level)
        if kind in COUNTED:
            level = (times[i], values[i])
    return out


def _tail(
    result: Classified,
    times: list[float],
    anchor: tuple[float, float] | None,
    end: int,
    last_slot: int,
    slot: float,
    after: int | None = None,
) -> tuple[str, bool]:
    """What a day ending before reading `end` (its last slot `last_slot`) assumes about the
    readings after reading `after` (None: after the anchor): their kinds up to the day's end,
    and the interval that closes after the day if it reaches into the day. And whether all that
    is decided by the readings given."""
    first = 0 if after is None else after + 1
    kinds = result.kinds[first:end]
    determined = Kind.WAITING not in kinds
    start = next((times[i] for i in range(end - 1, -1, -1) if result.kinds[i] in COUNTED), None)
    if start is None and anchor is not None:
        start = anchor[0]
    closing = ""
    if start is not None and slot_of(start, slot) + 1 <= last_slot:
        iv = next((iv for iv in result.intervals if iv.closing >= end), None)
        if iv is None:
            closing = "?"
            determined = False
        else:
            closing = f"{round(iv.end * _US)}:{_CODE[result.kinds[iv.closing]]}:{iv.volume!r}"
    return "".join(_CODE[k] for k in kinds) + "|" + closing, determined
