"""A rulebook's what-if: what every company's score, grade and decision would be under another
rulebook, on the same stored data, now — before (the rulebook in force) and after (the other).

It reads the inputs a scoring run reads and scores them twice with `scoring.engine`, inside a
read-only transaction: nothing is written, not even a job run. The month metrics are the stored
ones (the rollup made them under the rulebook in force), so a rulebook that changes what the
rollup computes (heating seasons, outage share, meters) is previewed on the scoring side only."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from registry.rescoring import load_inputs
from scoring.decision import summarize_result
from scoring.engine import score_company
from scoring.rulebook import Rulebook

CHUNK = 500

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    score: float
    grade: str
    decision: str  # the most restrictive over the application kinds


@dataclass
class Preview:
    before_version: str
    after_version: str
    companies: int = 0
    changed: list[tuple[str, str, Outcome, Outcome]] = field(default_factory=list)
    before: dict[str, Counter] = field(
        default_factory=lambda: {"grades": Counter(), "decisions": Counter()}
    )
    after: dict[str, Counter] = field(
        default_factory=lambda: {"grades": Counter(), "decisions": Counter()}
    )
    errors: list[str] = field(default_factory=list)


def _outcome(result, rulebook: Rulebook) -> Outcome:
    s = summarize_result(result, rulebook)
    return Outcome(result.score, result.grade.value, s.decision.value)


def _same_inputs(a: Rulebook, b: Rulebook) -> bool:
    """Whether both rulebooks load the same inputs (rescoring.load_inputs reads by these)."""
    return (a.applies_from, a.timezone, a.score.lookback_months) == (
        b.applies_from,
        b.timezone,
        b.score.lookback_months,
    )


def preview(
    engine: sa.Engine,
    current: Rulebook,
    candidate: Rulebook,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> Preview:
    now = now or datetime.now(UTC)
    out = Preview(current.version, candidate.version)
    with engine.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        ids = list(conn.scalars(sa.text("SELECT id FROM company ORDER BY id")))
        for start in range(0, len(ids), CHUNK):
            if progress:
                progress("companies", start, len(ids))
            part = ids[start : start + CHUNK]
            before = load_inputs(conn, part, now=now, rulebook=current)
            after = before if _same_inputs(current, candidate) else load_inputs(
                conn, part, now=now, rulebook=candidate
            )  # fmt: skip
            for cid, loaded in before.items():
                inputs = loaded.inputs
                try:
                    b = _outcome(score_company(inputs, current, now), current)
                    a = _outcome(score_company(after[cid].inputs, candidate, now), candidate)
                except Exception as exc:  # one company's bad inputs must not stop the preview
                    out.errors.append(f"{inputs.credit_code}: {exc}")
                    continue
                out.companies += 1
                for side, o in ((out.before, b), (out.after, a)):
                    side["grades"][o.grade] += 1
                    side["decisions"][o.decision] += 1
                if a != b:
                    out.changed.append((inputs.credit_code, inputs.name, b, a))
        conn.rollback()
    if progress:
        progress("companies", len(ids), len(ids))
    return out
