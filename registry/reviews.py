"""Reviewers' records: inspections, rectifications, post-evaluations, monthly reports, appeals,
credit repairs and manual listings (docs/domain.md, glossary; docs/rulebook.md, Listings).

Every function validates its input (plain pydantic models), appends rows — never updates — and
raises `RecordRejected` (with a stable code) for an expected refusal. Rescoring the company after
a record that changes its standing is the caller's next step (registry.rescoring).
"""

from datetime import UTC, date, datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from registry.creditfile import FINDING
from registry.current import finding_counts
from registry.models import (
    Appeal,
    AppealDecision,
    CreditFinding,
    CreditRepair,
    FindingEvent,
    Inspection,
    InspectionFinding,
    Listing,
    ListingEnd,
    MonthlyReport,
    PostEvaluation,
    Rectification,
    RepairDecision,
)
from registry.registration import company_by_code, project_by_code
from registry.vocabulary import (
    AppealDecisionOutcome,
    FindingEventKind,
    InspectionSeverity,
    ListingEndKind,
    RepairDecisionOutcome,
)
from scoring import periods
from scoring.model import FindingStatus, Verdict
from scoring.rulebook import load_rulebook


class RecordRejected(Exception):
    """An expected refusal; `code` is machine-readable, `field` names the offending input."""

    def __init__(self, code: str, message: str, field: tuple[str, ...] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)


class InspectionFindingInput(_Input):
    severity: InspectionSeverity
    description: str = Field(min_length=1, max_length=4000)
    falsified_data: bool = False
    rectification_deadline: date | None = None
    evidence: list[str] = Field(default_factory=list, max_length=50)


class InspectionInput(_Input):
    credit_code: str
    project_code: str | None = None
    inspected_on: date
    inspector: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=8000)
    findings: list[InspectionFindingInput] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _deadlines(self) -> "InspectionInput":
        for finding in self.findings:
            deadline = finding.rectification_deadline
            if deadline is not None and deadline < self.inspected_on:
                raise ValueError("a rectification deadline is before the inspection date")
        return self


class PostEvaluationInput(_Input):
    project_code: str
    evaluated_on: date
    verdict: Verdict
    reviewer: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=8000)
    findings: list[str] = Field(default_factory=list, max_length=200)


class MonthlyReportInput(_Input):
    project_code: str
    month: date
    submitted_on: date

    @field_validator("month")
    @classmethod
    def _first_of_month(cls, month: date) -> date:
        return month.replace(day=1)


async def _company_id(session: AsyncSession, credit_code: str) -> int:
    company = await company_by_code(session, credit_code)
    if company is None:
        raise RecordRejected("NOT_FOUND", f"no credit file for {credit_code}", ("credit_code",))
    return company.id


async def project_company_id(session: AsyncSession, project_id: int) -> int:
    """The company a project belongs to now (its latest version's)."""
    return await session.scalar(
        sa.text(
            "SELECT company_id FROM project_version WHERE project_id = :p ORDER BY id DESC LIMIT 1"
        ),
        {"p": project_id},
    )


async def record_inspection(
    session: AsyncSession, data: InspectionInput, recorded_by: str
) -> Inspection:
    company_id = await _company_id(session, data.credit_code)
    project_id = None
    if data.project_code:
        project_id = (await project_by_code(session, data.project_code)).id
        if await project_company_id(session, project_id) != company_id:
            raise RecordRejected(
                "INVALID_INPUT",
                f"project {data.project_code} is not a project of {data.credit_code}",
                ("project_code",),
            )
    inspection = Inspection(
        company_id=company_id,
        project_id=project_id,
        inspected_on=data.inspected_on,
        inspector=data.inspector,
        summary=data.summary,
        recorded_by=recorded_by,
    )
    session.add(inspection)
    await session.flush()
    for finding in data.findings:
        session.add(InspectionFinding(inspection_id=inspection.id, **finding.model_dump()))
    await session.flush()
    return inspection


async def record_rectification(
    session: AsyncSession, finding_id: int, rectified_on: date, note: str, recorded_by: str
) -> Rectification:
    finding = await session.get(InspectionFinding, finding_id)
    if finding is None:
        raise RecordRejected("NOT_FOUND", f"no inspection finding {finding_id}", ("finding_id",))
    done = await session.scalar(
        sa.select(Rectification.id).where(Rectification.inspection_finding_id == finding_id)
    )
    if done is not None:
        raise RecordRejected("ALREADY_RECTIFIED", f"finding {finding_id} is already rectified")
    inspected_on = await session.scalar(
        sa.select(Inspection.inspected_on).where(Inspection.id == finding.inspection_id)
    )
    if rectified_on < inspected_on:
        raise RecordRejected(
            "INVALID_INPUT",
            f"rectified on {rectified_on} is before the inspection of {inspected_on}",
            ("rectified_on",),
        )
    rectification = Rectification(
        inspection_finding_id=finding_id,
        rectified_on=rectified_on,
        note=note,
        recorded_by=recorded_by,
    )
    session.add(rectification)
    await session.flush()
    return rectification


async def record_post_evaluation(
    session: AsyncSession, data: PostEvaluationInput, recorded_by: str
) -> PostEvaluation:
    project = await project_by_code(session, data.project_code)
    company_id = await project_company_id(session, project.id)
    evaluation = PostEvaluation(
        company_id=company_id,
        project_id=project.id,
        recorded_by=recorded_by,
        **data.model_dump(exclude={"project_code"}),
    )
    session.add(evaluation)
    await session.flush()
    return evaluation


async def record_monthly_report(
    session: AsyncSession, data: MonthlyReportInput, recorded_by: str
) -> MonthlyReport:
    project = await project_by_code(session, data.project_code)
    report = MonthlyReport(
        project_id=project.id,
        month=data.month,
        submitted_on=data.submitted_on,
        recorded_by=recorded_by,
    )
    session.add(report)
    await session.flush()
    return report


# ---------------------------------------------------------------- appeals


async def _counting(session: AsyncSession, finding_ids: list[int]) -> set[int]:
    """Those of these findings that still count."""
    rows = await session.scalars(
        sa.text(
            f"SELECT f.id FROM credit_finding f WHERE f.id = ANY(:ids) AND {finding_counts('f')}"
        ),
        {"ids": finding_ids},
    )
    return set(rows.all())


async def open_appeal(
    session: AsyncSession, finding_id: int, filed_on: date, grounds: str, recorded_by: str
) -> Appeal:
    finding = await session.get(CreditFinding, finding_id)
    if finding is None:
        raise RecordRejected("NOT_FOUND", f"no finding {finding_id}", ("finding_id",))
    status = await session.scalar(
        sa.text(f"SELECT r.status FROM ({FINDING.sql}) r WHERE r.id = :id"), {"id": finding_id}
    )
    if status == FindingStatus.UNDER_APPEAL:
        raise RecordRejected("APPEAL_PENDING", f"finding {finding_id} is already under appeal")
    if status != FindingStatus.ACTIVE:
        raise RecordRejected(
            "FINDING_INACTIVE", f"finding {finding_id} no longer counts ({status})"
        )
    if not grounds.strip():
        raise RecordRejected("INVALID_INPUT", "an appeal needs its grounds", ("grounds",))
    appeal = Appeal(
        company_id=finding.company_id,
        finding_id=finding_id,
        filed_on=filed_on,
        grounds=grounds.strip(),
        recorded_by=recorded_by,
    )
    session.add(appeal)
    await session.flush()
    return appeal


async def decide_appeal(
    session: AsyncSession, appeal_id: int, overturn: bool, reason: str, decided_by: str
) -> AppealDecision:
    """Uphold, or overturn: the finding is voided by a new OVERTURNED event referencing the appeal."""
    appeal = await session.get(Appeal, appeal_id)
    if appeal is None:
        raise RecordRejected("NOT_FOUND", f"no appeal {appeal_id}", ("appeal_id",))
    if await session.scalar(
        sa.select(AppealDecision.id).where(AppealDecision.appeal_id == appeal_id)
    ):
        raise RecordRejected("ALREADY_DECIDED", f"appeal {appeal_id} is already decided")
    decision = AppealDecision(
        appeal_id=appeal_id,
        outcome=AppealDecisionOutcome.OVERTURNED if overturn else AppealDecisionOutcome.UPHELD,
        reason=reason,
        decided_by=decided_by,
    )
    session.add(decision)
    await session.flush()
    if overturn and await _counting(session, [appeal.finding_id]):
        session.add(
            FindingEvent(
                finding_id=appeal.finding_id,
                kind=FindingEventKind.OVERTURNED,
                reason=reason,
                appeal_id=appeal_id,
                recorded_by=decided_by,
            )
        )
        await session.flush()
    return decision


# ---------------------------------------------------------------- listings and credit repair


async def _open_listing(session: AsyncSession, listing_id: int) -> Listing:
    listing = await session.get(Listing, listing_id)
    if listing is None:
        raise RecordRejected("NOT_FOUND", f"no listing {listing_id}", ("listing_id",))
    if await session.scalar(sa.select(ListingEnd.id).where(ListingEnd.listing_id == listing_id)):
        raise RecordRejected("LISTING_ENDED", f"listing {listing_id} has already ended")
    return listing


def _shown(end: datetime) -> str:
    """The end of a period as people read it: its last local day, until 24:00."""
    return f"{periods.last_day(end, load_rulebook()):%Y-%m-%d} 24:00"


def _not_before_min_end(listing: Listing, now: datetime) -> None:
    if now < listing.min_end:
        raise RecordRejected(
            "REPAIR_TOO_EARLY",
            f"listing {listing.id} runs at least until {_shown(listing.min_end)}: "
            "credit repair is possible only after the minimum period",
        )


async def request_repair(
    session: AsyncSession,
    listing_id: int,
    statement: str,
    recorded_by: str,
    now: datetime | None = None,
) -> CreditRepair:
    listing = await _open_listing(session, listing_id)
    _not_before_min_end(listing, now or datetime.now(UTC))
    if not statement.strip():
        raise RecordRejected("INVALID_INPUT", "a repair request needs a statement", ("statement",))
    repair = CreditRepair(
        company_id=listing.company_id,
        listing_id=listing_id,
        statement=statement.strip(),
        recorded_by=recorded_by,
    )
    session.add(repair)
    await session.flush()
    return repair


async def decide_repair(
    session: AsyncSession,
    repair_id: int,
    approve: bool,
    reason: str,
    decided_by: str,
    now: datetime | None = None,
) -> RepairDecision:
    """Approve: the listing ends (REPAIRED) and the findings behind it stop counting (REPAIRED)."""
    now = now or datetime.now(UTC)
    repair = await session.get(CreditRepair, repair_id)
    if repair is None:
        raise RecordRejected("NOT_FOUND", f"no credit repair {repair_id}", ("repair_id",))
    if await session.scalar(
        sa.select(RepairDecision.id).where(RepairDecision.repair_id == repair_id)
    ):
        raise RecordRejected("ALREADY_DECIDED", f"credit repair {repair_id} is already decided")
    listing = await _open_listing(session, repair.listing_id)
    if approve:
        _not_before_min_end(listing, now)
    decision = RepairDecision(
        repair_id=repair_id,
        outcome=RepairDecisionOutcome.APPROVED if approve else RepairDecisionOutcome.REJECTED,
        reason=reason,
        decided_by=decided_by,
    )
    session.add(decision)
    if approve:
        session.add(
            ListingEnd(
                listing_id=listing.id,
                ended_at=now,
                how=ListingEndKind.REPAIRED,
                reason=reason,
                repair_id=repair_id,
                recorded_by=decided_by,
            )
        )
        counting = await _counting(session, [int(i) for i in listing.finding_ids])
        for finding_id in listing.finding_ids:
            if int(finding_id) in counting:
                session.add(
                    FindingEvent(
                        finding_id=finding_id,
                        kind=FindingEventKind.REPAIRED,
                        reason=reason,
                        repair_id=repair_id,
                        recorded_by=decided_by,
                    )
                )
    await session.flush()
    return decision


async def place_listing(
    session: AsyncSession,
    credit_code: str,
    reason: str,
    min_end: datetime,
    max_end: datetime,
    critical: bool,
    recorded_by: str,
    now: datetime | None = None,
) -> Listing:
    """A manual listing by an admin (the periods come from the rulebook, via the caller)."""
    company_id = await _company_id(session, credit_code)
    if not reason.strip():
        raise RecordRejected("INVALID_INPUT", "a listing needs a reason", ("reason",))
    active = await session.scalar(
        sa.select(Listing.id).where(
            Listing.company_id == company_id,
            Listing.max_end > (now or datetime.now(UTC)),
            ~sa.exists().where(ListingEnd.listing_id == Listing.id),
        )
    )
    if active is not None:
        raise RecordRejected(
            "ALREADY_LISTED", f"{credit_code} is already listed (listing {active})"
        )
    listing = Listing(
        company_id=company_id,
        started_at=now or datetime.now(UTC),
        min_end=min_end,
        max_end=max_end,
        critical=critical,
        reason=reason.strip(),
        finding_ids=[],
        recorded_by=recorded_by,
    )
    session.add(listing)
    await session.flush()
    return listing


async def lift_listing(
    session: AsyncSession,
    listing_id: int,
    reason: str,
    recorded_by: str,
    now: datetime | None = None,
) -> ListingEnd:
    listing = await _open_listing(session, listing_id)
    if not reason.strip():
        raise RecordRejected("INVALID_INPUT", "lifting a listing needs a reason", ("reason",))
    end = ListingEnd(
        listing_id=listing.id,
        ended_at=now or datetime.now(UTC),
        how=ListingEndKind.LIFTED,
        reason=reason.strip(),
        recorded_by=recorded_by,
    )
    session.add(end)
    await session.flush()
    return end
