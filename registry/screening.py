"""Binding screening of an application: record the application and its decision, once per
(client, case reference) — a repeat with the same reference returns the recorded decision."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from registry.creditcode import normalize_credit_code
from registry.models import Application
from registry.models import Decision as DecisionRow
from registry.standing import load_standings
from scoring.decision import Decision, Reason, decide
from scoring.model import ApplicationKind, DecisionKind, Grade
from scoring.rulebook import Rulebook


class ScreeningInput(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    credit_code: str
    kind: ApplicationKind
    case_reference: str = Field(min_length=1, max_length=128)
    project_name: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=64)

    @field_validator("credit_code")
    @classmethod
    def _code(cls, v: str) -> str:
        return normalize_credit_code(v)


class CaseReferenceConflict(Exception):
    """The client already used this case reference for another credit code or kind."""

    def __init__(self, case_reference: str, credit_code: str, kind: str) -> None:
        super().__init__(
            f"case reference {case_reference!r} was already screened for {credit_code} ({kind})"
        )


@dataclass(frozen=True, slots=True)
class Screening:
    decision_id: int
    application_id: int
    case_reference: str
    credit_code: str
    kind: ApplicationKind
    company_id: int | None
    decision: Decision
    decided_at: datetime
    replayed: bool  # True when the case reference had been screened before


async def screen_application(
    session: AsyncSession,
    client_id: int,
    data: ScreeningInput,
    rulebook: Rulebook,
    now: datetime,
) -> Screening:
    """Decide and record, or return what was recorded for this case reference."""
    recorded = await recorded_screening(session, client_id, data.case_reference)
    if recorded is not None:
        return _same_case(recorded, data)

    filed = (await load_standings(session, [data.credit_code], now))[data.credit_code]
    decision = decide(filed.standing if filed else None, data.kind, rulebook, now)
    application_id = await session.scalar(
        insert(Application)
        .values(
            client_id=client_id,
            case_reference=data.case_reference,
            credit_code=data.credit_code,
            kind=data.kind.value,
            project_name=data.project_name,
            city=data.city,
        )
        .on_conflict_do_nothing(index_elements=["client_id", "case_reference"])
        .returning(Application.id)
    )
    if application_id is None:  # a concurrent request with the same reference won
        recorded = await recorded_screening(session, client_id, data.case_reference)
        assert recorded is not None
        return _same_case(recorded, data)

    company_id = filed.company_id if filed else None
    decision_id, decided_at = (
        await session.execute(
            insert(DecisionRow)
            .values(
                application_id=application_id,
                company_id=company_id,
                snapshot_id=filed.snapshot_id if filed else None,
                listing_id=int(decision.listing_id) if decision.listing_id else None,
                decision=decision.decision.value,
                grade=decision.grade.value if decision.grade else None,
                score=decision.score,
                reasons=[r.to_json() for r in decision.reasons],
                conditions=list(decision.conditions),
                restricted_until=decision.restricted_until,
                as_of=decision.as_of,
                rulebook_version=decision.rulebook_version,
            )
            .returning(DecisionRow.id, DecisionRow.decided_at)
        )
    ).one()
    return Screening(
        decision_id=decision_id,
        application_id=application_id,
        case_reference=data.case_reference,
        credit_code=data.credit_code,
        kind=data.kind,
        company_id=company_id,
        decision=decision,
        decided_at=decided_at,
        replayed=False,
    )


def _same_case(recorded: Screening, data: ScreeningInput) -> Screening:
    if (recorded.credit_code, recorded.kind) != (data.credit_code, data.kind):
        raise CaseReferenceConflict(data.case_reference, recorded.credit_code, recorded.kind)
    return recorded


_RECORDED = sa.select(Application, DecisionRow).join(
    DecisionRow, DecisionRow.application_id == Application.id
)


async def recorded_screening(
    session: AsyncSession, client_id: int, case_reference: str
) -> Screening | None:
    row = (
        await session.execute(
            _RECORDED.where(
                Application.client_id == client_id, Application.case_reference == case_reference
            )
        )
    ).first()
    return _screening(*row) if row else None


async def screening_by_decision_ids(
    session: AsyncSession, decision_ids: list[int]
) -> dict[int, tuple[int, Screening]]:
    """Recorded screenings by decision id, each with the id of the client that asked."""
    rows = (await session.execute(_RECORDED.where(DecisionRow.id.in_(decision_ids)))).all()
    return {d.id: (a.client_id, _screening(a, d)) for a, d in rows}


def _screening(app: Application, row: DecisionRow) -> Screening:
    return Screening(
        decision_id=row.id,
        application_id=app.id,
        case_reference=app.case_reference,
        credit_code=app.credit_code,
        kind=ApplicationKind(app.kind),
        company_id=row.company_id,
        decision=_stored_decision(row),
        decided_at=row.decided_at,
        replayed=True,
    )


def _stored_decision(row: DecisionRow) -> Decision:
    reasons = [_reason(r) for r in row.reasons]
    return Decision(
        decision=DecisionKind(row.decision),
        grade=Grade(row.grade) if row.grade else None,
        score=row.score,
        reasons=reasons,
        conditions=list(row.conditions),
        restricted_until=row.restricted_until,
        as_of=row.as_of,
        rulebook_version=row.rulebook_version,
        listing_id=str(row.listing_id) if row.listing_id else None,
        stale=any(r.code == "STALE_SCORE" for r in reasons),
    )


def _reason(data: dict[str, Any]) -> Reason:
    return Reason(
        code=data["code"],
        message=data["message"],
        rule_id=data.get("ruleId"),
        policy_clause=data.get("policyClause"),
        evidence=data.get("evidence"),
    )
