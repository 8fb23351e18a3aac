"""Recording job runs (table job_run): one row per (job, window), RUNNING → SUCCEEDED | FAILED."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from registry.models import JobRun
from registry.vocabulary import JobStatus

ABANDONED = "abandoned: its process stopped before the run finished"


def _abandon(job: str) -> sa.Update:
    """Mark the job's RUNNING rows FAILED as abandoned — for the holder of the job's lock, to
    whom a RUNNING row can only be one whose process died."""
    table = JobRun.__table__
    return (
        sa.update(table)
        .where(table.c.job == job, table.c.status == JobStatus.RUNNING)
        .values(status=JobStatus.FAILED, finished_at=sa.func.now(), error=ABANDONED)
    )


async def start_run(
    factory: async_sessionmaker[AsyncSession],
    job: str,
    window_key: str,
    *,
    abandon_running: bool = False,
) -> int | None:
    """A new RUNNING row; None when this (job, window) was already run or is running. With
    `abandon_running` (the caller holds the job's lock), the job's RUNNING rows are marked
    abandoned first."""
    table = JobRun.__table__
    stmt = (
        sa.dialects.postgresql.insert(table)
        .values(job=job, window_key=window_key, status=JobStatus.RUNNING, counts={})
        .on_conflict_do_nothing(index_elements=["job", "window_key"])
        .returning(table.c.id)
    )
    async with factory() as session, session.begin():
        if abandon_running:
            await session.execute(_abandon(job))
        return await session.scalar(stmt)


async def finish_run(
    factory: async_sessionmaker[AsyncSession],
    run_id: int,
    counts: dict,
    error: str | None = None,
) -> None:
    """SUCCEEDED, or FAILED when there is an error; counts are kept either way."""
    table = JobRun.__table__
    async with factory() as session, session.begin():
        await session.execute(
            sa.update(table)
            .where(table.c.id == run_id)
            .values(
                status=JobStatus.FAILED if error else JobStatus.SUCCEEDED,
                finished_at=sa.func.now(),
                counts=counts,
                error=error,
            )
        )


# ---------------------------------------------------------------- scheduled jobs (sync, locked)


@dataclass
class Run:
    """A claimed run; the job sets `counts` (kept whether it succeeds or fails)."""

    id: int
    job: str
    window_key: str
    counts: dict = field(default_factory=dict)


def lock_key(job: str) -> str:
    return f"geocredit.job.{job}"


@contextmanager
def job_lock(engine: sa.Engine, job: str) -> Iterator[sa.Connection | None]:
    """The job's session advisory lock, on a connection of its own held while inside; yields
    None when another process holds it."""
    key = sa.func.hashtext(lock_key(job))
    with engine.connect() as conn:
        locked = conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key)))
        conn.commit()
        if not locked:
            yield None
            return
        try:
            yield conn
        finally:
            conn.rollback()
            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
            conn.commit()


@contextmanager
def recorded_run(engine: sa.Engine, job: str, window_key: str) -> Iterator[Run | None]:
    """Run `job` for `window_key` at most once, one process at a time.

    Takes the job's advisory lock (job_lock) and then the job_run row of (job, window_key).
    Yields None — and records nothing — when another process holds the lock or the window
    already has a row. An exception inside marks the run FAILED with its message and propagates.
    """
    with job_lock(engine, job) as conn:
        run = None if conn is None else _claim(conn, job, window_key)
        if run is None:
            yield None
            return
        try:
            yield run
        except BaseException as exc:
            _finish(conn, run, f"{type(exc).__name__}: {exc}")
            raise
        _finish(conn, run, None)


def _claim(conn: sa.Connection, job: str, window_key: str) -> Run | None:
    table = JobRun.__table__
    conn.execute(_abandon(job))  # we hold the job's lock
    run_id = conn.scalar(
        sa.dialects.postgresql.insert(table)
        .values(job=job, window_key=window_key, status=JobStatus.RUNNING, counts={})
        .on_conflict_do_nothing(index_elements=["job", "window_key"])
        .returning(table.c.id)
    )
    conn.commit()
    return None if run_id is None else Run(run_id, job, window_key)


def _finish(conn: sa.Connection, run: Run, error: str | None) -> None:
    conn.rollback()
    table = JobRun.__table__
    conn.execute(
        sa.update(table)
        .where(table.c.id == run.id)
        .values(
            status=JobStatus.FAILED if error else JobStatus.SUCCEEDED,
            finished_at=sa.func.now(),
            counts=run.counts,
            error=error,
        )
    )
    conn.commit()
