"""Reviewers' and admins' actions on credit files, one use case each: check the caller's role
(registry.roles), validate the input, append the records (registry.reviews, registry.registration)
and rescore the company (registry.rescoring) — all in one transaction, so the next decision
already reflects the record. A rescore that fails fails the action: nothing of it is kept.

GraphQL's mutations and the reviewer console call these the same way, with the same inputs
(a pydantic model or a mapping of its fields), and get a `Done` or an exception: `Refused` for
expected refusals (each problem with a stable code and the input field, by the names used
here), `roles.Forbidden`, or `RescoreFailed` (a bug or bad stored data: the caller reports it)."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from registry import db, registration, rescoring, reviews
from registry.auth import Client
from registry.creditcode import InvalidCreditCode
from registry.models import Appeal, CreditRepair, Inspection, InspectionFinding, Listing
from registry.registration import UnknownEntity
from registry.reviews import RecordRejected, project_company_id
from registry.roles import Action, require
from scoring import periods
from scoring.model import CompanyResult, Grade, InputError
from scoring.rulebook import Rulebook

INVALID_INPUT = "INVALID_INPUT"
INVALID_CREDIT_CODE = "INVALID_CREDIT_CODE"
NOT_FOUND = "NOT_FOUND"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Acting:
    """Who acts, on which registry, at which instant, under which rulebook."""

    client: Client
    sessions: async_sessionmaker[AsyncSession]
    rulebook: Rulebook
    now: datetime

    @property
    def actor(self) -> str:
        """The audit chain's actor: role:name."""
        return f"{self.client.role.value}:{self.client.name}"

    @property
    def today(self) -> date:
        return periods.local_date(self.now, self.rulebook)


@dataclass(frozen=True)
class Done:
    """The record written, its company, and the company's standing after the rescore."""

    record_id: int
    company_id: int
    grade: Grade
    score: float


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    # The offending input by its field names here and list indexes; () the input as a whole,
    # None no input in particular (e.g. a record in the wrong state).
    field: tuple[str | int, ...] | None = None


class Refused(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class RescoreFailed(RuntimeError):
    """Rescoring the company failed, so the action was rolled back."""


_NOT_KEPT = "the record was not kept: rescoring the company failed"


# ---------------------------------------------------------------- inputs (besides reviews' own)


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)


class RectificationInput(_Input):
    finding_id: int  # an inspection finding
    rectified_on: date
    note: str = Field(default="", max_length=4000)


class AppealInput(_Input):
    finding_id: int  # a finding of the rulebook
    grounds: str = Field(min_length=1, max_length=8000)
    filed_on: date | None = None  # None: today


class AppealDecisionInput(_Input):
    appeal_id: int
    overturn: bool  # False: upheld
    reason: str = Field(min_length=1, max_length=4000)


class RepairRequestInput(_Input):
    listing_id: int
    statement: str = Field(min_length=1, max_length=8000)  # what the company corrected


class RepairDecisionInput(_Input):
    repair_id: int
    approve: bool
    reason: str = Field(min_length=1, max_length=4000)


class ListingInput(_Input):
    credit_code: str
    reason: str = Field(min_length=1, max_length=4000)
    critical: bool = False  # the rulebook's longer minimum period


class LiftInput(_Input):
    listing_id: int
    reason: str = Field(min_length=1, max_length=4000)


# ---------------------------------------------------------------- running an action

Write = Callable[[AsyncSession, Any], Awaitable[tuple[int, int]]]
"""(session, the parsed input) → (id of the record written, id of its company)"""


def _problems(e: pydantic.ValidationError) -> list[Problem]:
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        code = INVALID_CREDIT_CODE if loc[:1] == ("credit_code",) else INVALID_INPUT
        out.append(Problem(code, err["msg"], loc))
    return out


def parse(model: type[M], data: M | Mapping[str, Any]) -> M:
    """`data` as `model`, or Refused naming every problem."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        raise Refused(_problems(e)) from None


async def _perform(
    acting: Acting, action: Action, model: type[BaseModel], data: Any, write: Write
) -> Done:
    require(acting.client, action)
    parsed = parse(model, data)
    try:
        async with db.transaction(acting.sessions, acting.actor) as session:
            record_id, company_id = await write(session, parsed)
            result = await _rescore(acting, session, company_id)
    except RecordRejected as e:
        raise Refused([Problem(e.code, e.message, e.field or None)]) from None
    except UnknownEntity as e:
        raise Refused([Problem(NOT_FOUND, str(e), (e.field,) if e.field else None)]) from None
    except InvalidCreditCode as e:
        raise Refused([Problem(INVALID_CREDIT_CODE, str(e), ("credit_code",))]) from None
    except pydantic.ValidationError as e:
        raise Refused(_problems(e)) from None
    return Done(record_id, company_id, result.grade, result.score)


async def _rescore(acting: Acting, session: AsyncSession, company_id: int) -> CompanyResult:
    """The company rescored in the action's transaction; RescoreFailed rolls the action back."""
    try:
        summary = await rescoring.rescore_in_session(
            session, [company_id], now=acting.now, rulebook=acting.rulebook, actor=acting.actor
        )
    except (InputError, ValueError, LookupError) as e:  # stored data the scoring cannot take
        raise RescoreFailed(f"{_NOT_KEPT}: {e}") from e
    if summary.errors or company_id not in summary.results:
        raise RescoreFailed(f"{_NOT_KEPT}: " + "; ".join(summary.errors or ["no result"]))
    return summary.results[company_id]


async def _company_of(session: AsyncSession, model: type, row_id: int) -> int:
    return (await session.get(model, row_id)).company_id


# ---------------------------------------------------------------- reviewers' records


async def record_inspection(
    acting: Acting, data: reviews.InspectionInput | Mapping[str, Any]
) -> Done:
    """An inspection and its findings (监督检查)."""

    async def write(session: AsyncSession, data: reviews.InspectionInput) -> tuple[int, int]:
        row = await reviews.record_inspection(session, data, acting.actor)
        return row.id, row.company_id

    return await _perform(acting, Action.RECORD_INSPECTION, reviews.InspectionInput, data, write)


async def record_rectification(
    acting: Acting, data: RectificationInput | Mapping[str, Any]
) -> Done:
    """An inspection finding rectified; returns the inspection finding's id."""

    async def write(session: AsyncSession, data: RectificationInput) -> tuple[int, int]:
        await reviews.record_rectification(
            session, data.finding_id, data.rectified_on, data.note, acting.actor
        )
        finding = await session.get(InspectionFinding, data.finding_id)
        return data.finding_id, await _company_of(session, Inspection, finding.inspection_id)

    return await _perform(acting, Action.RECORD_RECTIFICATION, RectificationInput, data, write)


async def record_post_evaluation(
    acting: Acting, data: reviews.PostEvaluationInput | Mapping[str, Any]
) -> Done:
    """A project's post-evaluation (后评估)."""

    async def write(session: AsyncSession, data: reviews.PostEvaluationInput) -> tuple[int, int]:
        row = await reviews.record_post_evaluation(session, data, acting.actor)
        return row.id, row.company_id

    return await _perform(
        acting, Action.RECORD_POST_EVALUATION, reviews.PostEvaluationInput, data, write
    )


async def submit_monthly_report(
    acting: Acting, data: reviews.MonthlyReportInput | Mapping[str, Any]
) -> Done:
    """A monthly operating report (每月运行状况) as the company submitted it."""

    async def write(session: AsyncSession, data: reviews.MonthlyReportInput) -> tuple[int, int]:
        row = await reviews.record_monthly_report(session, data, acting.actor)
        return row.id, await project_company_id(session, row.project_id)

    return await _perform(
        acting, Action.SUBMIT_MONTHLY_REPORT, reviews.MonthlyReportInput, data, write
    )


async def open_appeal(acting: Acting, data: AppealInput | Mapping[str, Any]) -> Done:
    """An appeal (异议) against a finding: it still counts, shown as under appeal."""

    async def write(session: AsyncSession, data: AppealInput) -> tuple[int, int]:
        row = await reviews.open_appeal(
            session, data.finding_id, data.filed_on or acting.today, data.grounds, acting.actor
        )
        return row.id, row.company_id

    return await _perform(acting, Action.OPEN_APPEAL, AppealInput, data, write)


async def decide_appeal(acting: Acting, data: AppealDecisionInput | Mapping[str, Any]) -> Done:
    """Uphold an appeal, or overturn it: the finding stops counting. Returns the appeal's id."""

    async def write(session: AsyncSession, data: AppealDecisionInput) -> tuple[int, int]:
        await reviews.decide_appeal(
            session, data.appeal_id, data.overturn, data.reason, acting.actor
        )
        return data.appeal_id, await _company_of(session, Appeal, data.appeal_id)

    return await _perform(acting, Action.DECIDE_APPEAL, AppealDecisionInput, data, write)


async def request_repair(acting: Acting, data: RepairRequestInput | Mapping[str, Any]) -> Done:
    """A credit repair (信用修复) request; refused before the listing's minimum period."""

    async def write(session: AsyncSession, data: RepairRequestInput) -> tuple[int, int]:
        row = await reviews.request_repair(
            session, data.listing_id, data.statement, acting.actor, acting.now
        )
        return row.id, row.company_id

    return await _perform(acting, Action.REQUEST_REPAIR, RepairRequestInput, data, write)


async def decide_repair(acting: Acting, data: RepairDecisionInput | Mapping[str, Any]) -> Done:
    """Approve a credit repair (the listing ends, its findings stop counting) or reject it.
    Returns the repair's id."""

    async def write(session: AsyncSession, data: RepairDecisionInput) -> tuple[int, int]:
        await reviews.decide_repair(
            session, data.repair_id, data.approve, data.reason, acting.actor, acting.now
        )
        return data.repair_id, await _company_of(session, CreditRepair, data.repair_id)

    return await _perform(acting, Action.DECIDE_REPAIR, RepairDecisionInput, data, write)


async def place_listing(acting: Acting, data: ListingInput | Mapping[str, Any]) -> Done:
    """A 失信 listing by hand; its periods come from the rulebook, from today."""
    rulebook, today = acting.rulebook, acting.today
    params = rulebook.listing

    def after(months: int) -> datetime:
        return periods.local_midnight(periods.add_months(today, months), rulebook)

    async def write(session: AsyncSession, data: ListingInput) -> tuple[int, int]:
        months = params.min_months_critical if data.critical else params.min_months_score
        row = await reviews.place_listing(
            session,
            data.credit_code,
            data.reason,
            after(months),
            after(params.max_months),
            data.critical,
            acting.actor,
            acting.now,
        )
        return row.id, row.company_id

    return await _perform(acting, Action.PLACE_LISTING, ListingInput, data, write)


async def lift_listing(acting: Acting, data: LiftInput | Mapping[str, Any]) -> Done:
    """End an active listing by hand. Returns the listing's id."""

    async def write(session: AsyncSession, data: LiftInput) -> tuple[int, int]:
        await reviews.lift_listing(session, data.listing_id, data.reason, acting.actor, acting.now)
        return data.listing_id, await _company_of(session, Listing, data.listing_id)

    return await _perform(acting, Action.LIFT_LISTING, LiftInput, data, write)


# ---------------------------------------------------------------- registry facts


def _effective(acting: Acting, effective_from: datetime | None) -> datetime | None:
    """An admin record's effectiveFrom: with an offset, not in the future (None: now)."""
    if effective_from is None:
        return None
    if effective_from.tzinfo is None or effective_from.utcoffset() is None:
        message = "effectiveFrom needs a time zone offset"
        raise Refused([Problem(INVALID_INPUT, message, ("effective_from",))])
    if effective_from > acting.now:
        message = "effectiveFrom lies in the future"
        raise Refused([Problem(INVALID_INPUT, message, ("effective_from",))])
    return effective_from


async def register_project(
    acting: Acting,
    data: registration.ProjectInput | Mapping[str, Any],
    company_name: str | None = None,
    effective_from: datetime | None = None,
) -> Done:
    """A project, or a new version of it; files the company too when `company_name` is given
    and it has no credit file yet. From `effective_from` (None: now; in the past: a correction
    of the months since, which the next rollup judges again)."""
    company_name = (company_name or "").strip() or None

    async def write(session: AsyncSession, data: registration.ProjectInput) -> tuple[int, int]:
        when = _effective(acting, effective_from)
        project = await registration.register_project(
            session, data, acting.actor, company_name, effective_from=when
        )
        return project.id, await project_company_id(session, project.id)

    return await _perform(acting, Action.REGISTER_PROJECT, registration.ProjectInput, data, write)


async def record_permit(
    acting: Acting,
    data: registration.PermitInput | Mapping[str, Any],
    effective_from: datetime | None = None,
) -> Done:
    """A permit of a project; it supersedes the current one of its kind from `effective_from`
    (None: now; in the past: a correction)."""

    async def write(session: AsyncSession, data: registration.PermitInput) -> tuple[int, int]:
        when = _effective(acting, effective_from)
        permit = await registration.record_permit(session, data, acting.actor, effective_from=when)
        return permit.id, await project_company_id(session, permit.project_id)

    return await _perform(acting, Action.RECORD_PERMIT, registration.PermitInput, data, write)


async def set_project_zones(
    acting: Acting,
    data: registration.ZonesInput | Mapping[str, Any],
    effective_from: datetime | None = None,
) -> Done:
    """A project's zone flags (二(三)1 zone bans); a None flag stays as it is. From
    `effective_from` (None: now; in the past: a correction)."""

    async def write(session: AsyncSession, data: registration.ZonesInput) -> tuple[int, int]:
        when = _effective(acting, effective_from)
        project = await registration.set_project_zones(
            session, data, acting.actor, effective_from=when
        )
        return project.id, await project_company_id(session, project.id)

    return await _perform(acting, Action.SET_PROJECT_ZONES, registration.ZonesInput, data, write)
