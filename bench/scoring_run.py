"""Benchmark: the per-pull rollup of the running month and the scoring run, at province scale.

    .venv/bin/python -m bench.scoring_run [--projects 20000] [--days 20] [--keep]
        [--cumulative SHARE] [--observations]

Builds a scratch database `gc_bench_scoring` on the configured server (the embedded one by
default) with N projects (80 % water-taking with one extraction and one reinjection well, four
datastreams; the rest closed loops), one company per 1.25 projects, their daily rows for the
first `--days` days of January 2026 (written directly, as the daily rollup leaves them), month
metrics for Nov–Dec 2025, monthly reports and some inspections. Then times:

1. rollup: the watermark moves within January → January recomputed for every project (what
   each 15-minute pull costs in the heating season);
2. score, first run: every company scored, findings and snapshots written;
3. score, unchanged: nothing marked in score_dirty, the same rulebook, day and watermark day:
   nothing loaded, nothing scored;
4. score after the watermark moved again: every company whose months the rollup changed is
   scored (the closed-loop-only ones are not: their months stayed the same), almost nothing
   written.

`--cumulative SHARE` makes that share of the volume datastreams cumulative meters (default 0: the
baseline above is unchanged). `--observations` then adds, at the end, the daily rollup of the last
day from its observations (96 per volume datastream, as the last pull of a day leaves it; the
meters read 10 m³ a slot and one reading in a thousand is a glitch to 0): first the interval
datastreams' days, then the cumulative ones', each timed apart (days, then the months they touch)
so their cost per datastream-day can be compared in the same run.
"""

import argparse
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from jobs.rollup import run_rollup
from jobs.scoring_run import run_scoring
from registry import db, migrate

TZ = ZoneInfo("Asia/Shanghai")
NAME = "gc_bench_scoring"

POPULATE = [
    """
    INSERT INTO company (id, credit_code)
    SELECT i, '9114' || lpad(i::text, 14, '0') FROM generate_series(1, :companies) i
    """,
    "INSERT INTO company_version (company_id, name, source) "
    "SELECT id, '企业' || id, 'bench' FROM company",
    "INSERT INTO project (id, code) SELECT i, 'P' || i FROM generate_series(1, :projects) i",
    """
    INSERT INTO project_version (project_id, company_id, name, type, city, operating,
        in_spring_protection_zone, in_drinking_water_source, in_groundwater_restricted_zone, source)
    SELECT i, 1 + (i - 1) % :companies, '项目' || i,
           CASE WHEN i % 5 = 0 THEN 'CLOSED_LOOP' WHEN i % 2 = 0 THEN 'MEDIUM_DEEP'
                ELSE 'SHALLOW_WATER_SOURCE' END,
           (ARRAY['太原','大同','运城','临汾','晋中','长治'])[1 + i % 6], true,
           false, false, false, 'bench'
    FROM generate_series(1, :projects) i
    """,
    # wells: 2 per project (E, R; two monitoring boreholes for closed loops)
    "INSERT INTO well (id, code) SELECT i, 'W' || i FROM generate_series(1, 2 * :projects) i",
    """
    INSERT INTO well_version (well_id, project_id, role, aquifer, confined, drilled_on,
                              operating, source)
    SELECT w, p, CASE WHEN p % 5 = 0 THEN 'MONITORING' WHEN w % 2 = 1 THEN 'EXTRACTION'
                      ELSE 'REINJECTION' END,
           'K' || (p % 3), false, '2020-01-01', true, 'bench'
    FROM (SELECT w, (w + 1) / 2 AS p FROM generate_series(1, 2 * :projects) w) x
    """,
    """
    INSERT INTO datastream (platform_id, well_id, indicator, unit, accumulation, name)
    SELECT v.well_id || ':' || k, v.well_id, ind, 'u',
           CASE WHEN ind LIKE '%volume' AND (v.well_id * 7919) % 1000 < 1000 * :cumulative
                THEN 'cumulative' ELSE 'interval' END, ''
    FROM well_version v CROSS JOIN LATERAL (
        SELECT * FROM unnest(CASE v.role
            WHEN 'EXTRACTION' THEN ARRAY['extraction_volume', 'water_level']
            WHEN 'REINJECTION' THEN ARRAY['reinjection_volume', 'water_quality_tds']
            ELSE ARRAY['water_temperature'] END) WITH ORDINALITY s(ind, k)
    ) s
    """,
    """
    INSERT INTO permit (project_id, kind, number, annual_total_m3, daily_intensity_m3,
                        valid_from, recorded_by)
    SELECT i, 'WATER_PERMIT', 'WP' || i, 1e7, 2000, '2024-01-01', 'bench'
    FROM generate_series(1, :projects) i WHERE i % 2 = 0
    """,
    # January's daily rows: 10 m³ a slot; every 10th project reinjects 80 %, every 7th has gaps
    """
    INSERT INTO daily_rollup (datastream_id, day, n, total, minimum, maximum, mean)
    SELECT ds.id, d::date, CASE WHEN w.project_id % 7 = 0 THEN 80 ELSE 96 END,
           CASE WHEN ds.indicator = 'reinjection_volume' AND w.project_id % 10 = 0 THEN 768
                WHEN ds.indicator LIKE '%volume' THEN 960 END,
           10, 10, CASE ds.indicator WHEN 'water_level' THEN 40 WHEN 'water_quality_tds'
                   THEN 1500 ELSE 10 END
    FROM datastream ds JOIN well_version w ON w.well_id = ds.well_id
    CROSS JOIN generate_series(DATE '2026-01-01', DATE '2026-01-01' + :days - 1, '1 day') d
    """,
    """
    INSERT INTO daily_coverage (datastream_id, day, slots, completeness)
    SELECT r.datastream_id, r.day,
           CASE WHEN r.n = 96 THEN repeat('1', 96) ELSE repeat('1', 80) || repeat('0', 16)
           END::varbit, r.n / 96.0
    FROM daily_rollup r
    """,
    """
    INSERT INTO outage_day (day, projects, slots, outage_slots)
    SELECT d::date, :projects, repeat('0', 96)::varbit, 0
    FROM generate_series(DATE '2026-01-01', DATE '2026-01-01' + :days - 1, '1 day') d
    """,
    # November and December as the rollup left them
    """
    INSERT INTO project_month_metric (project_id, month, operating, evaluated, final,
        scope_start, scope_end, expected_slots, outage_slots, extraction_completeness,
        reinjection_completeness, level_completeness, temperature_completeness,
        quality_completeness, layers, max_daily_extraction_m3, days_over_daily_limit,
        extraction_m3, ytd_extraction_m3, season, season_level_sum, season_level_n)
    SELECT p.project_id, m, true, p.type <> 'CLOSED_LOOP', true, m, m + interval '1 month',
           2976, 0, 1.0, 1.0, 1.0, NULL, 1.0,
           CASE WHEN p.type = 'CLOSED_LOOP' THEN '[]'::jsonb ELSE jsonb_build_array(
               jsonb_build_object('aquifer', 'K' || (p.project_id % 3),
                   'extraction_m3', 29760.0,
                   'reinjection_m3', CASE WHEN p.project_id % 10 = 0 THEN 23808.0
                                          ELSE 29760.0 END,
                   'reinjection_tds_mean', 1500.0, 'reinjection_ph_mean', NULL)) END,
           960, 0, 29760, CASE WHEN m = '2025-12-01' THEN 59520 ELSE 29760 END,
           2025, 2976 * 40.0, 2976
    FROM project_version p CROSS JOIN (VALUES (DATE '2025-11-01'), (DATE '2025-12-01')) x(m)
    """,
    """
    INSERT INTO monthly_report (project_id, month, submitted_on, recorded_by)
    SELECT i, m, m + 40, 'bench' FROM generate_series(1, :projects) i
    CROSS JOIN (VALUES (DATE '2025-11-01'), (DATE '2025-12-01')) x(m)
    """,
    """
    INSERT INTO inspection (id, company_id, inspected_on, inspector, summary, recorded_by)
    SELECT i, i, '2026-01-05', '检查组', '', 'bench'
    FROM generate_series(1, :companies, 20) i
    """,
    """
    INSERT INTO inspection_finding (inspection_id, severity, description, falsified_data,
                                    evidence)
    SELECT id, 'MINOR', '台账不全', false, '[]' FROM inspection
    """,
]


# The last day's observations of every volume datastream (interval: 10 m³ a slot; cumulative: a
# meter reading rising 10 m³ a slot, one reading in a thousand a glitch to 0).
OBSERVE_DAY = """
    INSERT INTO observation (well_id, datastream_id, phenomenon_time, revision, value,
                             result_time, platform_obs_id)
    SELECT ds.well_id, ds.id, t, 0,
           CASE WHEN ds.accumulation = 'interval' THEN 10
                WHEN (ds.id * 31 + k) % 1000 = 0 THEN 0
                ELSE 500000 + ds.id + 10 * (:day_index * 96 + k) END,
           t + interval '3 minutes', ds.id::bigint * 100000 + k
    FROM datastream ds
    CROSS JOIN generate_series(1, 96) k
    CROSS JOIN LATERAL (SELECT (CAST(:day AS date)::timestamp AT TIME ZONE 'Asia/Shanghai')
                               + k * interval '15 minutes' AS t) x
    WHERE ds.indicator LIKE '%volume'
"""


def _now() -> float:
    return time.perf_counter()


def _observed_day(engine: sa.Engine, days: int) -> None:
    """Roll up the last day from its observations: interval datastreams, then cumulative ones."""
    day = datetime(2026, 1, days).date()
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition(:d)"), {"d": day})
        conn.execute(sa.text(OBSERVE_DAY), {"day": day, "day_index": days - 1})
        conn.execute(sa.text("ANALYZE observation"))
    for accumulation in ("interval", "cumulative"):
        with engine.begin() as conn:
            n = conn.execute(
                sa.text(
                    "INSERT INTO dirty_day (datastream_id, day) SELECT id, :day FROM datastream "
                    "WHERE indicator LIKE '%volume' AND accumulation = :a"
                ),
                {"day": day, "a": accumulation},
            ).rowcount
        if not n:
            continue
        stages: dict[str, float] = {}
        started = time.perf_counter()
        run_rollup(engine, progress=lambda stage, *_, s=stages: s.setdefault(stage, _now()))
        ended = time.perf_counter()
        days_s = stages.get("months", ended) - stages.get("days", started)
        label = f"rollup: last day, {n:,} {accumulation} streams"
        print(
            f"{label:<48} {days_s:8.2f} s   ({days_s / n * 1e6:,.0f} µs a datastream-day; "
            f"then months {ended - started - days_s:.2f} s)"
        )


def _admin(url: str) -> psycopg.Connection:
    admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    return psycopg.connect(db.libpq_url(admin), autocommit=True)


def _timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    print(f"{label:<48} {time.perf_counter() - started:8.2f} s")
    return value


def _set_watermark(engine: sa.Engine, t: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ingest_watermark VALUES ('observations', :t, 1, now()) "
                "ON CONFLICT (source) DO UPDATE SET result_time = EXCLUDED.result_time"
            ),
            {"t": t},
        )


def _preview(engine: sa.Engine, now: datetime) -> None:
    """`geocredit rulebook preview` of the older installed rulebook, against its baseline in the
    same run: a full scoring run (every company scored and a snapshot written for each)."""
    from registry.whatif import preview
    from scoring.rulebook import installed_versions, load_rulebook

    started = time.perf_counter()
    full = _timed(
        "score: every company (score --all)", lambda: run_scoring(engine, everything=True, now=now)
    )
    baseline = time.perf_counter() - started
    print(f"  {full.counts()}")
    older = load_rulebook(version=installed_versions()[0])
    started = time.perf_counter()
    result = _timed(
        f"rulebook preview v{older.version}",
        lambda: preview(engine, load_rulebook(), older, now=now),
    )
    took = time.perf_counter() - started
    print(f"  {result.companies:,} companies, {len(result.changed):,} would differ")
    print(f"  preview / full scoring run: {took / baseline:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=20, help="days of January with data")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--cumulative", type=float, default=0.0, help="share of volume datastreams that are meters"
    )
    parser.add_argument(
        "--observations", action="store_true", help="time the last day's rollup from observations"
    )
    parser.add_argument(
        "--preview",
        action="store_true",
        help="time `rulebook preview` of v2026.1 against a full scoring run (score --all)",
    )
    args = parser.parse_args()
    projects, companies = args.projects, int(args.projects / 1.25)

    server = db.database_url()
    with _admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{NAME}"')
    url = make_url(server).set(database=NAME).render_as_string(hide_password=False)
    migrate.upgrade(url)
    engine = db.make_engine(url)
    params = {
        "projects": projects,
        "companies": companies,
        "days": args.days,
        "cumulative": args.cumulative,
    }
    print(f"{projects:,} projects, {companies:,} companies, {args.days} days of January")

    def populate() -> None:
        with engine.begin() as conn:
            for statement in POPULATE:
                conn.execute(sa.text(statement), params)
            conn.execute(sa.text("ANALYZE"))

    _timed("populate", populate)
    with engine.connect() as conn:
        rows = conn.scalar(sa.text("SELECT count(*) FROM daily_rollup"))
    print(f"  {rows:,} daily rows")

    first = datetime(2026, 1, args.days, 23, 50, tzinfo=TZ)
    # A rollup state as the previous pull left it, so only January is recomputed.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO rollup_state (id, watermark, project_version_id, well_version_id, "
                "permit_id, datastream_changed_at) SELECT 1, :wm, (SELECT max(id) FROM "
                "project_version), (SELECT max(id) FROM well_version), (SELECT max(id) FROM "
                "permit), (SELECT max(updated_at) FROM datastream)"
            ),
            {"wm": first.replace(minute=35)},
        )
    _set_watermark(engine, first)
    rolled = _timed("rollup: January for every project", lambda: run_rollup(engine))
    print(f"  {rolled.project_months:,} project-months ({', '.join(rolled.recomputed_months)})")

    now = first.astimezone(UTC)
    summary = _timed("score: first run (all new)", lambda: run_scoring(engine, now=now))
    print(f"  {summary.counts()}")
    summary = _timed("score: unchanged inputs", lambda: run_scoring(engine, now=now))
    print(f"  {summary.counts()}")

    second = first.replace(minute=55)
    _set_watermark(engine, second)
    _timed("rollup: the next pull", lambda: run_rollup(engine))
    summary = _timed(
        "score: after the next pull (all changed)",
        lambda: run_scoring(engine, now=second.astimezone(UTC)),
    )
    print(f"  {summary.counts()}")
    if args.preview:
        _preview(engine, second.astimezone(UTC))
    if args.observations:
        _observed_day(engine, args.days)
    engine.dispose()
    if not args.keep:
        with _admin(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
