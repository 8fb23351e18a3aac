"""Incremental rollups, set-based in SQL: observations → daily rows → outage slots → project months.

Only what changed is recomputed:
- days: every (datastream, local day) in `dirty_day` (marked by ingest), day by day in ascending
  order. Cumulative meters are classified in jobs/meter_days.py, which marks the days a change
  reaches (the next days; earlier ones whose result assumed other readings, which the loop then
  goes back to);
- outage slots of each recomputed day (from the volume streams' slot masks);
- project months: the months of recomputed days for the projects of their datastreams (noted in
  `dirty_month` with the day, so a crash in between loses nothing); every project for months
  whose outage slots, evaluated part (the watermark moved) or finality changed; the months of a
  project from the one in which a new registry version (of it, its wells, permits or
  datastreams) took effect.
Companies whose month metrics changed are marked for the next scoring run (`score_dirty`).

Definitions (docs/rulebook.md; all days and months are local, in the rulebook's time zone):
- an observation belongs to the slot [t − 15 min, t) of its phenomenon time t (the END of the
  interval) and to the local day of t − 15 min; the highest revision per (datastream, t) counts;
- a cumulative meter's readings become interval volumes by scoring/meters.py: a glitch yields no
  volume (quarantined as `meter_glitch`), a reset or a jump that persists an interval of known or
  unknown volume, the newest suspicious readings wait; an interval across a silent gap is spread
  evenly over its slots, of which only the closing reading's counts as received; a day's share
  of an interval reaching beyond it is estimated (`estimated_m3`), and such a day is not judged
  for the daily intensity cap;
- registry facts (registry.facts): each day is judged with the project, well and permit versions
  in force at its local midnight, so a month is cut into segments wherever a version took effect;
  a project is operating on a day when its flag and at least one of its wells' flags say so, or
  when it reports extraction that day (then every well of it counts that day);
- a slot is an outage slot when at least `outage_share` of the operating water-taking projects
  have no volume (extraction or reinjection) data in it; a day without any row in `outage_day` is
  all outage (nobody sent anything);
- completeness = received / expected slots, both outside outage slots and inside the month's
  evaluated part (scoring.periods.month_scope, per segment); extraction and reinjection count per
  operating well of that role (a well with no datastream counts as silent), level, temperature
  and quality per datastream of an operating well;
- months are kept from the heating season before applies_from's (its water levels are the first
  season's baseline); year-to-date extraction counts from the later of 1 January and applies_from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from jobs.dirty_days import claim_day
from jobs.meter_days import roll_meter_day
from jobs.validation import VOLUMES
from registry.facts import day_start, first_day, in_force, versions
from scoring import periods
from scoring.model import ProjectType
from scoring.rulebook import Rulebook, load_rulebook

Progress = Callable[[str, int, int | None], None]
"""progress(stage, done, total): called as work advances (total None when unknown)."""

_MAX_RETURNS = 8  # per day and run, see _roll_days


@dataclass
class RollupResult:
    days: int = 0  # local days recomputed
    datastream_days: int = 0  # daily rows recomputed
    outage_days_changed: int = 0
    months: int = 0  # (month) batches of project months recomputed
    project_months: int = 0
    watermark: datetime | None = None
    recomputed_months: list[str] = field(default_factory=list)
    meter_glitches: int = 0  # glitch readings of cumulative meters newly quarantined
    meter_glitches_withdrawn: int = 0  # glitch records that no longer hold, withdrawn

    def counts(self) -> dict:
        return {
            "days": self.days,
            "datastream_days": self.datastream_days,
            "outage_days_changed": self.outage_days_changed,
            "meter_glitches": self.meter_glitches,
            "meter_glitches_withdrawn": self.meter_glitches_withdrawn,
            "months": self.months,
            "project_months": self.project_months,
            "watermark": self.watermark.isoformat() if self.watermark else None,
        }


# ------------------------------------------------------------------------------------ SQL

# Projects and wells as on the local day :day (at its midnight).
_DAY_PROJECTS = in_force("project_version", day_start("CAST(:day AS date)"))
_DAY_WELLS = in_force("well_version", day_start("CAST(:day AS date)"))

# Interval datastreams; cumulative ones are added by jobs/meter_days.py.
_DAILY = sa.text(
    """
    CREATE TEMP TABLE daily ON COMMIT DROP AS
    WITH latest AS (
        SELECT DISTINCT ON (o.datastream_id, o.phenomenon_time)
               c.datastream_id, o.phenomenon_time, o.value AS v,
               floor(extract(epoch FROM o.phenomenon_time - c.t0) / :slot_s)::int AS slot,
               c.nslots, c.indicator
        FROM claim c JOIN observation o
          ON o.well_id = c.well_id AND o.datastream_id = c.datastream_id
         AND o.phenomenon_time >= c.t0 AND o.phenomenon_time < c.t1
        WHERE c.accumulation <> 'cumulative'
        ORDER BY o.datastream_id, o.phenomenon_time, o.revision DESC
    )
    SELECT datastream_id, max(nslots) AS nslots,
           bit_or(('1' || repeat('0', nslots - 1))::varbit >> slot) AS slots,
           CASE WHEN max(indicator) IN ('extraction_volume', 'reinjection_volume')
                THEN sum(v ORDER BY phenomenon_time) END AS total,
           min(v) AS minimum, max(v) AS maximum, avg(v) AS mean,
           0::float8 AS estimated_m3, NULL::timestamptz AS meter_at,
           NULL::float8 AS meter_reading, NULL::text AS meter_tail
    FROM latest GROUP BY datastream_id
    """
)

_STORE_DAILY = [
    sa.text(
        "DELETE FROM daily_rollup r USING claim c "
        "WHERE r.datastream_id = c.datastream_id AND r.day = c.day"
    ),
    sa.text(
        "DELETE FROM daily_coverage r USING claim c "
        "WHERE r.datastream_id = c.datastream_id AND r.day = c.day"
    ),
    sa.text(
        """
        INSERT INTO daily_rollup (datastream_id, day, n, total, minimum, maximum, mean,
                                  estimated_m3, meter_at, meter_reading, meter_tail)
        SELECT datastream_id, :day, bit_count(slots), total, minimum, maximum, mean,
               estimated_m3, meter_at, meter_reading, meter_tail
        FROM daily
        """
    ),
    sa.text(
        "INSERT INTO daily_coverage (datastream_id, day, slots) "
        "SELECT datastream_id, :day, slots FROM daily"
    ),
]

# Per slot: how many operating water-taking projects (as on that day) sent any volume data;
# outage when the silent ones are at least outage_share of them. A project that sent volume
# data that day counts as operating, whatever its flags say.
_OUTAGE = sa.text(
    f"""
    WITH p AS ({_DAY_PROJECTS}),
    w AS ({_DAY_WELLS}),
    covered AS (
        SELECT w.project_id, bit_or(dc.slots) AS slots
        FROM daily_coverage dc
        JOIN datastream ds ON ds.id = dc.datastream_id
        JOIN w ON w.well_id = ds.well_id
        JOIN p ON p.project_id = w.project_id AND p.type = ANY(:water_taking)
        WHERE dc.day = :day AND ds.indicator = ANY(:volumes)
        GROUP BY w.project_id
    ),
    wt AS (
        SELECT project_id FROM p
        WHERE operating AND type = ANY(:water_taking)
          AND EXISTS (SELECT 1 FROM w WHERE w.project_id = p.project_id AND w.operating)
        UNION SELECT project_id FROM covered
    ),
    per_slot AS (
        SELECT i, count(*) FILTER (WHERE get_bit(c.slots, i) = 1) AS sending
        FROM covered c CROSS JOIN generate_series(0, :nslots - 1) i
        GROUP BY i
    ),
    total AS (SELECT count(*) AS projects FROM wt)
    SELECT t.projects,
           string_agg(CASE WHEN t.projects > 0
                            AND t.projects - coalesce(s.sending, 0) >= :share * t.projects
                           THEN '1' ELSE '0' END, '' ORDER BY g.i)::varbit AS slots
    FROM generate_series(0, :nslots - 1) g(i)
    CROSS JOIN total t
    LEFT JOIN per_slot s ON s.i = g.i
    GROUP BY t.projects
    """
)

_STORE_OUTAGE = sa.text(
    """
    INSERT INTO outage_day (day, projects, slots, outage_slots, computed_at)
    VALUES (:day, :projects, CAST(:slots AS varbit), bit_count(CAST(:slots AS varbit)), now())
    ON CONFLICT (day) DO UPDATE SET projects = EXCLUDED.projects, slots = EXCLUDED.slots,
        outage_slots = EXCLUDED.outage_slots, computed_at = EXCLUDED.computed_at
    """
)

_DAY_COMPLETENESS = sa.text(
    """
    UPDATE daily_coverage dc
    SET completeness = bit_count(dc.slots & ~o.slots)::float8 / nullif(bit_count(~o.slots), 0)
    FROM outage_day o
    WHERE o.day = dc.day AND dc.day = :day
      AND (:all_rows OR dc.datastream_id IN (SELECT datastream_id FROM claim))
    """
)

# The project months the claimed (datastream, day) rows change (the project the well belonged to
# that day); project 0 = every project, when the day's outage slots changed. Kept in a table: a
# crash between the day's and the month's recompute must not lose them.
_TOUCHED = sa.text(
    f"""
    INSERT INTO dirty_month (month, project_id)
    SELECT DISTINCT date_trunc('month', CAST(:day AS date))::date, w.project_id
    FROM claim c JOIN ({_DAY_WELLS}) w ON w.well_id = c.well_id
    UNION ALL
    SELECT date_trunc('month', CAST(:day AS date))::date, 0 WHERE :outage_changed
    ON CONFLICT DO NOTHING
    """
)

# ------------------------------------------------------------------------------ months
# A month of a set of projects (:ids) is cut into segments: a project segment is a run of days
# with the same project version, a well part the days of a project segment with the same well
# version. Each project segment has its evaluated part (month_scope, clipped to its days); a well
# part, that part clipped to its own days. Evaluated parts start at a local midnight.


def _segments(table: str, key: str, where: str, columns: str) -> str:
    """Runs of days of the month with the same version of each entity: (key, first_day,
    last_day, columns)."""
    return f"""
        WITH v AS ({versions(table, where)}),
        starts AS (
            SELECT {key}, CAST(:month AS date) AS day FROM v WHERE took_effect IS NULL
            UNION
            SELECT {key}, {first_day("took_effect")} FROM v
            WHERE took_effect > {day_start("CAST(:month AS date)")}
              AND {first_day("took_effect")} < :next
        ),
        picked AS (
            SELECT DISTINCT ON (s.{key}, s.day) s.{key}, s.day, {columns}
            FROM starts s JOIN v ON v.{key} = s.{key}
             AND (v.took_effect IS NULL OR v.took_effect <= {day_start("s.day")})
            ORDER BY s.{key}, s.day, v.id DESC
        )
        SELECT {key}, day AS first_day,
               coalesce(lead(day) OVER (PARTITION BY {key} ORDER BY day),
                        CAST(:next AS date)) - 1 AS last_day,
               {columns.replace("v.", "")}
        FROM picked
    """


_PSEG = sa.text(
    "CREATE TEMP TABLE pseg ON COMMIT DROP AS "
    + _segments(
        "project_version", "project_id", "v.project_id = ANY(:ids)",
        "v.company_id, v.type, v.city, v.operating",
    )
)  # fmt: skip

# Well parts: well segments of the month within the segments of the project they belong to.
# `counted`: the well and its project are flagged operating on those days.
_WP = sa.text(
    f"""
    CREATE TEMP TABLE wp ON COMMIT DROP AS
    WITH wseg AS ({
        _segments(
            "well_version", "well_id",
            "v.well_id IN (SELECT well_id FROM well_version WHERE project_id = ANY(:ids))",
            "v.project_id, v.role, v.aquifer, v.operating",
        )
    })
    SELECT w.project_id, w.well_id, p.first_day AS segment,
           greatest(w.first_day, p.first_day) AS first_day,
           least(w.last_day, p.last_day) AS last_day,
           w.role, w.aquifer, w.operating AND p.operating AS counted
    FROM wseg w JOIN pseg p ON p.project_id = w.project_id
     AND p.first_day <= w.last_day AND w.first_day <= p.last_day
    """
)  # fmt: skip

# Days with extraction that matter beyond the flags: on a non-heating day (the whole month is
# then in scope), and on a day without any counted well of the project (the project is operating
# that day: every well of it counts).
_XDAY = sa.text(
    """
    CREATE TEMP TABLE xday ON COMMIT DROP AS
    WITH heat AS (
        SELECT * FROM unnest(CAST(:cities AS text[]), CAST(:heat_first AS date[]),
                             CAST(:heat_last AS date[])) h(city, first, last)
    )
    SELECT DISTINCT w.project_id, dr.day,
           h.first IS NULL OR dr.day NOT BETWEEN h.first AND h.last AS off_season,
           NOT EXISTS (SELECT 1 FROM wp c WHERE c.project_id = w.project_id AND c.counted
                       AND dr.day BETWEEN c.first_day AND c.last_day) AS override
    FROM wp w
    JOIN pseg p ON p.project_id = w.project_id AND p.first_day = w.segment
    LEFT JOIN heat h ON h.city = p.city
    JOIN datastream ds ON ds.well_id = w.well_id AND ds.indicator = 'extraction_volume'
    JOIN daily_rollup dr ON dr.datastream_id = ds.id
     AND dr.day >= w.first_day AND dr.day <= w.last_day AND dr.total > 0
    WHERE NOT w.counted OR h.first IS NULL OR dr.day NOT BETWEEN h.first AND h.last
    """
)

# Each project segment's evaluated part, as scoring.periods.month_scope gives it (times as
# epoch seconds, segments as days into the month: arrays of numbers are quick to send).
_PSCOPE = sa.text(
    """
    CREATE TEMP TABLE pscope ON COMMIT DROP AS
    SELECT s.project_id, CAST(:month AS date) + s.day_offset AS segment, s.evaluated,
           to_timestamp(s.start_s) AS start_ts, to_timestamp(s.end_s) AS end_ts,
           p.operating AS flag_operating, p.type, p.city
    FROM unnest(
        CAST(:project_id AS int[]), CAST(:offset AS int[]), CAST(:evaluated AS bool[]),
        CAST(:start_s AS float8[]), CAST(:end_s AS float8[])
    ) AS s(project_id, day_offset, evaluated, start_s, end_s)
    JOIN pseg p ON p.project_id = s.project_id
     AND p.first_day = CAST(:month AS date) + s.day_offset
    """
)

# One row per project: the month's evaluated part (from its first to its last evaluated day),
# the facts it is judged with (those of its last evaluated segment, else of its last one).
_SCOPE = sa.text(
    """
    CREATE TEMP TABLE scope ON COMMIT DROP AS
    WITH heat AS (
        SELECT * FROM unnest(CAST(:cities AS text[]), CAST(:heat_first AS date[]),
                             CAST(:heat_last AS date[]), CAST(:seasons AS int[]))
                      h(city, first, last, season)
    ),
    facts AS (
        SELECT DISTINCT ON (project_id) * FROM pscope
        ORDER BY project_id, evaluated DESC, segment DESC
    ),
    parts AS (
        SELECT project_id, bool_or(evaluated) AS evaluated,
               min(start_ts) FILTER (WHERE evaluated) AS start_ts,
               max(end_ts) FILTER (WHERE evaluated) AS end_ts, min(start_ts) AS first_start,
               bool_or(flag_operating) FILTER (WHERE evaluated) AS flag_operating
        FROM pscope GROUP BY project_id
    )
    SELECT p.project_id, p.evaluated, coalesce(p.start_ts, p.first_start) AS start_ts,
           coalesce(p.end_ts, p.first_start) AS end_ts, h.first AS heat_first,
           h.last AS heat_last, h.season, f.type AS project_type,
           CASE WHEN p.evaluated
                THEN ((p.end_ts - interval '1 microsecond') AT TIME ZONE :tz)::date
                ELSE CAST(:next AS date) - 1 END AS facts_day,
           coalesce(p.flag_operating, false) AS flag_operating,
           NULL::float8 AS permit_daily, NULL::float8 AS permit_annual,
           false AS operating, false AS no_operating_wells
    FROM parts p JOIN facts f USING (project_id) LEFT JOIN heat h ON h.city = f.city
    """
)

# The water permit in force on the facts day; operating = on some day of the month.
_SCOPE_FACTS = [
    sa.text(
        f"""
        UPDATE scope sc SET permit_daily = p.daily_intensity_m3,
                            permit_annual = p.annual_total_m3
        FROM (
            SELECT DISTINCT ON (s.project_id) s.project_id, v.daily_intensity_m3,
                   v.annual_total_m3
            FROM scope s JOIN ({
            versions("permit", "v.kind = 'WATER_PERMIT' AND v.project_id = ANY(:ids)")
        }) v ON v.project_id = s.project_id
             AND (v.took_effect IS NULL OR v.took_effect <= {day_start("s.facts_day")})
            ORDER BY s.project_id, v.id DESC
        ) p
        WHERE p.project_id = sc.project_id
        """
    ),
    sa.text(
        """
        UPDATE scope sc SET operating = true
        WHERE EXISTS (SELECT 1 FROM wp WHERE wp.project_id = sc.project_id AND wp.counted)
           OR EXISTS (SELECT 1 FROM xday x WHERE x.project_id = sc.project_id AND x.override)
        """
    ),
    # Flagged operating on an evaluated day, but no operating well and no extraction at all.
    sa.text("UPDATE scope SET no_operating_wells = evaluated AND flag_operating AND NOT operating"),
]

# Expected slots per distinct evaluated part: per day, the slots not in outage and ending by
# the end of the evaluated part (the watermark may cut the last day).
_AVAIL = sa.text(
    """
    CREATE TEMP TABLE avail ON COMMIT DROP AS
    WITH parts AS (
        SELECT start_ts, end_ts FROM pscope WHERE evaluated
        UNION SELECT start_ts, end_ts FROM wparts WHERE evaluated
    ),
    days AS (
        SELECT p.start_ts, p.end_ts, g.day::date AS day,
               (g.day::date::timestamp AT TIME ZONE :tz) AS day_start,
               (extract(epoch FROM ((g.day::date + 1)::timestamp AT TIME ZONE :tz)
                                  - (g.day::date::timestamp AT TIME ZONE :tz)) / :slot_s)::int
               AS nslots
        FROM parts p CROSS JOIN LATERAL generate_series(
            p.start_ts AT TIME ZONE :tz, (p.end_ts AT TIME ZONE :tz) - interval '1 microsecond',
            interval '1 day') g(day)
    ),
    masks AS (
        SELECT d.start_ts, d.end_ts, d.day,
               coalesce(o.slots, repeat('1', d.nslots)::varbit) AS outage,
               (repeat('1', k.n) || repeat('0', d.nslots - k.n))::varbit AS in_part
        FROM days d
        CROSS JOIN LATERAL (SELECT least(d.nslots, greatest(0, floor(
            extract(epoch FROM d.end_ts - d.day_start) / :slot_s)))::int AS n) k
        LEFT JOIN outage_day o ON o.day = d.day
    )
    SELECT start_ts, end_ts, day, ~outage & in_part AS expected, outage & in_part AS outage
    FROM masks
    """
)

# Well parts with their evaluated part (the segment's, clipped to the part's days).
_WPARTS = sa.text(
    f"""
    CREATE TEMP TABLE wparts ON COMMIT DROP AS
    SELECT w.project_id, w.well_id, w.role, w.aquifer, w.counted, w.first_day, w.last_day,
           s.evaluated AND c.start_ts < c.end_ts AS evaluated, c.start_ts, c.end_ts,
           0 AS expected
    FROM wp w JOIN pscope s ON s.project_id = w.project_id AND s.segment = w.segment
    CROSS JOIN LATERAL (
        SELECT greatest(s.start_ts, {day_start("w.first_day")}) AS start_ts,
               least(s.end_ts, {day_start("w.last_day + 1")}) AS end_ts
    ) c
    """
)

# Expected slots of each well part: its part's, on the days it counts (all, when flagged
# operating; else the days its project reported extraction without any operating well).
_WEXP = sa.text(
    """
    WITH part AS (
        SELECT start_ts, end_ts, sum(bit_count(expected))::int AS expected
        FROM avail GROUP BY start_ts, end_ts
    )
    UPDATE wparts w SET expected = CASE
        WHEN NOT w.evaluated THEN 0
        WHEN w.counted THEN (SELECT pt.expected FROM part pt
                             WHERE pt.start_ts = w.start_ts AND pt.end_ts = w.end_ts)
        ELSE (SELECT coalesce(sum(bit_count(a.expected)), 0)::int FROM avail a
              JOIN xday x ON x.project_id = w.project_id AND x.day = a.day AND x.override
              WHERE a.start_ts = w.start_ts AND a.end_ts = w.end_ts) END
    """
)

_STREAMS = sa.text(
    """
    CREATE TEMP TABLE streams ON COMMIT DROP AS
    SELECT w.project_id, w.evaluated, w.start_ts, w.end_ts, sc.heat_first, sc.heat_last,
           w.well_id, w.role, w.aquifer, w.counted, w.first_day, w.last_day,
           ds.id AS datastream_id, ds.indicator, ds.solo
    FROM wparts w
    JOIN scope sc USING (project_id)
    JOIN (
        SELECT id, well_id, indicator,
               count(*) OVER (PARTITION BY well_id, indicator) = 1 AS solo
        FROM datastream
    ) ds ON ds.well_id = w.well_id
    """
)

# Per project and aquifer: the month's daily rows summed, one pass over them — first per stream
# (each stream's days read by primary-key range: the cost does not grow with history), then per
# project and aquifer. Volumes are summed as numeric, exact whatever the order of the rows;
# means are rounded to 6 decimals. `expected`: the day's expected slots in the stream's
# evaluated part (NULL outside it, which lies within the stream's days); `own`: a day of the
# stream's part of the month (a well with several versions in the month has a stream row per
# part); `counts`: the well counts that day (see _WEXP).
_PROJECT_DAYS = sa.text(
    """
    CREATE TEMP TABLE pd ON COMMIT DROP AS
    WITH parts AS (
        SELECT start_ts, end_ts, min(day) AS first, array_agg(expected ORDER BY day) AS expected
        FROM avail GROUP BY start_ts, end_ts
    ),
    per_stream AS (
        SELECT s.project_id, s.aquifer, s.indicator, s.role, s.solo, x.*
        FROM streams s
        LEFT JOIN parts p ON s.evaluated AND p.start_ts = s.start_ts AND p.end_ts = s.end_ts
        CROSS JOIN LATERAL (
            SELECT sum(d.total) FILTER (WHERE d.expected IS NOT NULL) AS total,
                   sum(d.value_sum) FILTER (WHERE d.expected IS NOT NULL) AS value_sum,
                   sum(d.n) FILTER (WHERE d.expected IS NOT NULL) AS n,
                   sum(d.total) FILTER (WHERE d.own AND d.day >= :applies_from) AS total_all,
                   sum(d.value_sum) FILTER (
                       WHERE d.own AND d.day BETWEEN s.heat_first AND s.heat_last) AS heat_sum,
                   sum(d.n) FILTER (
                       WHERE d.own AND d.day BETWEEN s.heat_first AND s.heat_last) AS heat_n,
                   sum(bit_count(d.slots & d.expected)) FILTER (WHERE d.counts) AS metered
            FROM (
                SELECT dr.day, dr.n, dr.total::numeric AS total, dr.mean * dr.n AS value_sum,
                       dc.slots, dr.day BETWEEN s.first_day AND s.last_day AS own,
                       p.expected[dr.day - p.first + 1] AS expected,
                       CASE WHEN s.counted THEN true ELSE EXISTS (
                           SELECT 1 FROM xday x
                           WHERE x.project_id = s.project_id AND x.day = dr.day AND x.override
                       ) END AS counts
                FROM (SELECT * FROM daily_rollup WHERE datastream_id = s.datastream_id
                        AND day >= :month AND day < :next) dr
                LEFT JOIN (SELECT day, slots FROM daily_coverage
                           WHERE datastream_id = s.datastream_id
                             AND day >= :month AND day < :next) dc USING (day)
            ) d
        ) x
    )
    SELECT project_id, aquifer,
           sum(total) FILTER (WHERE indicator = 'extraction_volume') AS extraction,
           sum(total) FILTER (WHERE indicator = 'reinjection_volume') AS reinjection,
           sum(value_sum) FILTER (WHERE role = 'REINJECTION'
                                    AND indicator = 'water_quality_tds') AS tds_sum,
           sum(n) FILTER (WHERE role = 'REINJECTION' AND indicator = 'water_quality_tds') AS tds_n,
           sum(value_sum) FILTER (WHERE role = 'REINJECTION'
                                    AND indicator = 'water_quality_ph') AS ph_sum,
           sum(n) FILTER (WHERE role = 'REINJECTION' AND indicator = 'water_quality_ph') AS ph_n,
           sum(total_all) FILTER (WHERE indicator = 'extraction_volume') AS extraction_all,
           sum(heat_sum) FILTER (WHERE indicator = 'water_level') AS level_sum,
           sum(heat_n) FILTER (WHERE indicator = 'water_level') AS level_n,
           sum(metered) FILTER (WHERE solo AND role = 'EXTRACTION'
                                  AND indicator = 'extraction_volume') AS metered_e,
           sum(metered) FILTER (WHERE solo AND role = 'REINJECTION'
                                  AND indicator = 'reinjection_volume') AS metered_r,
           sum(metered) FILTER (WHERE indicator = 'water_level') AS level,
           sum(metered) FILTER (WHERE indicator = 'water_temperature') AS temperature,
           sum(metered) FILTER (
               WHERE indicator IN ('water_quality_tds', 'water_quality_ph')) AS quality
    FROM per_stream
    GROUP BY project_id, aquifer
    """
)

# Per project: its largest daily extraction in the evaluated part, and the days over the permit;
# days whose extraction was partly estimated (spread across a silent gap) are not judged.
_PEAKS = sa.text(
    """
    CREATE TEMP TABLE peaks ON COMMIT DROP AS
    SELECT project_id, max(m3) AS max_daily, count(*) FILTER (WHERE m3 > permit_daily) AS days_over
    FROM (
        SELECT s.project_id, dr.day, sum(dr.total::numeric) AS m3
        FROM streams s
        JOIN avail a ON a.start_ts = s.start_ts AND a.end_ts = s.end_ts
        CROSS JOIN LATERAL (
            SELECT day, total, estimated_m3 FROM daily_rollup
            WHERE datastream_id = s.datastream_id AND day >= :month AND day < :next
        ) dr
        WHERE s.evaluated AND s.indicator = 'extraction_volume' AND dr.day = a.day
        GROUP BY s.project_id, dr.day
        HAVING bool_and(dr.estimated_m3 = 0)
    ) d JOIN scope USING (project_id)
    GROUP BY project_id
    """
)

_METRIC_COLUMNS = (
    "operating", "evaluated", "final", "scope_start", "scope_end", "expected_slots",
    "outage_slots", "extraction_completeness", "reinjection_completeness", "level_completeness",
    "temperature_completeness", "quality_completeness", "layers", "max_daily_extraction_m3",
    "days_over_daily_limit", "extraction_m3", "season", "season_level_sum", "season_level_n",
    "project_type", "permit_annual_m3", "permit_daily_m3", "no_operating_wells",
)  # fmt: skip

# The companies whose month metrics (or year to date) changed: scored at the next run.
_MARK_COMPANIES = """
    INSERT INTO score_dirty (company_id)
    SELECT DISTINCT ON (v.project_id) v.company_id FROM project_version v
    WHERE v.project_id IN (SELECT project_id FROM changed)
    ORDER BY v.project_id, v.id DESC
    ON CONFLICT DO NOTHING
"""

# Only rows whose values changed are written (and their companies marked).
_STORE_MONTHS = sa.text(
    f"""
    WITH part AS (
        SELECT start_ts, end_ts, sum(bit_count(expected))::int AS expected,
               sum(bit_count(outage))::int AS outage
        FROM avail GROUP BY start_ts, end_ts
    ),
    project_part AS (
        SELECT s.project_id, sum(pt.expected)::int AS expected, sum(pt.outage)::int AS outage
        FROM pscope s JOIN part pt ON pt.start_ts = s.start_ts AND pt.end_ts = s.end_ts
        WHERE s.evaluated GROUP BY s.project_id
    ),
    expected_streams AS (  -- per role (extraction, reinjection) and per datastream (others)
        SELECT w.project_id,
               sum(w.expected) FILTER (WHERE w.role = 'EXTRACTION') AS extraction,
               sum(w.expected) FILTER (WHERE w.role = 'REINJECTION') AS reinjection,
               sum(w.expected * n.level) AS level,
               sum(w.expected * n.temperature) AS temperature,
               sum(w.expected * n.quality) AS quality
        FROM wparts w LEFT JOIN (
            SELECT well_id, count(*) FILTER (WHERE indicator = 'water_level') AS level,
                   count(*) FILTER (WHERE indicator = 'water_temperature') AS temperature,
                   count(*) FILTER (WHERE indicator IN ('water_quality_tds',
                                                        'water_quality_ph')) AS quality
            FROM datastream WHERE well_id IN (SELECT well_id FROM wparts) GROUP BY well_id
        ) n USING (well_id)
        GROUP BY w.project_id
    ),
    shared AS (  -- a well with several datastreams of its volume: slots OR'ed (rare)
        SELECT s.project_id,
               sum(bit_count(d.got)) FILTER (WHERE s.role = 'EXTRACTION') AS extraction,
               sum(bit_count(d.got)) FILTER (WHERE s.role = 'REINJECTION') AS reinjection
        FROM (SELECT DISTINCT project_id, well_id, role, evaluated, start_ts, end_ts
              FROM streams
              WHERE NOT solo AND counted
                AND ((indicator = 'extraction_volume' AND role = 'EXTRACTION')
                     OR (indicator = 'reinjection_volume' AND role = 'REINJECTION'))) s
        CROSS JOIN LATERAL (
            SELECT bit_or(dc.slots & a.expected) AS got
            FROM datastream ds
            JOIN daily_coverage dc ON dc.datastream_id = ds.id
            JOIN avail a ON a.start_ts = s.start_ts AND a.end_ts = s.end_ts AND a.day = dc.day
            WHERE s.evaluated AND ds.well_id = s.well_id
              AND ds.indicator = lower(s.role::text) || '_volume'
              AND dc.day >= :month AND dc.day < :next
            GROUP BY dc.day
        ) d
        GROUP BY s.project_id
    ),
    per_layer AS (
        SELECT project_id, aquifer, extraction, reinjection, tds_sum / nullif(tds_n, 0) AS tds,
               ph_sum / nullif(ph_n, 0) AS ph
        FROM pd
    ),
    layer_keys AS (
        SELECT DISTINCT project_id, aquifer FROM wparts
        WHERE evaluated AND role IN ('EXTRACTION', 'REINJECTION')
        UNION
        SELECT project_id, aquifer FROM per_layer
        WHERE extraction IS NOT NULL OR reinjection IS NOT NULL
    ),
    layers AS (
        SELECT k.project_id, jsonb_agg(jsonb_build_object(
                   'aquifer', k.aquifer,
                   'extraction_m3', round(coalesce(l.extraction, 0), 6)::float8,
                   'reinjection_m3', round(coalesce(l.reinjection, 0), 6)::float8,
                   'reinjection_tds_mean', round(l.tds::numeric, 6)::float8,
                   'reinjection_ph_mean', round(l.ph::numeric, 6)::float8
               ) ORDER BY k.aquifer) AS layers
        FROM layer_keys k LEFT JOIN per_layer l USING (project_id, aquifer)
        GROUP BY k.project_id
    ),
    per_project AS (
        SELECT project_id, sum(extraction_all) AS extraction_all,
               sum(level_sum) AS level_sum, sum(level_n) AS level_n,
               sum(metered_e) AS metered_e, sum(metered_r) AS metered_r,
               sum(level) AS level, sum(temperature) AS temperature, sum(quality) AS quality
        FROM pd GROUP BY project_id
    ),
    changed AS (
        INSERT INTO project_month_metric AS m (
            project_id, month, {", ".join(_METRIC_COLUMNS)}, ytd_extraction_m3, watermark,
            computed_at)
        SELECT sc.project_id, :month, sc.operating, sc.evaluated, :final, sc.start_ts,
               sc.end_ts, coalesce(pt.expected, 0), coalesce(pt.outage, 0),
               (coalesce(pp.metered_e, 0) + coalesce(sh.extraction, 0))::float8
                   / nullif(es.extraction, 0),
               (coalesce(pp.metered_r, 0) + coalesce(sh.reinjection, 0))::float8
                   / nullif(es.reinjection, 0),
               coalesce(pp.level, 0)::float8 / nullif(es.level, 0),
               coalesce(pp.temperature, 0)::float8 / nullif(es.temperature, 0),
               coalesce(pp.quality, 0)::float8 / nullif(es.quality, 0),
               CASE WHEN sc.evaluated THEN coalesce(l.layers, '[]') ELSE '[]' END,
               round(pk.max_daily, 6)::float8, coalesce(pk.days_over, 0),
               round(coalesce(pp.extraction_all, 0), 6)::float8,
               sc.season, coalesce(pp.level_sum, 0)::float8, coalesce(pp.level_n, 0),
               sc.project_type, sc.permit_annual, sc.permit_daily, sc.no_operating_wells,
               NULL, :watermark, now()
        FROM scope sc
        LEFT JOIN project_part pt ON pt.project_id = sc.project_id
        LEFT JOIN expected_streams es ON es.project_id = sc.project_id
        LEFT JOIN shared sh ON sh.project_id = sc.project_id
        LEFT JOIN per_project pp ON pp.project_id = sc.project_id
        LEFT JOIN layers l ON l.project_id = sc.project_id
        LEFT JOIN peaks pk ON pk.project_id = sc.project_id
        ON CONFLICT (project_id, month) DO UPDATE SET
            {", ".join(f"{c} = EXCLUDED.{c}" for c in _METRIC_COLUMNS)},
            watermark = EXCLUDED.watermark, computed_at = EXCLUDED.computed_at
        WHERE ({", ".join(f"m.{c}" for c in _METRIC_COLUMNS)})
              IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _METRIC_COLUMNS)})
        RETURNING project_id
    )
    {_MARK_COMPANIES}
    """
)

# Year to date: the extraction (from applies_from on) of this and the earlier months of the
# year. Equal to the sum up to the end of the evaluated part: a part ends before its month does
# only where no extraction follows (otherwise the whole month would be in scope) or at the
# watermark.
_YTD = sa.text(
    f"""
    WITH changed AS (
        UPDATE project_month_metric m SET ytd_extraction_m3 = y.ytd
        FROM (
            SELECT project_id, month,
                   CASE WHEN evaluated THEN round(sum(extraction_m3) OVER (
                       PARTITION BY project_id, date_trunc('year', month) ORDER BY month
                   )::numeric, 6)::float8 END AS ytd
            FROM project_month_metric
            WHERE month >= :year_start AND month < :year_end
              AND project_id IN (SELECT project_id FROM scope)
        ) y
        WHERE m.project_id = y.project_id AND m.month = y.month
          AND m.ytd_extraction_m3 IS DISTINCT FROM y.ytd
        RETURNING m.project_id
    )
    {_MARK_COMPANIES}
    """
)


# ------------------------------------------------------------------------------- the run


def current_watermark(conn: sa.Connection) -> datetime | None:
    """The ingest watermark: the latest resultTime stored (docs/platform.md)."""
    return conn.scalar(sa.text("SELECT max(result_time) FROM ingest_watermark"))


def run_rollup(
    engine: sa.Engine,
    *,
    everything: bool = False,
    rulebook: Rulebook | None = None,
    progress: Progress | None = None,
) -> RollupResult:
    """Bring daily rows, outage slots and project months up to date; `everything` recomputes all
    of them from the observations. Local days are the rulebook's (default: the one in force)."""
    rb = rulebook or load_rulebook()
    ctx = _RollupRun(tz=rb.timezone, rb=rb, progress=progress or _quiet)
    result = RollupResult()
    with engine.connect() as conn:
        watermark = current_watermark(conn)
        markers = _registry_markers(conn)
        state = conn.execute(sa.text("SELECT * FROM rollup_state WHERE id = 1")).first()
        if everything:
            _mark_everything_dirty(conn, ctx)
            state = None
        conn.commit()
        _roll_days(conn, ctx, result)
        months = _months_to_recompute(conn, ctx, state, watermark)
        conn.commit()
        _roll_months(conn, ctx, months, watermark, result)
        _save_state(conn, watermark, markers)
        conn.commit()
    result.watermark = watermark
    return result


@dataclass
class _RollupRun:
    tz: str
    rb: Rulebook
    progress: Progress

    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.rb.monitoring.slot_minutes)

    @property
    def params(self) -> dict:
        return {"tz": self.tz, "slot": self.slot, "slot_s": self.slot.total_seconds()}


def _quiet(stage: str, done: int, total: int | None) -> None:
    pass


def _mark_everything_dirty(conn: sa.Connection, ctx: _RollupRun) -> None:
    ctx.progress("scanning observations", 0, None)
    conn.execute(
        sa.text(
            """
            INSERT INTO dirty_day (datastream_id, day)
            SELECT DISTINCT datastream_id, ((phenomenon_time - :slot) AT TIME ZONE :tz)::date
            FROM observation
            ON CONFLICT DO NOTHING
            """
        ),
        ctx.params,
    )
    conn.commit()


def _roll_days(conn: sa.Connection, ctx: _RollupRun, result: RollupResult) -> None:
    """Recompute dirty days one at a time, oldest first, each in its own transaction."""
    p = ctx.params
    total = conn.scalar(sa.text("SELECT count(DISTINCT day) FROM dirty_day"))
    conn.commit()
    day = date.min
    returns: Counter[date] = Counter()  # how often the loop went back to a day
    while True:
        with conn.begin():
            day = conn.scalar(sa.text("SELECT min(day) FROM dirty_day WHERE day > :d"), {"d": day})
            if day is None:
                break
            ctx.progress("days", result.days, max(total, result.days + 1))
            # Claimed under the lock, counted: a pull then marks again what it sent before.
            claimed = claim_day(conn, day, p)
            conn.execute(_DAILY, p)
            meters = roll_meter_day(conn, ctx.rb, ctx.tz, ctx.slot, day)
            for statement in _STORE_DAILY:
                conn.execute(statement, {"day": day})
            changed = _roll_outage(conn, ctx, day)
            conn.execute(_DAY_COMPLETENESS, {"day": day, "all_rows": changed})
            conn.execute(_TOUCHED, p | {"day": day, "outage_changed": changed})
        result.days += 1
        result.datastream_days += claimed
        result.outage_days_changed += changed
        result.meter_glitches += meters.glitches_added
        result.meter_glitches_withdrawn += meters.glitches_withdrawn
        # Readings of this day changed what an earlier day assumed: recompute it now (a bound
        # on the returns keeps a run finite; the marks stay for the next run).
        if meters.back_to is not None and returns[meters.back_to] < _MAX_RETURNS:
            returns[meters.back_to] += 1
            day = meters.back_to - timedelta(days=1)
    ctx.progress("days", result.days, result.days)


def _roll_outage(conn: sa.Connection, ctx: _RollupRun, day: date) -> bool:
    """Recompute the day's outage slots when a volume stream changed; True if they changed."""
    volumes = conn.scalar(
        sa.text("SELECT count(*) FROM claim WHERE indicator = ANY(:v)"), {"v": list(VOLUMES)}
    )
    old = conn.execute(
        sa.text("SELECT projects, slots FROM outage_day WHERE day = :day"), {"day": day}
    ).first()
    if not volumes and old is not None:
        return False
    nslots = conn.scalar(
        sa.text(
            "SELECT (extract(epoch FROM ((CAST(:day AS date) + 1)::timestamp AT TIME ZONE :tz)"
            " - (CAST(:day AS date)::timestamp AT TIME ZONE :tz)) / :slot_s)::int"
        ),
        ctx.params | {"day": day},
    )
    row = conn.execute(
        _OUTAGE,
        ctx.params
        | {
            "day": day,
            "nslots": nslots,
            "volumes": list(VOLUMES),
            "water_taking": sorted(t.value for t in ctx.rb.water_taking),
            "share": ctx.rb.monitoring.outage_share,
        },
    ).one()
    if old is not None and (old.projects, old.slots) == (row.projects, row.slots):
        return False
    conn.execute(_STORE_OUTAGE, {"day": day, "projects": row.projects, "slots": row.slots})
    return True


def _months_to_recompute(
    conn: sa.Connection, ctx: _RollupRun, state, watermark: datetime | None
) -> dict[date, list[int] | None]:
    """month → project ids to recompute (None: every project), from the month of the heating
    season before applies_from's to the watermark's."""
    if watermark is None:
        return {}
    rb = ctx.rb
    all_months = periods.rollup_months(rb, periods.month_of(periods.local_date(watermark, rb)))
    if not all_months:
        return {}
    # Days of other months are rolled up but their months are never used.
    conn.execute(sa.text("DELETE FROM dirty_month WHERE NOT month = ANY(:m)"), {"m": all_months})
    if state is None or state.watermark is None:
        return dict.fromkeys(all_months)

    per_month: dict[date, set[int]] = {}
    for month, pid in conn.execute(sa.text("SELECT month, project_id FROM dirty_month")):
        per_month.setdefault(month, set()).add(pid)
    every = {m for m, pids in per_month.items() if 0 in pids}
    old = state.watermark
    if watermark != old:  # the evaluated part of these months moved, or their finality changed
        every.update(m for m in all_months if m >= periods.month_of(periods.local_date(old, rb)))
        every.update(
            m
            for m in all_months
            if periods.is_final(m, old, rb) != periods.is_final(m, watermark, rb)
        )
    changed = _registry_changes(conn, ctx, state)
    out: dict[date, list[int] | None] = {}
    for month in all_months:
        if month in every:
            out[month] = None
            continue
        wanted = per_month.get(month, set())
        wanted |= {pid for pid, since in changed.items() if since is None or since <= month}
        if wanted:
            out[month] = sorted(wanted)
    return out


# The projects whose registry rows (versions of them and of their wells, permits, datastreams)
# were recorded since the last rollup, with when the change took effect (NULL: always).
_REGISTRY_CHANGES = sa.text(
    f"""
    SELECT project_id, took_effect FROM ({versions("project_version")}) v WHERE id > :pv
    UNION ALL
    SELECT w.project_id, v.took_effect
    FROM ({versions("well_version")}) v JOIN well_version w ON w.well_id = v.well_id
    WHERE v.id > :wv
    UNION ALL
    SELECT project_id, took_effect FROM ({versions("permit")}) v WHERE id > :pm
    UNION ALL
    SELECT w.project_id, NULL FROM datastream ds JOIN well_version w ON w.well_id = ds.well_id
    WHERE ds.updated_at > coalesce(:ds, '-infinity'::timestamptz)
    """
)


def _registry_changes(conn: sa.Connection, ctx: _RollupRun, state) -> dict[int, date | None]:
    """project id → the first month a registry change since the last rollup affects (None:
    every month). A well's change concerns every project it has belonged to."""
    rows = conn.execute(
        _REGISTRY_CHANGES,
        {
            "pv": state.project_version_id,
            "wv": state.well_version_id,
            "pm": state.permit_id,
            "ds": state.datastream_changed_at,
        },
    )
    out: dict[int, date | None] = {}
    for pid, took_effect in rows:
        month = None
        if took_effect is not None:
            month = periods.month_of(periods.local_date(took_effect, ctx.rb))
        if pid not in out:
            out[pid] = month
        elif out[pid] is not None:
            out[pid] = None if month is None else min(out[pid], month)
    return out


def _roll_months(
    conn: sa.Connection,
    ctx: _RollupRun,
    months: dict[date, list[int] | None],
    watermark: datetime | None,
    result: RollupResult,
) -> None:
    for i, (month, wanted) in enumerate(months.items()):
        ctx.progress("months", i, len(months))
        with conn.begin():
            ids = wanted
            if ids is None:
                ids = list(conn.scalars(sa.text("SELECT DISTINCT project_id FROM project_version")))
            if not ids:
                continue
            result.project_months += _roll_month(conn, ctx, month, ids, watermark)
            conn.execute(
                sa.text(
                    "DELETE FROM dirty_month WHERE month = :m "
                    "AND (CAST(:every AS bool) OR project_id = ANY(:ids))"
                ),
                {"m": month, "every": wanted is None, "ids": ids},
            )
            result.months += 1
            result.recomputed_months.append(periods.month_label(month))
    ctx.progress("months", len(months), len(months))


def _roll_month(
    conn: sa.Connection, ctx: _RollupRun, month: date, ids: list[int], watermark: datetime | None
) -> int:
    rb = ctx.rb
    nxt = periods.add_months(month, 1)
    p = ctx.params | {"month": month, "next": nxt, "ids": ids}
    conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    conn.execute(_PSEG, p)
    conn.execute(_WP, p)
    conn.execute(sa.text("ANALYZE pseg; ANALYZE wp"))
    segments = conn.execute(
        sa.text(
            "SELECT project_id, first_day, last_day, type, city, operating FROM pseg "
            "ORDER BY project_id, first_day"
        )
    ).all()
    heat = {c: periods.heating_season_days(c, month, rb) for c in {s.city for s in segments}}
    conn.execute(
        _XDAY,
        {
            "cities": list(heat),
            "heat_first": [h[0] if h else None for h in heat.values()],
            "heat_last": [h[1] if h else None for h in heat.values()],
        },
    )
    outside = set(conn.scalars(sa.text("SELECT DISTINCT project_id FROM xday WHERE off_season")))

    cols: dict[str, list] = {k: [] for k in ("project_id", "offset", "evaluated", "start_s",
                                               "end_s")}  # fmt: skip
    for s in segments:
        scope = periods.month_scope(
            month,
            city=s.city,
            project_type=ProjectType(s.type),
            extraction_outside_season=s.project_id in outside,
            watermark=watermark,
            rulebook=rb,
            days=(s.first_day, s.last_day),
        )
        cols["project_id"].append(s.project_id)
        cols["offset"].append((s.first_day - month).days)
        cols["evaluated"].append(scope.evaluated)
        cols["start_s"].append(scope.start.timestamp())
        cols["end_s"].append(scope.end.timestamp())
    seasons = [periods.season_of(h[0], c, rb) if h else None for c, h in heat.items()]
    conn.execute(_PSCOPE, cols | {"month": month})
    conn.execute(
        _SCOPE,
        ctx.params
        | {
            "next": nxt,
            "cities": list(heat),
            "heat_first": [h[0] if h else None for h in heat.values()],
            "heat_last": [h[1] if h else None for h in heat.values()],
            "seasons": seasons,
        },
    )
    for statement in _SCOPE_FACTS:
        conn.execute(statement, p)
    conn.execute(_WPARTS, p)
    conn.execute(_AVAIL, p)
    conn.execute(sa.text("ANALYZE avail; ANALYZE wparts; ANALYZE scope; ANALYZE xday"))
    conn.execute(_WEXP)
    conn.execute(_STREAMS)
    conn.execute(sa.text("ANALYZE streams"))
    conn.execute(_PROJECT_DAYS, p | {"applies_from": rb.applies_from})
    conn.execute(_PEAKS, p)
    conn.execute(sa.text("ANALYZE pd; ANALYZE peaks"))
    final = periods.is_final(month, watermark, rb)
    conn.execute(
        _STORE_MONTHS, {"month": month, "next": nxt, "final": final, "watermark": watermark}
    )
    conn.execute(
        _YTD, {"year_start": date(month.year, 1, 1), "year_end": date(month.year + 1, 1, 1)}
    )
    return len({s.project_id for s in segments})


_MARKERS = sa.text(
    """
    SELECT (SELECT coalesce(max(id), 0) FROM project_version) AS project_version_id,
           (SELECT coalesce(max(id), 0) FROM well_version) AS well_version_id,
           (SELECT coalesce(max(id), 0) FROM permit) AS permit_id,
           (SELECT max(updated_at) FROM datastream) AS datastream_changed_at
    """
)


def _registry_markers(conn: sa.Connection) -> dict:
    """The newest registry rows now: saved at the end, so changes made during the run are
    seen by the next one."""
    return dict(conn.execute(_MARKERS).one()._mapping)


def _save_state(conn: sa.Connection, watermark: datetime | None, markers: dict) -> None:
    conn.execute(
        sa.text(
            """
            INSERT INTO rollup_state (id, watermark, project_version_id, well_version_id,
                                      permit_id, datastream_changed_at, updated_at)
            VALUES (1, :watermark, :project_version_id, :well_version_id, :permit_id,
                    :datastream_changed_at, now())
            ON CONFLICT (id) DO UPDATE SET watermark = EXCLUDED.watermark,
                project_version_id = EXCLUDED.project_version_id,
                well_version_id = EXCLUDED.well_version_id, permit_id = EXCLUDED.permit_id,
                datastream_changed_at = EXCLUDED.datastream_changed_at,
                updated_at = EXCLUDED.updated_at
            """
        ),
        markers | {"watermark": watermark},
    )
