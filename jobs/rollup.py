"""Incremental rollups, set-based in SQL: observations → daily rows → outage slots → project months.

Only what changed is recomputed:
- days: every (datastream, local day) in `dirty_day` (marked by ingest), day by day in ascending
  order. Cumulative meters are classified in jobs/meter_days.py, which marks the days a change
  reaches (the next days; earlier ones whose result assumed other readings, which the loop then
  goes back to);
- outage slots of each recomputed day (from the volume streams' slot masks);
- project months: the months of recomputed days for the projects of their datastreams (noted in
  `dirty_month` with the day, so a crash in between loses nothing); every project for months
  whose outage slots, evaluated part (the watermark moved) or finality changed; every month of a
  project whose registry facts (versions, wells, permits, datastreams) changed.

Definitions (docs/rulebook.md; all days and months are local, GEOCREDIT_TIMEZONE):
- an observation belongs to the slot [t − 15 min, t) of its phenomenon time t (the END of the
  interval) and to the local day of t − 15 min; the highest revision per (datastream, t) counts;
- a cumulative meter's readings become interval volumes by scoring/meters.py: a glitch yields no
  volume (quarantined as `meter_glitch`), a reset or a jump that persists an interval of known or
  unknown volume, the newest suspicious readings wait; an interval across a silent gap is spread
  evenly over its slots, of which only the closing reading's counts as received; a day's share
  of an interval reaching beyond it is estimated (`estimated_m3`), and such a day is not judged
  for the daily intensity cap;
- a slot is an outage slot when at least `outage_share` of the operating water-taking projects
  have no volume (extraction or reinjection) data in it; a day without any row in `outage_day` is
  all outage (nobody sent anything);
- completeness = received / expected slots, both outside outage slots and inside the month's
  evaluated part (scoring.periods.month_scope); extraction and reinjection count per operating
  well of that role (a well with no datastream counts as silent), level, temperature and quality
  per datastream of an operating well.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from jobs.meter_days import roll_meter_day
from jobs.observations import CLAIMS_LOCK, COUNT_CLAIM
from registry.settings import Settings, get_settings
from scoring import periods
from scoring.model import ProjectType
from scoring.rulebook import Rulebook, load_rulebook

Progress = Callable[[str, int, int | None], None]
"""progress(stage, done, total): called as work advances (total None when unknown)."""

VOLUMES = ("extraction_volume", "reinjection_volume")
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

_CURRENT_PROJECTS = """
    SELECT DISTINCT ON (project_id) project_id, company_id, type, city, operating
    FROM project_version ORDER BY project_id, id DESC
"""
_CURRENT_WELLS = """
    SELECT DISTINCT ON (well_id) well_id, project_id, role, aquifer, operating
    FROM well_version ORDER BY well_id, id DESC
"""

# Local day bounds for the claimed rows: observations with phenomenon time in [t0, t1) belong to
# the day (t − slot on the day), `nslots` slots in the day (96, except on DST days elsewhere).
_CLAIM = sa.text(
    """
    CREATE TEMP TABLE claim ON COMMIT DROP AS
    WITH taken AS (DELETE FROM dirty_day WHERE day = :day RETURNING datastream_id, day)
    SELECT t.datastream_id, t.day, s.well_id, s.indicator, s.accumulation,
           (t.day::timestamp AT TIME ZONE :tz) + :slot AS t0,
           ((t.day + 1)::timestamp AT TIME ZONE :tz) + :slot AS t1,
           (extract(epoch FROM ((t.day + 1)::timestamp AT TIME ZONE :tz)
                              - (t.day::timestamp AT TIME ZONE :tz)) / :slot_s)::int AS nslots
    FROM taken t JOIN datastream s ON s.id = t.datastream_id
    """
)

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

# Per slot: how many operating water-taking projects sent any volume data; outage when the
# silent ones are at least outage_share of them.
_OUTAGE = sa.text(
    f"""
    WITH wt AS (
        SELECT project_id FROM ({_CURRENT_PROJECTS}) p
        WHERE operating AND type = ANY(:water_taking)
    ),
    covered AS (
        SELECT w.project_id, bit_or(dc.slots) AS slots
        FROM daily_coverage dc
        JOIN datastream ds ON ds.id = dc.datastream_id
        JOIN ({_CURRENT_WELLS}) w ON w.well_id = ds.well_id
        JOIN wt ON wt.project_id = w.project_id
        WHERE dc.day = :day AND ds.indicator = ANY(:volumes)
        GROUP BY w.project_id
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

# The project months the claimed (datastream, day) rows change; project 0 = every project,
# when the day's outage slots changed. Kept in a table: a crash between the day's and the
# month's recompute must not lose them.
_TOUCHED = sa.text(
    f"""
    INSERT INTO dirty_month (month, project_id)
    SELECT DISTINCT date_trunc('month', CAST(:day AS date))::date, w.project_id
    FROM claim c JOIN ({_CURRENT_WELLS}) w ON w.well_id = c.well_id
    UNION ALL
    SELECT date_trunc('month', CAST(:day AS date))::date, 0 WHERE :outage_changed
    ON CONFLICT DO NOTHING
    """
)

# The projects of a month: current facts, water permit, and whether they reported extraction on
# a day outside the heating season (which brings the whole month into scope).
_MONTH_PROJECTS = sa.text(
    f"""
    WITH p AS (
        SELECT * FROM ({_CURRENT_PROJECTS}) p WHERE project_id = ANY(:projects)
    ),
    heat AS (
        SELECT * FROM unnest(CAST(:cities AS text[]), CAST(:heat_first AS date[]),
                             CAST(:heat_last AS date[])) h(city, first, last)
    ),
    outside AS (
        SELECT DISTINCT w.project_id
        FROM ({_CURRENT_WELLS}) w
        JOIN p USING (project_id)
        JOIN datastream ds ON ds.well_id = w.well_id AND ds.indicator = 'extraction_volume'
        JOIN daily_rollup dr ON dr.datastream_id = ds.id AND dr.day >= :month AND dr.day < :next
        LEFT JOIN heat h ON h.city = p.city
        WHERE dr.total > 0 AND (h.first IS NULL OR dr.day NOT BETWEEN h.first AND h.last)
    ),
    permit AS (
        SELECT DISTINCT ON (project_id) project_id, daily_intensity_m3
        FROM permit WHERE kind = 'WATER_PERMIT' AND project_id = ANY(:projects)
        ORDER BY project_id, id DESC
    )
    SELECT p.project_id, p.type, p.city, p.operating, pm.daily_intensity_m3,
           o.project_id IS NOT NULL AS outside_season
    FROM p LEFT JOIN permit pm USING (project_id) LEFT JOIN outside o USING (project_id)
    """
)

_SCOPE = sa.text(
    """
    CREATE TEMP TABLE scope ON COMMIT DROP AS
    SELECT * FROM unnest(
        CAST(:project_id AS int[]), CAST(:operating AS bool[]), CAST(:evaluated AS bool[]),
        CAST(:start_ts AS timestamptz[]), CAST(:end_ts AS timestamptz[]),
        CAST(:heat_first AS date[]), CAST(:heat_last AS date[]), CAST(:season AS int[]),
        CAST(:permit_daily AS float8[])
    ) AS s(project_id, operating, evaluated, start_ts, end_ts, heat_first, heat_last, season,
           permit_daily)
    """
)

# Expected slots per distinct evaluated part: per day, the slots not in outage and ending by
# the end of the evaluated part (the watermark may cut the last day).
_AVAIL = sa.text(
    """
    CREATE TEMP TABLE avail ON COMMIT DROP AS
    WITH parts AS (SELECT DISTINCT start_ts, end_ts FROM scope WHERE evaluated),
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

_STREAMS = sa.text(
    f"""
    CREATE TEMP TABLE streams ON COMMIT DROP AS
    SELECT sc.project_id, sc.evaluated, sc.start_ts, sc.end_ts, sc.heat_first, sc.heat_last,
           w.well_id, w.role, w.aquifer, w.operating AS well_operating,
           ds.id AS datastream_id, ds.indicator, ds.solo
    FROM scope sc
    JOIN ({_CURRENT_WELLS}) w ON w.project_id = sc.project_id
    JOIN (
        SELECT id, well_id, indicator,
               count(*) OVER (PARTITION BY well_id, indicator) = 1 AS solo
        FROM datastream
    ) ds ON ds.well_id = w.well_id
    """
)

# Per project and aquifer: the month's daily rows summed, one pass over them. Each stream's
# days are read by primary-key range (the cost does not grow with history). Volumes are summed
# as numeric, exact whatever the order of the rows; means are rounded to 6 decimals.
# `slots & expected` = received slots that were expected (NULL outside the evaluated part).
_PROJECT_DAYS = sa.text(
    """
    CREATE TEMP TABLE pd ON COMMIT DROP AS
    SELECT s.project_id, s.aquifer,
           sum(d.total) FILTER (WHERE a.day IS NOT NULL AND s.indicator = 'extraction_volume')
               AS extraction,
           sum(d.total) FILTER (WHERE a.day IS NOT NULL AND s.indicator = 'reinjection_volume')
               AS reinjection,
           sum(d.value_sum) FILTER (WHERE a.day IS NOT NULL AND s.role = 'REINJECTION'
                                      AND s.indicator = 'water_quality_tds') AS tds_sum,
           sum(d.n) FILTER (WHERE a.day IS NOT NULL AND s.role = 'REINJECTION'
                              AND s.indicator = 'water_quality_tds') AS tds_n,
           sum(d.value_sum) FILTER (WHERE a.day IS NOT NULL AND s.role = 'REINJECTION'
                                      AND s.indicator = 'water_quality_ph') AS ph_sum,
           sum(d.n) FILTER (WHERE a.day IS NOT NULL AND s.role = 'REINJECTION'
                              AND s.indicator = 'water_quality_ph') AS ph_n,
           sum(d.total) FILTER (WHERE s.indicator = 'extraction_volume') AS extraction_all,
           sum(d.value_sum) FILTER (WHERE d.day BETWEEN s.heat_first AND s.heat_last
                                      AND s.indicator = 'water_level') AS level_sum,
           sum(d.n) FILTER (WHERE d.day BETWEEN s.heat_first AND s.heat_last
                              AND s.indicator = 'water_level') AS level_n,
           sum(bit_count(d.slots & a.expected)) FILTER (
               WHERE s.solo AND s.well_operating AND s.role = 'EXTRACTION'
                 AND s.indicator = 'extraction_volume') AS metered_e,
           sum(bit_count(d.slots & a.expected)) FILTER (
               WHERE s.solo AND s.well_operating AND s.role = 'REINJECTION'
                 AND s.indicator = 'reinjection_volume') AS metered_r,
           sum(bit_count(d.slots & a.expected)) FILTER (
               WHERE s.well_operating AND s.indicator = 'water_level') AS level,
           sum(bit_count(d.slots & a.expected)) FILTER (
               WHERE s.well_operating AND s.indicator = 'water_temperature') AS temperature,
           sum(bit_count(d.slots & a.expected)) FILTER (
               WHERE s.well_operating
                 AND s.indicator IN ('water_quality_tds', 'water_quality_ph')) AS quality
    FROM streams s
    CROSS JOIN LATERAL (
        SELECT dr.day, dr.n, dr.total::numeric AS total, dr.mean * dr.n AS value_sum,
               dc.slots
        FROM (SELECT * FROM daily_rollup WHERE datastream_id = s.datastream_id
                AND day >= :month AND day < :next) dr
        LEFT JOIN (SELECT day, slots FROM daily_coverage WHERE datastream_id = s.datastream_id
                     AND day >= :month AND day < :next) dc USING (day)
    ) d
    LEFT JOIN avail a ON s.evaluated AND a.start_ts = s.start_ts AND a.end_ts = s.end_ts
                     AND a.day = d.day
    GROUP BY s.project_id, s.aquifer
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

_STORE_MONTHS = sa.text(
    f"""
    WITH wells AS (
        SELECT w.* FROM ({_CURRENT_WELLS}) w JOIN scope USING (project_id)
    ),
    expected_streams AS (  -- wells of the role (extraction, reinjection); datastreams (others)
        SELECT w.project_id,
               count(DISTINCT w.well_id) FILTER (WHERE w.role = 'EXTRACTION') AS extraction,
               count(DISTINCT w.well_id) FILTER (WHERE w.role = 'REINJECTION') AS reinjection,
               count(ds.id) FILTER (WHERE ds.indicator = 'water_level') AS level,
               count(ds.id) FILTER (WHERE ds.indicator = 'water_temperature') AS temperature,
               count(ds.id) FILTER (WHERE ds.indicator IN ('water_quality_tds',
                                                           'water_quality_ph')) AS quality
        FROM wells w LEFT JOIN datastream ds ON ds.well_id = w.well_id
        WHERE w.operating GROUP BY w.project_id
    ),
    part AS (
        SELECT start_ts, end_ts, sum(bit_count(expected))::int AS expected,
               sum(bit_count(outage))::int AS outage
        FROM avail GROUP BY start_ts, end_ts
    ),
    shared AS (  -- a well with several datastreams of its volume: slots OR'ed (rare)
        SELECT s.project_id,
               sum(bit_count(d.got)) FILTER (WHERE s.role = 'EXTRACTION') AS extraction,
               sum(bit_count(d.got)) FILTER (WHERE s.role = 'REINJECTION') AS reinjection
        FROM (SELECT DISTINCT project_id, well_id, role, evaluated, start_ts, end_ts
              FROM streams
              WHERE NOT solo AND well_operating
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
        SELECT DISTINCT project_id, aquifer FROM wells WHERE role IN ('EXTRACTION', 'REINJECTION')
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
    )
    INSERT INTO project_month_metric AS m (
        project_id, month, operating, evaluated, final, scope_start, scope_end,
        expected_slots, outage_slots, extraction_completeness, reinjection_completeness,
        level_completeness, temperature_completeness, quality_completeness, layers,
        max_daily_extraction_m3, days_over_daily_limit, extraction_m3, ytd_extraction_m3,
        season, season_level_sum, season_level_n, watermark, computed_at)
    SELECT sc.project_id, :month, sc.operating, sc.evaluated, :final, sc.start_ts, sc.end_ts,
           coalesce(pt.expected, 0), coalesce(pt.outage, 0),
           (coalesce(pp.metered_e, 0) + coalesce(sh.extraction, 0))::float8
               / nullif(pt.expected * es.extraction, 0),
           (coalesce(pp.metered_r, 0) + coalesce(sh.reinjection, 0))::float8
               / nullif(pt.expected * es.reinjection, 0),
           coalesce(pp.level, 0)::float8 / nullif(pt.expected * es.level, 0),
           coalesce(pp.temperature, 0)::float8 / nullif(pt.expected * es.temperature, 0),
           coalesce(pp.quality, 0)::float8 / nullif(pt.expected * es.quality, 0),
           CASE WHEN sc.evaluated THEN coalesce(l.layers, '[]') ELSE '[]' END,
           round(pk.max_daily, 6)::float8, coalesce(pk.days_over, 0),
           round(coalesce(pp.extraction_all, 0), 6)::float8, NULL,
           sc.season, coalesce(pp.level_sum, 0)::float8, coalesce(pp.level_n, 0),
           :watermark, now()
    FROM scope sc
    LEFT JOIN part pt ON sc.evaluated AND pt.start_ts = sc.start_ts AND pt.end_ts = sc.end_ts
    LEFT JOIN expected_streams es ON es.project_id = sc.project_id
    LEFT JOIN shared sh ON sh.project_id = sc.project_id
    LEFT JOIN per_project pp ON pp.project_id = sc.project_id
    LEFT JOIN layers l ON l.project_id = sc.project_id
    LEFT JOIN peaks pk ON pk.project_id = sc.project_id
    ON CONFLICT (project_id, month) DO UPDATE SET
        operating = EXCLUDED.operating, evaluated = EXCLUDED.evaluated, final = EXCLUDED.final,
        scope_start = EXCLUDED.scope_start, scope_end = EXCLUDED.scope_end,
        expected_slots = EXCLUDED.expected_slots, outage_slots = EXCLUDED.outage_slots,
        extraction_completeness = EXCLUDED.extraction_completeness,
        reinjection_completeness = EXCLUDED.reinjection_completeness,
        level_completeness = EXCLUDED.level_completeness,
        temperature_completeness = EXCLUDED.temperature_completeness,
        quality_completeness = EXCLUDED.quality_completeness, layers = EXCLUDED.layers,
        max_daily_extraction_m3 = EXCLUDED.max_daily_extraction_m3,
        days_over_daily_limit = EXCLUDED.days_over_daily_limit,
        extraction_m3 = EXCLUDED.extraction_m3, season = EXCLUDED.season,
        season_level_sum = EXCLUDED.season_level_sum, season_level_n = EXCLUDED.season_level_n,
        watermark = EXCLUDED.watermark, computed_at = EXCLUDED.computed_at
    """
)

# Year to date: the whole-month extraction of this and the earlier months of the year. Equal to
# the sum up to the end of the evaluated part: a part ends before its month does only where no
# extraction follows (otherwise the whole month would be in scope) or at the watermark.
_YTD = sa.text(
    """
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
    """
)


# ------------------------------------------------------------------------------- the run


def _check_zone(settings: Settings, rulebook: Rulebook) -> str:
    if settings.timezone != rulebook.timezone:
        raise ValueError(
            f"GEOCREDIT_TIMEZONE {settings.timezone} differs from the rulebook's time zone "
            f"{rulebook.timezone}: local days and months would not match"
        )
    return settings.timezone


def current_watermark(conn: sa.Connection) -> datetime | None:
    """The ingest watermark: the latest resultTime stored (docs/platform.md)."""
    return conn.scalar(sa.text("SELECT max(result_time) FROM ingest_watermark"))


def run_rollup(
    engine: sa.Engine,
    *,
    everything: bool = False,
    settings: Settings | None = None,
    rulebook: Rulebook | None = None,
    progress: Progress | None = None,
) -> RollupResult:
    """Bring daily rows, outage slots and project months up to date; `everything` recomputes all
    of them from the observations."""
    settings = settings or get_settings()
    rb = rulebook or load_rulebook()
    ctx = _Context(tz=_check_zone(settings, rb), rb=rb, progress=progress or _quiet)
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
class _Context:
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


def _mark_everything_dirty(conn: sa.Connection, ctx: _Context) -> None:
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


def _roll_days(conn: sa.Connection, ctx: _Context, result: RollupResult) -> None:
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
            conn.execute(sa.text(CLAIMS_LOCK))
            conn.execute(sa.text(COUNT_CLAIM))
            conn.execute(_CLAIM, p | {"day": day})
            claimed = conn.scalar(sa.text("SELECT count(*) FROM claim"))
            conn.execute(_DAILY, p)
            meters = roll_meter_day(conn, ctx.rb, ctx.tz, ctx.slot, day)
            for statement in _STORE_DAILY:
                conn.execute(statement, {"day": day})
            changed = _roll_outage(conn, ctx, day)
            conn.execute(_DAY_COMPLETENESS, {"day": day, "all_rows": changed})
            conn.execute(_TOUCHED, {"day": day, "outage_changed": changed})
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


def _roll_outage(conn: sa.Connection, ctx: _Context, day: date) -> bool:
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
        {
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


def _months_between(first: date, last: date) -> list[date]:
    months, m = [], periods.month_of(first)
    while m <= last:
        months.append(m)
        m = periods.add_months(m, 1)
    return months


def _months_to_recompute(
    conn: sa.Connection, ctx: _Context, state, watermark: datetime | None
) -> dict[date, list[int] | None]:
    """month → project ids to recompute (None: every project), from applies_from's month to the
    watermark's."""
    if watermark is None:
        return {}
    rb = ctx.rb
    first = periods.month_of(rb.applies_from)
    last = periods.month_of(periods.local_date(watermark, rb))
    if last < first:
        return {}
    all_months = _months_between(first, last)
    # Days before applies_from are rolled up but their months are never evaluated.
    conn.execute(sa.text("DELETE FROM dirty_month WHERE month < :m"), {"m": first})
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
    changed_projects = _registry_changes(conn, state)
    out: dict[date, list[int] | None] = {}
    for month in all_months:
        if month in every:
            out[month] = None
        elif wanted := per_month.get(month, set()) | changed_projects:
            out[month] = sorted(wanted)
    return out


def _registry_changes(conn: sa.Connection, state) -> set[int]:
    """Projects whose version, wells, permits or datastreams changed since the last rollup."""
    rows = conn.execute(
        sa.text(
            """
            SELECT project_id FROM project_version WHERE id > :pv
            UNION SELECT project_id FROM well_version WHERE id > :wv
            UNION SELECT project_id FROM permit WHERE id > :pm
            UNION SELECT w.project_id FROM datastream ds
                  JOIN well_version w ON w.well_id = ds.well_id
                  WHERE ds.updated_at > coalesce(:ds, '-infinity'::timestamptz)
            """
        ),
        {
            "pv": state.project_version_id,
            "wv": state.well_version_id,
            "pm": state.permit_id,
            "ds": state.datastream_changed_at,
        },
    )
    return {r[0] for r in rows}


def _roll_months(
    conn: sa.Connection,
    ctx: _Context,
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
    conn: sa.Connection, ctx: _Context, month: date, ids: list[int], watermark: datetime | None
) -> int:
    rb = ctx.rb
    nxt = periods.add_months(month, 1)
    cities = list(
        conn.scalars(
            sa.text(
                f"SELECT DISTINCT city FROM ({_CURRENT_PROJECTS}) p WHERE project_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
    )
    heat = {c: periods.heating_season_days(c, month, rb) for c in cities}
    rows = conn.execute(
        _MONTH_PROJECTS,
        {
            "month": month,
            "next": nxt,
            "projects": ids,
            "cities": cities,
            "heat_first": [h[0] if h else None for h in heat.values()],
            "heat_last": [h[1] if h else None for h in heat.values()],
        },
    ).all()
    final = periods.is_final(month, watermark, rb)
    cols: dict[str, list] = {k: [] for k in (
        "project_id", "operating", "evaluated", "start_ts", "end_ts", "heat_first", "heat_last",
        "season", "permit_daily",
    )}  # fmt: skip
    for r in rows:
        scope = periods.month_scope(
            month,
            city=r.city,
            project_type=ProjectType(r.type),
            extraction_outside_season=r.outside_season,
            watermark=watermark,
            rulebook=rb,
        )
        h = heat[r.city]
        cols["project_id"].append(r.project_id)
        cols["operating"].append(r.operating)
        cols["evaluated"].append(scope.evaluated)
        cols["start_ts"].append(scope.start)
        cols["end_ts"].append(scope.end)
        cols["heat_first"].append(h[0] if h else None)
        cols["heat_last"].append(h[1] if h else None)
        cols["season"].append(periods.season_of(h[0], r.city, rb) if h else None)
        cols["permit_daily"].append(r.daily_intensity_m3)
    conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    conn.execute(_SCOPE, cols)
    conn.execute(sa.text("ANALYZE scope"))
    p = ctx.params | {"month": month, "next": nxt}
    conn.execute(_AVAIL, p)
    conn.execute(_STREAMS)
    conn.execute(sa.text("ANALYZE avail; ANALYZE streams"))
    conn.execute(_PROJECT_DAYS, p)
    conn.execute(_PEAKS, p)
    conn.execute(sa.text("ANALYZE pd; ANALYZE peaks"))
    conn.execute(
        _STORE_MONTHS, {"month": month, "next": nxt, "final": final, "watermark": watermark}
    )
    conn.execute(
        _YTD, {"year_start": date(month.year, 1, 1), "year_end": date(month.year + 1, 1, 1)}
    )
    return len(rows)


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
