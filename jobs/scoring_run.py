"""The scheduled scoring run: a chunk of companies per transaction, through registry.rescoring.

By default only companies whose inputs may have changed are loaded: those marked in
`score_dirty` (by triggers on the records scoring reads, and by the rollup when their month
metrics changed) — unless the rulebook version, the local day or the watermark's local day
differ from the last full run's (dates in the inputs such as report due dates and rectification
deadlines pass with the day), when every company is. `everything` scores all and writes a
snapshot for each.
"""

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from registry.rescoring import AUDIT_LOCK, RescoreSummary, data_watermark, rescore
from scoring import periods
from scoring.rulebook import Rulebook, load_rulebook

CHUNK = 1000  # companies per transaction: each holds the audit chain's lock while it runs
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
    summary = RescoreSummary(companies=0)
    run_key = None
    if company_ids is None:
        with engine.connect() as conn:
            every = conn.scalars(sa.text("SELECT id FROM company ORDER BY id")).all()
            watermark = data_watermark(conn)
            run_key = {
                "rulebook_version": rb.version,
                "day": periods.local_date(now, rb),
                "watermark_day": None if watermark is None else periods.local_date(watermark, rb),
            }
            last = conn.execute(sa.text(_LAST_RUN)).mappings().first()
            if everything or last is None or dict(last) != run_key:
                company_ids = every
            else:
                company_ids = conn.scalars(
                    sa.text("SELECT company_id FROM score_dirty ORDER BY company_id")
                ).all()
        summary.unchanged = len(every) - len(company_ids)
    ids = sorted(set(company_ids))
    for start in range(0, len(ids), CHUNK):
        if progress:
            progress("companies", start, len(ids))
        chunk = ids[start : start + CHUNK]
        with engine.begin() as conn:
            conn.execute(sa.select(sa.func.set_config("geocredit.actor", actor, True)))
            # The marks are taken with the transaction, under the audit chain's lock (which
            # rescore takes anyway): a writer of a record holds that lock when its trigger marks
            # the company, so it waits for this chunk, never the other way round. Marks made
            # after this stay for the next run.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(AUDIT_LOCK))))
            conn.execute(
                sa.text("DELETE FROM score_dirty WHERE company_id = ANY(:ids)"), {"ids": chunk}
            )
            part = rescore(
                conn,
                chunk,
                now=now,
                rulebook=rb,
                actor=actor,
                job_run_id=job_run_id,
                force_snapshot=everything,
            )
        summary.add(part)
    if run_key is not None:
        summary.companies = len(every)
        with engine.begin() as conn:
            conn.execute(sa.text(_SAVE_RUN), run_key)
    if progress:
        progress("companies", len(ids), len(ids))
    return summary


_LAST_RUN = "SELECT rulebook_version, day, watermark_day FROM score_run_state WHERE id = 1"
_SAVE_RUN = """
    INSERT INTO score_run_state (id, rulebook_version, day, watermark_day, updated_at)
    VALUES (1, :rulebook_version, :day, :watermark_day, now())
    ON CONFLICT (id) DO UPDATE SET rulebook_version = EXCLUDED.rulebook_version,
        day = EXCLUDED.day, watermark_day = EXCLUDED.watermark_day, updated_at = now()
"""


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
