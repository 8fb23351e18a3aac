"""Reviewers' and admins' records: inspections and rectifications, post-evaluations, monthly
reports, appeals, credit repairs, manual listings, and the registry facts scoring rests on.

Each mutation takes one `input` and returns its record, the company's credit file and
`userErrors` for expected refusals. The record is the work of one registry use case
(registry.actions), which appends it and rescores the company in one transaction, so the next
`eligibility` answer already reflects it; a failed rescore fails the mutation and keeps nothing.
The caller (role:name) is the audit chain's actor."""

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.utils.str_converters import to_camel_case

from api.errors import INVALID_ID
from api.loaders_reviewer import forget
from api.schema.approval import UserError
from api.schema.base import Info, caller, root_mutation
from api.schema.enums import (
    AppealDecisionOutcomeEnum,
    InspectionSeverityEnum,
    PermitKindEnum,
    ProjectTypeEnum,
    RepairDecisionOutcomeEnum,
    VerdictEnum,
)
from api.schema.node import database_id
from api.schema.reviewer_types import (
    Appeal,
    CreditFile,
    CreditRepair,
    Finding,
    Inspection,
    InspectionFinding,
    Listing,
    MonthlyReport,
    Permit,
    PostEvaluation,
    Project,
    by_id,
)
from registry import actions
from registry.actions import Acting, Done, Problem, Refused
from registry.roles import Action

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
    effective_from: datetime | None = strawberry.field(
        default=None,
        description=(
            "When this takes effect; default now. In the past: a correction — the months since "
            "are judged again (final ones included) with it."
        ),
    )


@strawberry.input
class RecordPermitInput:
    project_code: str
    kind: PermitKindEnum
    number: str
    annual_total_m3: float | None = None
    daily_intensity_m3: float | None = None
    valid_from: date
    valid_to: date | None = None
    effective_from: datetime | None = strawberry.field(
        default=None,
        description=(
            "When this takes effect; default now. In the past: a correction — the months since "
            "are judged again (final ones included) with it."
        ),
    )


@strawberry.input(description="Zone flags of a project; a null flag stays as it is.")
class SetProjectZonesInput:
    project_code: str
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None
    effective_from: datetime | None = strawberry.field(
        default=None,
        description=(
            "When this takes effect; default now. In the past: a correction — the months since "
            "are judged again (final ones included) with it."
        ),
    )


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


def _node_id(value: str, cls: type, field: str) -> int:
    """The database id inside a global id of type `cls`."""
    try:
        gid = relay.GlobalID.from_id(value)
        if gid.type_name != cls.__name__:
            raise ValueError(gid.type_name)
        return database_id(gid.node_id)
    except ValueError:
        message = f"{value!r} is not the id of a {cls.__name__}"
        raise Refused([Problem(INVALID_ID, message, (field,))]) from None


def _user_error(problem: Problem) -> UserError:
    field = None
    if problem.field is not None:
        field = ["input", *(to_camel_case(str(part)) for part in problem.field)]
    return UserError(field=field, message=problem.message, code=problem.code)


async def _run(
    info: Info, perform: Callable[[Acting], Awaitable[Done]], node: type
) -> tuple[Any, CreditFile | None, list[UserError]]:
    """Perform the use case as the caller, then read its record and the file back."""
    ctx = info.context
    acting = Acting(caller(info), ctx.services.sessions, ctx.services.rulebook, ctx.now)
    try:
        done = await perform(acting)
    except Refused as e:
        return None, None, [_user_error(p) for p in e.problems]
    forget(ctx)
    return (
        await by_id(info, node, done.record_id),
        await by_id(info, CreditFile, done.company_id),
        [],
    )


def _zones(input: Any) -> dict[str, bool | None]:
    return {
        "in_spring_protection_zone": input.in_spring_protection_zone,
        "in_drinking_water_source": input.in_drinking_water_source,
        "in_groundwater_restricted_zone": input.in_groundwater_restricted_zone,
    }


# ---------------------------------------------------------------- mutations


@strawberry.type
class Mutation:
    @root_mutation(
        Action.RECORD_INSPECTION,
        description="Record an inspection and its findings; the company is rescored at once.",
    )
    async def record_inspection(
        self, info: Info, input: RecordInspectionInput
    ) -> RecordInspectionPayload:
        data = {
            "credit_code": input.credit_code,
            "project_code": input.project_code or None,
            "inspected_on": input.inspected_on,
            "inspector": input.inspector,
            "summary": input.summary,
            "findings": [
                {
                    "severity": f.severity,
                    "description": f.description,
                    "falsified_data": f.falsified_data,
                    "rectification_deadline": f.rectification_deadline,
                    "evidence": f.evidence,
                }
                for f in input.findings
            ],
        }
        inspection, file, errors = await _run(
            info, lambda acting: actions.record_inspection(acting, data), Inspection
        )
        return RecordInspectionPayload(inspection=inspection, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.RECORD_RECTIFICATION,
        description="Record that an inspection finding was rectified; rescored at once.",
    )
    async def record_rectification(
        self, info: Info, input: RecordRectificationInput
    ) -> RecordRectificationPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "finding_id": _node_id(input.finding_id, InspectionFinding, "finding_id"),
                "rectified_on": input.rectified_on,
                "note": input.note,
            }
            return await actions.record_rectification(acting, data)

        finding, file, errors = await _run(info, perform, InspectionFinding)
        return RecordRectificationPayload(
            inspection_finding=finding, credit_file=file, user_errors=errors
        )

    @root_mutation(
        Action.RECORD_POST_EVALUATION,
        description="Record a project's post-evaluation (后评估); rescored at once.",
    )
    async def record_post_evaluation(
        self, info: Info, input: RecordPostEvaluationInput
    ) -> RecordPostEvaluationPayload:
        data = {
            "project_code": input.project_code,
            "evaluated_on": input.evaluated_on,
            "verdict": input.verdict.value,
            "reviewer": input.reviewer,
            "summary": input.summary,
            "findings": input.findings,
        }
        evaluation, file, errors = await _run(
            info, lambda acting: actions.record_post_evaluation(acting, data), PostEvaluation
        )
        return RecordPostEvaluationPayload(
            post_evaluation=evaluation, credit_file=file, user_errors=errors
        )

    @root_mutation(
        Action.SUBMIT_MONTHLY_REPORT,
        description="Record a monthly operating report (每月运行状况); rescored at once.",
    )
    async def submit_monthly_report(
        self, info: Info, input: SubmitMonthlyReportInput
    ) -> SubmitMonthlyReportPayload:
        data = {
            "project_code": input.project_code,
            "month": input.month,
            "submitted_on": input.submitted_on,
        }
        report, file, errors = await _run(
            info, lambda acting: actions.submit_monthly_report(acting, data), MonthlyReport
        )
        return SubmitMonthlyReportPayload(
            monthly_report=report, credit_file=file, user_errors=errors
        )

    @root_mutation(
        Action.OPEN_APPEAL,
        description="Open an appeal (异议) against a finding; it still counts until decided.",
    )
    async def open_appeal(self, info: Info, input: OpenAppealInput) -> AppealPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "finding_id": _node_id(input.finding_id, Finding, "finding_id"),
                "grounds": input.grounds,
                "filed_on": input.filed_on,
            }
            return await actions.open_appeal(acting, data)

        appeal, file, errors = await _run(info, perform, Appeal)
        return AppealPayload(appeal=appeal, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.DECIDE_APPEAL,
        description=(
            "Decide an appeal. OVERTURNED voids the finding by a new record and the company is "
            "rescored at once; UPHELD leaves it counting."
        ),
    )
    async def decide_appeal(self, info: Info, input: DecideAppealInput) -> AppealPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "appeal_id": _node_id(input.appeal_id, Appeal, "appeal_id"),
                "overturn": input.outcome is AppealDecisionOutcomeEnum.OVERTURNED,
                "reason": input.reason,
            }
            return await actions.decide_appeal(acting, data)

        appeal, file, errors = await _run(info, perform, Appeal)
        return AppealPayload(appeal=appeal, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.REQUEST_REPAIR,
        description=(
            "Request credit repair (信用修复) of an active listing; refused with "
            "REPAIR_TOO_EARLY before the listing's minimum period has passed."
        ),
    )
    async def request_repair(self, info: Info, input: RequestRepairInput) -> RepairPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "listing_id": _node_id(input.listing_id, Listing, "listing_id"),
                "statement": input.statement,
            }
            return await actions.request_repair(acting, data)

        repair, file, errors = await _run(info, perform, CreditRepair)
        return RepairPayload(repair=repair, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.DECIDE_REPAIR,
        description=(
            "Decide a credit repair. APPROVED ends the listing and the findings behind it stop "
            "counting; the company is rescored at once."
        ),
    )
    async def decide_repair(self, info: Info, input: DecideRepairInput) -> RepairPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "repair_id": _node_id(input.repair_id, CreditRepair, "repair_id"),
                "approve": input.outcome is RepairDecisionOutcomeEnum.APPROVED,
                "reason": input.reason,
            }
            return await actions.decide_repair(acting, data)

        repair, file, errors = await _run(info, perform, CreditRepair)
        return RepairPayload(repair=repair, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.PLACE_LISTING,
        description=(
            "List a company as 失信 by hand, with a reason; its periods come from the rulebook."
        ),
    )
    async def place_listing(self, info: Info, input: PlaceListingInput) -> ListingPayload:
        data = {
            "credit_code": input.credit_code,
            "reason": input.reason,
            "critical": input.critical,
        }
        listing, file, errors = await _run(
            info, lambda acting: actions.place_listing(acting, data), Listing
        )
        return ListingPayload(listing=listing, credit_file=file, user_errors=errors)

    @root_mutation(Action.LIFT_LISTING, description="End an active listing by hand, with a reason.")
    async def lift_listing(self, info: Info, input: LiftListingInput) -> ListingPayload:
        async def perform(acting: Acting) -> Done:
            data = {
                "listing_id": _node_id(input.listing_id, Listing, "listing_id"),
                "reason": input.reason,
            }
            return await actions.lift_listing(acting, data)

        listing, file, errors = await _run(info, perform, Listing)
        return ListingPayload(listing=listing, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.REGISTER_PROJECT,
        description=(
            "Register a project or a new version of it (zone flags left null keep their known "
            "values); files the company when companyName is given and it has no file."
        ),
    )
    async def register_project(self, info: Info, input: RegisterProjectInput) -> ProjectPayload:
        data = {
            "code": input.code,
            "credit_code": input.credit_code,
            "name": input.name,
            "type": input.type.value,
            "city": input.city,
            "county": input.county,
            "operating": input.operating,
            **_zones(input),
        }
        project, file, errors = await _run(
            info,
            lambda acting: actions.register_project(
                acting, data, input.company_name, input.effective_from
            ),
            Project,
        )
        return ProjectPayload(project=project, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.RECORD_PERMIT,
        description="Record a permit of a project; it supersedes the current one of its kind.",
    )
    async def record_permit(self, info: Info, input: RecordPermitInput) -> RecordPermitPayload:
        data = {
            "project_code": input.project_code,
            "kind": input.kind.value,
            "number": input.number,
            "annual_total_m3": input.annual_total_m3,
            "daily_intensity_m3": input.daily_intensity_m3,
            "valid_from": input.valid_from,
            "valid_to": input.valid_to,
        }
        permit, file, errors = await _run(
            info, lambda acting: actions.record_permit(acting, data, input.effective_from), Permit
        )
        return RecordPermitPayload(permit=permit, credit_file=file, user_errors=errors)

    @root_mutation(
        Action.SET_PROJECT_ZONES, description="Set a project's zone flags (二(三)1 zone bans)."
    )
    async def set_project_zones(self, info: Info, input: SetProjectZonesInput) -> ProjectPayload:
        data = {"project_code": input.project_code, **_zones(input)}
        project, file, errors = await _run(
            info,
            lambda acting: actions.set_project_zones(acting, data, input.effective_from),
            Project,
        )
        return ProjectPayload(project=project, credit_file=file, user_errors=errors)
