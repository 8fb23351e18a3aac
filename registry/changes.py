"""The change feed: every change of a company's standing for approval systems, in order.

`record` is called by whatever changes a standing (the scoring run, a reviewer's record, a
listing's start, end or expiry — all of them through `registry.rescoring.rescore`) inside its
own transaction, so a change is stored exactly when what caused it is. Ids are gap-free: the
next id is taken under the audit chain's lock, held by every credit-file writer until it
commits, so a reader never sees a later id before an earlier one. Each change also queues one
webhook delivery per receiver (the outbox, delivered by registry.webhooks)."""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from registry.vocabulary import DeliveryStatus
from scoring.decision import StandingSummary
from scoring.model import DecisionKind, Grade

AUDIT_LOCK = "geocredit.audit_chain"  # the audit trigger's lock (migration 0001)
MAX_PAGE = 500


class InvalidCursor(ValueError):
    pass


def cursor_of(change_id: int) -> str:
    return base64.urlsafe_b64encode(f"change:{change_id}".encode()).decode()


def change_id_of(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "change" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor(f"{cursor!r} is not a cursor of the change feed") from None


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    credit_code: str
    changed_at: datetime
    previous: StandingSummary | None
    current: StandingSummary
    rulebook_version: str

    @property
    def cursor(self) -> str:
        return cursor_of(self.id)


_LATEST = sa.text(
    """
    SELECT DISTINCT ON (company_id) id, company_id, decision, grade, score, restricted_until
    FROM decision_change WHERE company_id = ANY(:ids)
    ORDER BY company_id, id DESC
    """
)


def _summary(decision: str, grade: str | None, score, restricted_until) -> StandingSummary:
    return StandingSummary(
        DecisionKind(decision), None if grade is None else Grade(grade), score, restricted_until
    )


def record(
    conn: sa.Connection,
    summaries: dict[int, StandingSummary],
    *,
    at: datetime,
    rulebook_version: str,
    actor: str,
) -> int:
    """Append a change for each company whose summary differs from its last recorded one, and
    queue its webhook deliveries; how many changes were recorded."""
    if not summaries:
        return 0
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(AUDIT_LOCK))))
    latest = {
        r.company_id: (r.id, _summary(r.decision, r.grade, r.score, r.restricted_until))
        for r in conn.execute(_LATEST, {"ids": sorted(summaries)})
    }
    rows = []
    for company_id in sorted(summaries):
        summary = summaries[company_id]
        previous_id, previous = latest.get(company_id, (None, None))
        if summary.differs_from(previous):
            rows.append((company_id, previous_id, summary))
    if not rows:
        return 0
    first = conn.scalar(sa.text("SELECT coalesce(max(id), 0) + 1 FROM decision_change"))
    params = [
        {
            "id": first + i,
            "company_id": company_id,
            "previous_id": previous_id,
            "changed_at": at,
            "decision": s.decision.value,
            "grade": None if s.grade is None else s.grade.value,
            "score": s.score,
            "restricted_until": s.restricted_until,
            "rulebook_version": rulebook_version,
            "recorded_by": actor,
        }
        for i, (company_id, previous_id, s) in enumerate(rows)
    ]
    conn.execute(
        sa.text(
            """
            INSERT INTO decision_change (id, company_id, previous_id, changed_at, decision, grade,
                                         score, restricted_until, rulebook_version, recorded_by)
            VALUES (:id, :company_id, :previous_id, :changed_at, :decision, :grade, :score,
                    :restricted_until, :rulebook_version, :recorded_by)
            """
        ),
        params,
    )
    conn.execute(
        sa.text(
            f"""
            INSERT INTO webhook_delivery (receiver_id, change_id, status, attempts)
            SELECT r.id, c.id, '{DeliveryStatus.PENDING}', 0
            FROM webhook_receiver r JOIN decision_change c ON c.id > r.after_change_id
            WHERE r.removed_at IS NULL AND c.id BETWEEN :first AND :last
            """
        ),
        {"first": first, "last": first + len(rows) - 1},
    )
    return len(rows)


SELECT = """
    SELECT c.id, c.company_id, co.credit_code, c.changed_at, c.rulebook_version,
           c.decision, c.grade, c.score, c.restricted_until,
           p.decision AS p_decision, p.grade AS p_grade, p.score AS p_score,
           p.restricted_until AS p_restricted_until
    FROM decision_change c
    JOIN company co ON co.id = c.company_id
    LEFT JOIN decision_change p ON p.id = c.previous_id
"""
_PAGE = sa.text(
    SELECT
    + """
    WHERE c.id > :after AND (CAST(:company_id AS int) IS NULL OR c.company_id = :company_id)
    ORDER BY c.id
    LIMIT :limit
    """
)
_BY_IDS = sa.text(SELECT + " WHERE c.id = ANY(:ids) ORDER BY c.id")


def page(
    conn: sa.Connection, *, after: int = 0, first: int = 100, company_id: int | None = None
) -> tuple[list[Change], bool]:
    """Changes after id `after`, oldest first, and whether more follow."""
    if not 0 <= first <= MAX_PAGE:
        raise ValueError(f"first must be between 0 and {MAX_PAGE}")
    rows = conn.execute(_PAGE, {"after": after, "limit": first + 1, "company_id": company_id}).all()
    return [from_row(r._mapping) for r in rows[:first]], len(rows) > first


def by_ids(conn: sa.Connection, ids: list[int]) -> dict[int, Change]:
    return {r.id: from_row(r._mapping) for r in conn.execute(_BY_IDS, {"ids": ids})}


def from_row(r: Mapping[str, Any]) -> Change:
    """A change from a row of SELECT (as a mapping)."""
    previous = None
    if r["p_decision"] is not None:
        previous = _summary(r["p_decision"], r["p_grade"], r["p_score"], r["p_restricted_until"])
    return Change(
        id=r["id"],
        credit_code=r["credit_code"],
        changed_at=r["changed_at"],
        previous=previous,
        current=_summary(r["decision"], r["grade"], r["score"], r["restricted_until"]),
        rulebook_version=r["rulebook_version"],
    )


def latest_id(conn: sa.Connection) -> int:
    return conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM decision_change"))
