"""CLI commands for the scheduled work: rollup, score, worker, jobs (logic in jobs/)."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from registry.vocabulary import JobStatus

jobs_app = typer.Typer(rich_markup_mode=None)


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


@contextmanager
def _progress():
    """A progress(stage, done, total) callback drawing bars on stderr."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_cli().err,
        transient=False,
    ) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


@contextmanager
def _manual_run(job: str):
    """A run of `job` started by hand: locked and recorded like a scheduled one."""
    from jobs.runs import recorded_run

    cli = _cli()
    key = "manual:" + datetime.now(UTC).isoformat(timespec="microseconds")
    with recorded_run(cli._engine(), job, key) as run:
        if run is None:
            raise cli.CliError(f"{job} is running in another process; try again when it is done")
        yield run


@jobs_app.command()
def rollup(
    everything: bool = typer.Option(
        False, "--all", help="Recompute every day and month from the observations."
    ),
) -> None:
    """Roll new observations up into days and months.

    Days, outage slots and project months; incremental: only the days whose observations changed since the last rollup (or, with --all,
    every day and month again)."""
    from jobs.rollup import run_rollup

    cli = _cli()
    with _manual_run("rollup") as run, _progress() as progress:
        result = run_rollup(cli._engine(), everything=everything, progress=progress)
        run.counts = result.counts()
    cli.out.print(
        f"rolled up {result.days:,} days ({result.datastream_days:,} datastream-days, "
        f"{result.outage_days_changed:,} with new outage slots) and "
        f"{result.project_months:,} project-months in {result.months:,} months"
        + (
            f"; meter glitches quarantined {result.meter_glitches:,}, withdrawn "
            f"{result.meter_glitches_withdrawn:,}"
            if result.meter_glitches or result.meter_glitches_withdrawn
            else ""
        )
    )


@jobs_app.command()
def score(
    everything: bool = typer.Option(
        False, "--all", help="Score every company and record a snapshot for each."
    ),
) -> None:
    """Score the companies whose inputs changed (or all).

    Records their findings, score snapshots and listings, as the scheduled run does."""
    from jobs.scoring_run import run_scoring

    cli = _cli()
    with _manual_run("score") as run, _progress() as progress:
        summary = run_scoring(
            cli._engine(), everything=everything, job_run_id=run.id, progress=progress
        )
        run.counts = summary.counts()
    for error in summary.errors:
        cli.err.print(Text(str(error), "red"))
    cli.out.print(
        f"scored {summary.scored:,} of {summary.companies:,} companies "
        f"({summary.unchanged:,} unchanged): {summary.findings_added:,} findings added, "
        f"{summary.findings_voided:,} voided, {summary.snapshots:,} snapshots, "
        f"{summary.listings_opened:,} listings opened, {summary.listings_ended:,} ended"
    )
    if summary.errors:
        raise cli.CliError(f"{len(summary.errors)} companies could not be scored")


@jobs_app.command()
def worker() -> None:
    """Run the scheduler alone (no API) until interrupted."""
    from jobs.scheduler import build_scheduler, start_scheduler, stop_scheduler
    from registry import embedded
    from registry.settings import get_settings

    cli = _cli()
    cli._engine()  # fail early with one line when the database is unreachable
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    settings = get_settings()
    scheduler = build_scheduler(settings)
    start_scheduler(scheduler)
    cli.err.print(f"worker running {len(scheduler.get_jobs())} jobs; Ctrl-C to stop")
    # on the embedded default, a database that dies is started again
    keep = embedded.Watchdog(settings.data_path) if not settings.database_url else nullcontext()
    with keep:
        stop.wait()
    cli.err.print("stopping: waiting for running jobs (a pull stops at once)")
    stop_scheduler(scheduler, wait=True)


@jobs_app.command("jobs")
def recent_jobs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, metavar="N", help="How many runs."),
    job: str | None = typer.Option(None, "--job", metavar="JOB", help="Only this job."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
) -> None:
    """The most recent job runs, with their counts or error.

    Newest first; every count in full (on a narrow terminal the column wraps, never cuts)."""
    import sqlalchemy as sa

    cli = _cli()
    with cli._engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                """
                SELECT id, job, window_key, status, started_at, finished_at, counts, error
                FROM job_run WHERE CAST(:job AS text) IS NULL OR job = :job
                ORDER BY started_at DESC, id DESC LIMIT :limit
                """
            ),
            {"job": job, "limit": limit},
        ).all()
    if as_json:
        cli.emit_json(
            [
                {
                    "id": r.id,
                    "job": r.job,
                    "window": r.window_key,
                    "status": r.status,
                    "startedAt": r.started_at,
                    "finishedAt": r.finished_at,
                    "seconds": _seconds(r),
                    "counts": r.counts or {},
                    "error": r.error,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        cli.emit("no job runs yet" if job is None else f"no runs of {job} yet")
        return
    table = Table(title=f"Job runs (times in {cli.local_zone()})")
    for name in ("id", "job", "status", "started", "took"):
        table.add_column(name, no_wrap=True)
    # On a narrow terminal these two wrap, whole ("fold"): a count is never cut to "…".
    table.add_column("window", overflow="fold")
    table.add_column("counts / error", overflow="fold", min_width=24)
    colour = {JobStatus.FAILED: "red", JobStatus.RUNNING: "yellow"}
    for r in rows:
        took = f"{_seconds(r):.1f}s" if r.finished_at else ""
        # every count, whole: on a terminal the cell wraps between counts, never inside one
        detail = r.error or ", ".join(f"{k}={v}" for k, v in (r.counts or {}).items())
        table.add_row(
            str(r.id), Text(r.job), Text(r.status, colour.get(r.status, "")),
            cli.local_time(r.started_at, seconds=True), took, Text(r.window_key), Text(detail),
        )  # fmt: skip
    cli.show(table)


def _seconds(r) -> float | None:
    return None if r.finished_at is None else (r.finished_at - r.started_at).total_seconds()
