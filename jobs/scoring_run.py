"""The scheduled scoring run: every company, a chunk per transaction, through registry.scoring_run.

By default only companies whose inputs changed since their last scoring are scored (inputs
digest, rulebook version, or a new local day — dates in the inputs such as report due dates and
rectification deadlines pass with the day); `everything` scores all and writes a snapshot for each.
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from registry.scoring_run import RescoreSummary, rescore
from scoring.rulebook import Rulebook, load_rulebook

CHUNK = 500  # companies per transaction: each holds the audit chain's lock while it runs
ACTOR = "job:score"

Progress = Callable[[str, int, int | None], None]


def run_scoring(
    engine: sa.Engine,
    *,
    everything: bool = False,
    company_ids: Iterable[int] | None = None,
    now: datetime | None = None,
    rulebook: Rulebook | None = None,
    job_run_id: int | None = None,
    actor: str = ACTOR,
    progress: Progress | None = None,
) -> RescoreSummary:
    now = now or datetime.now(UTC)
    rb = rulebook or load_rulebook()
    if company_ids is None:
        with engine.connect() as conn:
            company_ids = conn.scalars(sa.text("SELECT id FROM company ORDER BY id")).all()
    ids = sorted(set(company_ids))
    summary = RescoreSummary(companies=0)
    for start in range(0, len(ids), CHUNK):
        if progress:
            progress("companies", start, len(ids))
        with engine.begin() as conn:
            conn.execute(sa.select(sa.func.set_config("geocredit.actor", actor, True)))
            part = rescore(
                conn,
                ids[start : start + CHUNK],
                now=now,
                rulebook=rb,
                actor=actor,
                job_run_id=job_run_id,
                only_changed=not everything,
                force_snapshot=everything,
            )
        summary.add(part)
    if progress:
        progress("companies", len(ids), len(ids))
    return summary


def run_listing_expiry(
    engine: sa.Engine,
    *,
    now: datetime | None = None,
    rulebook: Rulebook | None = None,
    job_run_id: int | None = None,
    progress: Progress | None = None,
) -> RescoreSummary:
    """Rescore the companies whose active listing reached its maximum end (the engine ends it)."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        due = conn.scalars(
            sa.text(
                """
                SELECT DISTINCT company_id FROM listing l
                WHERE max_end <= :now
                  AND NOT EXISTS (SELECT 1 FROM listing_end e WHERE e.listing_id = l.id)
                """
            ),
            {"now": now},
        ).all()
    return run_scoring(
        engine,
        everything=True,
        company_ids=due,
        now=now,
        rulebook=rulebook,
        job_run_id=job_run_id,
        progress=progress,
    )
