"""The scheduler: APScheduler 3 with its SQLAlchemy job store in the same PostgreSQL.

Jobs are defined here in code with stable ids; every worker (`geocredit worker`, `geocredit
serve`) writes the same definitions to the shared store on start. Several schedulers on one
store may fire a job twice or late (APScheduler's FAQ), so correctness never rests on the store:
each run takes the job's PostgreSQL advisory lock (a second worker skips) and claims the job_run
row of its window, unique on (job, window_key) — a window is run once (jobs/runs.py).

| job | when (local time) | does |
|---|---|---|
| things-sync | hourly at :05 | wells and datastreams from the platform into the registry |
| pull | every 15 min | read the observation feed; then rollup and score for the same window |
| listing-expiry | daily 00:10 | end listings that reached their maximum end |
| partitions | daily 03:00 | create this and the next months' observation partitions |
| audit-checkpoint | hourly at :00 | sign the audit chain's length and head into the data folder |
| webhooks | every 10 s | deliver decision changes to webhook receivers (no job_run row) |

Misfires: every job is idempotent and catches up on everything since its last run (the feed
from its watermark, dirty days, dates passed), so one late run is as good as the missed ones:
`coalesce=True` folds a backlog into one run, `max_instances=1` keeps a slow run from
overlapping itself, and `misfire_grace_time` is one period — a run missed by less than its period
still happens at once (after a restart, say), a staler one is dropped for the next regular fire.
A platform outage makes the pull fail: it is recorded FAILED, the watermark stays where it was,
the months it touches stay provisional, and outage slots keep every project's expected count
down, so nobody is penalised; rollup and score still run (reviewers' records may have changed).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from jobs.runs import Run, job_lock, recorded_run
from registry import db, heap
from registry.lifetime import stop_when_orphaned
from registry.settings import Settings
from scoring import periods
from scoring.rulebook import load_rulebook

log = logging.getLogger(__name__)
T = TypeVar("T")

JOBSTORE_TABLE = "apscheduler_jobs"
PARTITION_MONTHS_AHEAD = 2
WEBHOOK_PASS_S = 10  # a change reaches a receiver that is up within a minute


@dataclass(frozen=True)
class JobSpec:
    id: str
    run: Callable[[str], None]  # called with the window key
    trigger: BaseTrigger
    period: timedelta  # a window: the run's start time floored to the period (local)


@dataclass
class _SchedulerSetup:
    settings: Settings
    engine: sa.Engine
    specs: dict[str, JobSpec]


_context: _SchedulerSetup | None = None


def _ctx() -> _SchedulerSetup:
    if _context is None:
        raise RuntimeError("the scheduler is not configured: call build_scheduler first")
    return _context


def window_key(now: datetime, period: timedelta, tz: ZoneInfo) -> str:
    """The start of the period holding `now`, local time (periods divide a day, or are days)."""
    local = now.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    start = local - (local - midnight) % period if period < timedelta(days=1) else midnight
    return start.isoformat(timespec="seconds")


def run_job(job_id: str) -> None:
    """What the job store calls (by reference): the job's spec, with its window."""
    ctx = _ctx()
    spec = ctx.specs[job_id]
    key = window_key(datetime.now(UTC), spec.period, load_rulebook().zone)
    try:
        spec.run(key)
    except Exception:
        log.exception("job %s (window %s) failed", job_id, key)


def _recorded(job: str, key: str, work: Callable[[Run], dict]) -> None:
    """Run `work` as job `job` of window `key`, unless another worker has it or had it."""
    with recorded_run(_ctx().engine, job, key) as run:
        if run is None:
            log.info("%s %s: skipped (another worker has it, or it ran)", job, key)
            return
        run.counts = work(run)
        log.info("%s %s: %s", job, key, run.counts)


# ---------------------------------------------------------------------------------- jobs


def pull_then_roll_up_and_score(key: str) -> None:
    ctx = _ctx()
    with job_lock(ctx.engine, "pull") as held:
        if held is None:
            log.info("pull %s: skipped (another worker is pulling)", key)
            return
        settings = ctx.settings
        url = db.database_url(settings)
        try:
            outcome = run_in_own_process(pull_window, key, url, settings.platform_url)
        except StoppedProcess as exc:
            log.warning("pull %s stopped before its end: %s", key, exc)
            return
        if outcome is not None:
            how, why = outcome
            if how == "skipped":
                log.info("pull %s: skipped (%s)", key, why)
                return
            log.warning("pull %s failed; the watermark stays: %s", key, why)
    for job, work in (("rollup", roll_up), ("score", score)):
        try:
            _recorded(job, key, work)
        except Exception:
            log.exception("%s %s failed", job, key)


def pull_window(key: str, url: str, platform_url: str) -> tuple[str, str] | None:
    """The pull of window `key` (ingest records its own job_run row): None when it read the
    feed to its end, else ("skipped" or "failed", why)."""
    from jobs import ingest

    try:
        asyncio.run(ingest.pull_job(key, url, platform_url))
    except ingest.PullBusy as exc:
        return "skipped", str(exc)
    except ingest.PullFailed as exc:
        return "failed", str(exc)
    return None


_pulls: set[multiprocessing.process.BaseProcess] = set()
"""Processes running `run_in_own_process` work, for stop_scheduler to end."""


class StoppedProcess(RuntimeError):
    """The process ended without an answer: stopped by stop_scheduler, or killed."""


def run_in_own_process(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a fresh process tuned for a pull (registry.heap): its garbage collector
    and GIL settings are not those of the process that schedules it — under `geocredit serve`,
    the API's. It stops when this process is gone, and stop_scheduler ends it."""
    spawn = multiprocessing.get_context("spawn")  # nothing of this process's state is copied
    answers, answer = spawn.Pipe(duplex=False)
    process = spawn.Process(target=_tuned, args=(answer, work, *args), name=work.__name__)
    process.start()
    answer.close()  # the child holds its copy: EOF here once the child is gone
    _pulls.add(process)
    try:
        ok, value = answers.recv()
    except EOFError:
        process.join()
        raise StoppedProcess(f"{work.__name__} ended (exit code {process.exitcode})") from None
    finally:
        _pulls.discard(process)
        answers.close()
    process.join()
    if not ok:
        raise value
    return value


def _tuned(answer: Any, work: Callable[..., T], *args: Any) -> None:
    stop_when_orphaned()
    try:
        with heap.tuned_for_a_pull():
            outcome = (True, work(*args))
    except Exception as exc:
        outcome = (False, exc)
    try:
        answer.send(outcome)
    except Exception as exc:  # an answer that does not pickle
        answer.send((False, RuntimeError(f"{work.__name__}: {outcome[1]!r}: {exc}")))


def roll_up(run: Run) -> dict:
    from jobs.rollup import run_rollup

    ctx = _ctx()
    return run_rollup(ctx.engine).counts()


def score(run: Run) -> dict:
    from jobs.scoring_run import run_scoring

    return run_scoring(_ctx().engine, job_run_id=run.id).counts()


def things_sync(key: str) -> None:
    def work(run: Run) -> dict:
        from jobs.platform import PlatformClient
        from jobs.things import sync_things

        ctx = _ctx()

        async def sync() -> dict:
            engine = db.make_async_engine(db.database_url(ctx.settings), pool_size=1)
            try:
                async with PlatformClient(ctx.settings.platform_url) as client:
                    result = await sync_things(db.session_factory(engine), client)
            finally:
                await engine.dispose()
            return {
                "things": result.things,
                "datastreams": result.datastreams,
                "written": result.written,
                "datastreams_changed": result.datastreams_changed,
                "rejected": len(result.rejected),
            }

        return asyncio.run(sync())

    _recorded("things-sync", key, work)


def listing_expiry(key: str) -> None:
    from jobs.scoring_run import run_listing_expiry

    _recorded(
        "listing-expiry",
        key,
        lambda run: run_listing_expiry(_ctx().engine, job_run_id=run.id).counts(),
    )


def partitions(key: str) -> None:
    def work(run: Run) -> dict:
        first = datetime.now(UTC).date().replace(day=1)
        months = [periods.add_months(first, i) for i in range(PARTITION_MONTHS_AHEAD + 1)]
        with _ctx().engine.begin() as conn:
            for month in months:
                conn.execute(
                    sa.text("SELECT geocredit_ensure_observation_partition(:m)"), {"m": month}
                )
        return {"months": [m.isoformat() for m in months]}

    _recorded("partitions", key, work)


def audit_checkpoint(key: str) -> None:
    def work(run: Run) -> dict:
        from registry import audit

        ctx = _ctx()
        signing_key = audit.signing_key(ctx.settings, create=True)
        assert signing_key is not None
        with ctx.engine.begin() as conn:
            checkpoint = audit.write_checkpoint(conn, ctx.settings.data_path, signing_key)
        return {"entries": checkpoint.entries, "head_id": checkpoint.head_id}

    _recorded("audit-checkpoint", key, work)


def deliver_webhooks(key: str) -> None:
    """A delivery pass; so frequent that it records no job_run row (deliveries show it)."""
    from jobs import webhooks

    ctx = _ctx()
    with job_lock(ctx.engine, "webhooks") as held:
        if held is None:
            return
        report = webhooks.deliver(ctx.engine)
        if report.delivered or report.failed_attempts:
            log.info("webhooks %s: %s", key, report.counts())


def default_jobs(tz: ZoneInfo) -> list[JobSpec]:
    return [
        JobSpec("things-sync", things_sync, CronTrigger(minute=5, timezone=tz), timedelta(hours=1)),
        JobSpec(
            "pull",
            pull_then_roll_up_and_score,
            CronTrigger(minute="*/15", timezone=tz),
            timedelta(minutes=15),
        ),
        JobSpec(
            "listing-expiry",
            listing_expiry,
            CronTrigger(hour=0, minute=10, timezone=tz),
            timedelta(days=1),
        ),
        JobSpec(
            "partitions", partitions, CronTrigger(hour=3, minute=0, timezone=tz), timedelta(days=1)
        ),
        JobSpec(
            "audit-checkpoint",
            audit_checkpoint,
            CronTrigger(minute=0, timezone=tz),
            timedelta(hours=1),
        ),
        JobSpec(
            "webhooks",
            deliver_webhooks,
            IntervalTrigger(seconds=WEBHOOK_PASS_S, timezone=tz),
            timedelta(seconds=WEBHOOK_PASS_S),
        ),
    ]


# ---------------------------------------------------------------------------- scheduler


def build_scheduler(
    settings: Settings, jobs: list[JobSpec] | None = None, *, threads: int = 4
) -> BackgroundScheduler:
    """A scheduler with the jobs on the shared store; the caller starts it (`start_scheduler`
    also drops jobs of the store that are no longer defined)."""
    global _context
    tz = load_rulebook().zone  # local days are the rulebook's
    engine = db.make_engine(db.database_url(settings))
    specs = {spec.id: spec for spec in (jobs if jobs is not None else default_jobs(tz))}
    _context = _SchedulerSetup(settings, engine, specs)
    store = SQLAlchemyJobStore(engine=engine, tablename=JOBSTORE_TABLE)
    with engine.begin() as conn:  # two workers starting together must not both create it
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(JOBSTORE_TABLE))))
        store.jobs_t.create(conn, checkfirst=True)
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=threads)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=tz,
    )
    for spec in specs.values():
        scheduler.add_job(
            run_job,
            trigger=spec.trigger,
            args=[spec.id],
            id=spec.id,
            name=spec.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(spec.period.total_seconds()),
        )
    return scheduler


def start_scheduler(scheduler: BackgroundScheduler) -> None:
    scheduler.start()
    defined = set(_ctx().specs)
    for job in scheduler.get_jobs():
        if job.id not in defined:
            log.info("removing job %s: no longer defined", job.id)
            job.remove()


def stop_scheduler(scheduler: BackgroundScheduler, *, wait: bool) -> None:
    """Stop firing jobs and end the pulls running in their own processes (a pull stopped midway
    is safe: the next one resumes from the watermark); with `wait`, wait for the running jobs."""
    scheduler.pause()
    for process in list(_pulls):
        process.terminate()
    scheduler.shutdown(wait=wait)
