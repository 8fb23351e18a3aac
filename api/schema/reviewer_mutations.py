"""Reviewers' and admins' records: inspections and rectifications, post-evaluations, monthly
reports, appeals, credit repairs, manual listings, and the registry facts scoring rests on.

Each mutation takes one `input` and returns its record, the company's credit file and
`userErrors` for expected refusals. The record is appended by a registry service
(registry.reviews / registry.services) and, when it can change the company's standing, the
company is rescored in the same transaction (registry.scoring_run), so the next `eligibility`
answer already reflects it. The caller (role:name) is the audit chain's actor."""

from collections.abc import Awaitable, Callable
from datetime import date
from enum import StrEnum
from typing import Any

import pydantic
import sqlalchemy as sa
import strawberry
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay
from strawberry.utils.str_converters import to_camel_case

from api.errors import INVALID_CREDIT_CODE, INVALID_ID, INVALID_INPUT
from api.loaders_reviewer import forget
from api.schema.approval import UserError
from api.schema.base import Info, caller, root_mutation
from api.schema.reviewer_types import (
    FILE_READERS,
    Appeal,
    CreditFile,
    CreditRepair,
    Finding,
    Inspection,
    InspectionFinding,
    Listing,
    MonthlyReport,
    Permit,
    PermitKindEnum,
    PostEvaluation,
    Project,
    ProjectTypeEnum,
    VerdictEnum,
    by_id,
)
from registry import db, reviews, scoring_run, services
from registry.creditcode import InvalidCreditCode
from registry.models import Appeal as AppealRow
from registry.models import Company as CompanyRow
from registry.models import CreditRepair as CreditRepairRow
from registry.models import Inspection as InspectionRow
from registry.models import InspectionFinding as InspectionFindingRow
from registry.models import Listing as ListingRow
from registry.models import ProjectVersion, Role
from registry.reviews import RecordRejected, project_company_id
from registry.services import UnknownEntity
from scoring import periods

log = structlog.get_logger("geocredit.api")

RECORDERS = FILE_READERS
NOT_FOUND = "NOT_FOUND"  # as registry.reviews refuses an unknown record

InspectionSeverityEnum = strawberry.enum(reviews.Severity, name="InspectionSeverity")


class AppealDecisionOutcome(StrEnum):
    UPHELD = "UPHELD"
    OVERTURNED = "OVERTURNED"


class RepairDecisionOutcome(StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


AppealDecisionOutcomeEnum = strawberry.enum(AppealDecisionOutcome)
RepairDecisionOutcomeEnum = strawberry.enum(RepairDecisionOutcome)


# ---------------------------------------------------------------- inputs


@strawberry.input
class InspectionFindingInput:
    severity: InspectionSeverityEnum
    description: str
    falsified_data: bool = strawberry.field(
        default=False,
        description="The inspection proves monitoring data falsified or meters tampered.",
    )
    rectification_deadline: date | None = None
    evidence: list[str] = strawberry.field(
        default_factory=list, description="References: document numbers, photo ids, file names."
    )


@strawberry.input
class RecordInspectionInput:
    credit_code: str
    project_code: str | None = strawberry.field(
        default=None, description="The project inspected; null: the company as a whole."
    )
    inspected_on: date
    inspector: str
    summary: str = ""
    findings: list[InspectionFindingInput] = strawberry.field(default_factory=list)


@strawberry.input
class RecordRectificationInput:
    finding_id: strawberry.ID = strawberry.field(description="An InspectionFinding's id.")
    rectified_on: date
    note: str = ""


@strawberry.input
class RecordPostEvaluationInput:
    project_code: str
    evaluated_on: date
    verdict: VerdictEnum
    reviewer: str
    summary: str = ""
    findings: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class SubmitMonthlyReportInput:
    project_code: str
    month: date = strawberry.field(description="Any day of the month reported on.")
    submitted_on: date = strawberry.field(
        description="When the company submitted it to the energy bureau's platform."
    )


@strawberry.input
class OpenAppealInput:
    finding_id: strawberry.ID = strawberry.field(description="A Finding's id.")
    grounds: str
    filed_on: date | None = strawberry.field(default=None, description="Default: today.")


@strawberry.input
class DecideAppealInput:
    appeal_id: strawberry.ID
    outcome: AppealDecisionOutcomeEnum
    reason: str


@strawberry.input
class RequestRepairInput:
    listing_id: strawberry.ID
    statement: str = strawberry.field(description="What the company corrected.")


@strawberry.input
class DecideRepairInput:
    repair_id: strawberry.ID
    outcome: RepairDecisionOutcomeEnum
    reason: str


@strawberry.input
class PlaceListingInput:
    credit_code: str
    reason: str
    critical: bool = strawberry.field(
        default=False,
        description="Serious: the rulebook's longer minimum period (CRITICAL), else a score's.",
    )


@strawberry.input
class LiftListingInput:
    listing_id: strawberry.ID
    reason: str


@strawberry.input
class RegisterProjectInput:
    code: str
    credit_code: str
    company_name: str | None = strawberry.field(
        default=None, description="Files the company too when it has no credit file yet."
    )
    name: str
    type: ProjectTypeEnum
    city: str
    county: str | None = None
    operating: bool = True
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None


@strawberry.input
class RecordPermitInput:
    project_code: str
    kind: PermitKindEnum
    number: str
    annual_total_m3: float | None = None
    daily_intensity_m3: float | None = None
    valid_from: date
    valid_to: date | None = None


@strawberry.input(description="Zone flags of a project; a null flag stays as it is.")
class SetProjectZonesInput:
    project_code: str
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None


# ---------------------------------------------------------------- payloads


@strawberry.type
class RecordInspectionPayload:
    inspection: Inspection | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class RecordRectificationPayload:
    inspection_finding: InspectionFinding | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class RecordPostEvaluationPayload:
    post_evaluation: PostEvaluation | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class SubmitMonthlyReportPayload:
    monthly_report: MonthlyReport | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class AppealPayload:
    appeal: Appeal | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class RepairPayload:
    repair: CreditRepair | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class ListingPayload:
    listing: Listing | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class ProjectPayload:
    project: Project | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


@strawberry.type
class RecordPermitPayload:
    permit: Permit | None
    credit_file: CreditFile | None
    user_errors: list[UserError]


# ---------------------------------------------------------------- running a record

Write = Callable[[AsyncSession, str], Awaitable[tuple[int, int]]]
"""(session, actor) → (id of the record written, id of its company)"""


def _actor(info: Info) -> str:
    client = caller(info)
    return f"{client.role.value}:{client.name}"


def _node_id(value: str, cls: type, field: str) -> int:
    """The database id inside a global id of type `cls`."""
    try:
        gid = relay.GlobalID.from_id(value)
        if gid.type_name != cls.__name__:
            raise ValueError(gid.type_name)
        return int(gid.node_id)
    except ValueError:
        raise RecordRejected(
            INVALID_ID, f"{value!r} is not the id of a {cls.__name__}", (field,)
        ) from None


def _invalid(e: pydantic.ValidationError) -> list[UserError]:
    errors = []
    for err in e.errors():
        path = [to_camel_case(str(p)) for p in err["loc"]]
        code = INVALID_CREDIT_CODE if path[:1] == ["creditCode"] else INVALID_INPUT
        errors.append(UserError(field=["input", *path], message=err["msg"], code=code))
    return errors


async def _run(
    info: Info, write: Write, node: type, *, rescore: bool = True, missing: str = "projectCode"
) -> tuple[Any, CreditFile | None, list[UserError]]:
    """Write in one transaction, rescore the company in it, then read the record back.
    `missing` names the input field an UnknownEntity refers to."""
    ctx = info.context
    actor = _actor(info)
    try:
        async with db.transaction(ctx.services.sessions, actor) as session:
            record_id, company_id = await write(session, actor)
            if rescore:
                summary = await scoring_run.rescore_in_session(
                    session, [company_id], now=ctx.now, rulebook=ctx.services.rulebook, actor=actor
                )
                for problem in summary.errors:
                    log.warning("rescoring after a record failed", problem=problem)
    except RecordRejected as e:
        field = ["input", *e.field] if e.field else None
        return None, None, [UserError(field=field, message=e.message, code=e.code)]
    except UnknownEntity as e:
        return None, None, [UserError(field=["input", missing], message=str(e), code=NOT_FOUND)]
    except InvalidCreditCode as e:
        field = ["input", "creditCode"]
        return None, None, [UserError(field=field, message=str(e), code=INVALID_CREDIT_CODE)]
    except pydantic.ValidationError as e:
        return None, None, _invalid(e)
    forget(ctx)
    return await by_id(info, node, record_id), await by_id(info, CreditFile, company_id), []


async def _company_of_listing(session: AsyncSession, listing_id: int) -> int:
    listing = await session.get(ListingRow, listing_id)
    return listing.company_id


def _text(value: str, field: str) -> str:
    if not value.strip():
        raise RecordRejected(INVALID_INPUT, f"{field} must not be empty", (field,))
    return value.strip()


# ---------------------------------------------------------------- mutations


@strawberry.type
class Mutation:
    @root_mutation(
        *RECORDERS,
        description="Record an inspection and its findings; the company is rescored at once.",
    )
    async def record_inspection(
        self, info: Info, input: RecordInspectionInput
    ) -> RecordInspectionPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            data = reviews.InspectionInput(
                credit_code=input.credit_code,
                project_code=input.project_code or None,
                inspected_on=input.inspected_on,
                inspector=input.inspector,
                summary=input.summary,
                findings=[  # plain dicts: errors then name their place in the list
                    {
                        "severity": f.severity,
                        "description": f.description,
                        "falsified_data": f.falsified_data,
                        "rectification_deadline": f.rectification_deadline,
                        "evidence": f.evidence,
                    }
                    for f in input.findings
                ],
            )
            row = await reviews.record_inspection(session, data, actor)
            return row.id, row.company_id

        inspection, file, errors = await _run(info, write, Inspection)
        return RecordInspectionPayload(inspection=inspection, credit_file=file, user_errors=errors)

    @root_mutation(
        *RECORDERS,
        description="Record that an inspection finding was rectified; rescored at once.",
    )
    async def record_rectification(
        self, info: Info, input: RecordRectificationInput
    ) -> RecordRectificationPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            finding_id = _node_id(input.finding_id, InspectionFinding, "findingId")
            await reviews.record_rectification(
                session, finding_id, input.rectified_on, input.note, actor
            )
            finding = await session.get(InspectionFindingRow, finding_id)
            inspection = await session.get(InspectionRow, finding.inspection_id)
            return finding_id, inspection.company_id

        finding, file, errors = await _run(info, write, InspectionFinding)
        return RecordRectificationPayload(
            inspection_finding=finding, credit_file=file, user_errors=errors
        )

    @root_mutation(
        *RECORDERS, description="Record a project's post-evaluation (后评估); rescored at once."
    )
    async def record_post_evaluation(
        self, info: Info, input: RecordPostEvaluationInput
    ) -> RecordPostEvaluationPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            data = reviews.PostEvaluationInput(
                project_code=input.project_code,
                evaluated_on=input.evaluated_on,
                verdict=input.verdict.value,
                reviewer=input.reviewer,
                summary=input.summary,
                findings=input.findings,
            )
            row = await reviews.record_post_evaluation(session, data, actor)
            return row.id, row.company_id

        evaluation, file, errors = await _run(info, write, PostEvaluation)
        return RecordPostEvaluationPayload(
            post_evaluation=evaluation, credit_file=file, user_errors=errors
        )

    @root_mutation(
        *RECORDERS,
        description="Record a monthly operating report (每月运行状况); rescored at once.",
    )
    async def submit_monthly_report(
        self, info: Info, input: SubmitMonthlyReportInput
    ) -> SubmitMonthlyReportPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            data = reviews.MonthlyReportInput(
                project_code=input.project_code,
                month=input.month,
                submitted_on=input.submitted_on,
            )
            row = await reviews.record_monthly_report(session, data, actor)
            return row.id, await project_company_id(session, row.project_id)

        report, file, errors = await _run(info, write, MonthlyReport)
        return SubmitMonthlyReportPayload(
            monthly_report=report, credit_file=file, user_errors=errors
        )

    @root_mutation(
        *RECORDERS,
        description="Open an appeal (异议) against a finding; it still counts until decided.",
    )
    async def open_appeal(self, info: Info, input: OpenAppealInput) -> AppealPayload:
        today = periods.local_date(info.context.now, info.context.services.rulebook)

        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            finding_id = _node_id(input.finding_id, Finding, "findingId")
            row = await reviews.open_appeal(
                session, finding_id, input.filed_on or today, input.grounds, actor
            )
            return row.id, row.company_id

        appeal, file, errors = await _run(info, write, Appeal, rescore=False)
        return AppealPayload(appeal=appeal, credit_file=file, user_errors=errors)

    @root_mutation(
        *RECORDERS,
        description=(
            "Decide an appeal. OVERTURNED voids the finding by a new record and the company is "
            "rescored at once; UPHELD leaves it counting."
        ),
    )
    async def decide_appeal(self, info: Info, input: DecideAppealInput) -> AppealPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            appeal_id = _node_id(input.appeal_id, Appeal, "appealId")
            await reviews.decide_appeal(
                session,
                appeal_id,
                input.outcome is AppealDecisionOutcome.OVERTURNED,
                _text(input.reason, "reason"),
                actor,
            )
            return appeal_id, (await session.get(AppealRow, appeal_id)).company_id

        appeal, file, errors = await _run(info, write, Appeal)
        return AppealPayload(appeal=appeal, credit_file=file, user_errors=errors)

    @root_mutation(
        *RECORDERS,
        description=(
            "Request credit repair (信用修复) of an active listing; refused with "
            "REPAIR_TOO_EARLY before the listing's minimum period has passed."
        ),
    )
    async def request_repair(self, info: Info, input: RequestRepairInput) -> RepairPayload:
        now = info.context.now

        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            listing_id = _node_id(input.listing_id, Listing, "listingId")
            row = await reviews.request_repair(session, listing_id, input.statement, actor, now)
            return row.id, row.company_id

        repair, file, errors = await _run(info, write, CreditRepair, rescore=False)
        return RepairPayload(repair=repair, credit_file=file, user_errors=errors)

    @root_mutation(
        *RECORDERS,
        description=(
            "Decide a credit repair. APPROVED ends the listing and the findings behind it stop "
            "counting; the company is rescored at once."
        ),
    )
    async def decide_repair(self, info: Info, input: DecideRepairInput) -> RepairPayload:
        now = info.context.now

        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            repair_id = _node_id(input.repair_id, CreditRepair, "repairId")
            await reviews.decide_repair(
                session,
                repair_id,
                input.outcome is RepairDecisionOutcome.APPROVED,
                _text(input.reason, "reason"),
                actor,
                now,
            )
            return repair_id, (await session.get(CreditRepairRow, repair_id)).company_id

        repair, file, errors = await _run(info, write, CreditRepair)
        return RepairPayload(repair=repair, credit_file=file, user_errors=errors)

    @root_mutation(
        Role.ADMIN,
        description=(
            "List a company as 失信 by hand, with a reason; its periods come from the rulebook."
        ),
    )
    async def place_listing(self, info: Info, input: PlaceListingInput) -> ListingPayload:
        ctx = info.context
        rulebook, now = ctx.services.rulebook, ctx.now
        today = periods.local_date(now, rulebook)
        params = rulebook.listing
        months = params.min_months_critical if input.critical else params.min_months_score

        def on(months: int) -> Any:
            return periods.local_midnight(periods.add_months(today, months), rulebook)

        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            row = await reviews.place_listing(
                session,
                input.credit_code,
                input.reason,
                on(months),
                on(params.max_months),
                input.critical,
                actor,
                now,
            )
            return row.id, row.company_id

        listing, file, errors = await _run(info, write, Listing)
        return ListingPayload(listing=listing, credit_file=file, user_errors=errors)

    @root_mutation(Role.ADMIN, description="End an active listing by hand, with a reason.")
    async def lift_listing(self, info: Info, input: LiftListingInput) -> ListingPayload:
        now = info.context.now

        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            listing_id = _node_id(input.listing_id, Listing, "listingId")
            await reviews.lift_listing(session, listing_id, input.reason, actor, now)
            return listing_id, await _company_of_listing(session, listing_id)

        listing, file, errors = await _run(info, write, Listing)
        return ListingPayload(listing=listing, credit_file=file, user_errors=errors)

    @root_mutation(
        Role.ADMIN,
        description=(
            "Register a project or a new version of it (zone flags left null keep their known "
            "values); files the company when companyName is given and it has no file."
        ),
    )
    async def register_project(self, info: Info, input: RegisterProjectInput) -> ProjectPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            data = services.ProjectInput(
                code=input.code,
                credit_code=input.credit_code,
                name=input.name,
                type=input.type.value,
                city=input.city,
                county=input.county,
                operating=input.operating,
                in_spring_protection_zone=input.in_spring_protection_zone,
                in_drinking_water_source=input.in_drinking_water_source,
                in_groundwater_restricted_zone=input.in_groundwater_restricted_zone,
            )
            company_name = (input.company_name or "").strip() or None
            project = await services.register_project(session, data, actor, company_name)
            return project.id, await project_company_id(session, project.id)

        project, file, errors = await _run(info, write, Project, missing="creditCode")
        return ProjectPayload(project=project, credit_file=file, user_errors=errors)

    @root_mutation(
        Role.ADMIN,
        description="Record a permit of a project; it supersedes the current one of its kind.",
    )
    async def record_permit(self, info: Info, input: RecordPermitInput) -> RecordPermitPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            data = services.PermitInput(
                project_code=input.project_code,
                kind=input.kind.value,
                number=input.number,
                annual_total_m3=input.annual_total_m3,
                daily_intensity_m3=input.daily_intensity_m3,
                valid_from=input.valid_from,
                valid_to=input.valid_to,
            )
            permit = await services.record_permit(session, data, actor)
            return permit.id, await project_company_id(session, permit.project_id)

        permit, file, errors = await _run(info, write, Permit)
        return RecordPermitPayload(permit=permit, credit_file=file, user_errors=errors)

    @root_mutation(Role.ADMIN, description="Set a project's zone flags (二(三)1 zone bans).")
    async def set_project_zones(self, info: Info, input: SetProjectZonesInput) -> ProjectPayload:
        async def write(session: AsyncSession, actor: str) -> tuple[int, int]:
            project = await services.project_by_code(session, input.project_code)
            current = await session.scalar(
                sa.select(ProjectVersion)
                .where(ProjectVersion.project_id == project.id)
                .order_by(ProjectVersion.id.desc())
                .limit(1)
            )
            company = await session.get(CompanyRow, current.company_id)
            data = services.ProjectInput(
                code=project.code,
                credit_code=company.credit_code,
                name=current.name,
                type=current.type,
                city=current.city,
                county=current.county,
                operating=current.operating,
                in_spring_protection_zone=input.in_spring_protection_zone,
                in_drinking_water_source=input.in_drinking_water_source,
                in_groundwater_restricted_zone=input.in_groundwater_restricted_zone,
            )
            await services.register_project(session, data, actor)
            return project.id, current.company_id

        project, file, errors = await _run(info, write, Project)
        return ProjectPayload(project=project, credit_file=file, user_errors=errors)
