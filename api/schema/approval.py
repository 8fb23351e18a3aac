"""The approval systems' contract (docs/api.md): eligibility, eligibilities and
screenApplication. Decisions come from the stored standing through `scoring.decision.decide`;
nothing here scores or decides."""

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

import pydantic
import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.context import standings_as_of
from api.errors import (
    CASE_REFERENCE_CONFLICT,
    INVALID_AS_OF,
    INVALID_CREDIT_CODE,
    INVALID_INPUT,
    ApiError,
)
from api.schema.base import Info, caller, root_field, root_mutation
from api.schema.enums import ApplicationKindEnum, DecisionEnum, GradeEnum
from api.schema.node import database_ids
from registry import db, screening
from registry.creditcode import InvalidCreditCode, normalize_credit_code
from registry.roles import Action, may
from registry.standing import FiledStanding, companies_by_id
from scoring.decision import Decision, decide
from scoring.model import ApplicationKind

MAX_BATCH = 1000
"""Most credit codes one request may ask for (api.schema.extensions.RequestLimits counts them)."""
DECIDED_AT_ONCE = 200
"""A batch's decisions are made this many at a time, so that other requests are not held up."""


@strawberry.type(description="A company with a credit file (企业回灌信用档案).")
class Company(relay.Node):
    id: relay.NodeID[int]
    credit_code: str
    name: str

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list["Company | None"]:
        ids = database_ids(node_ids)
        found = await info.context.services.read(lambda conn: companies_by_id(conn, ids))
        return [
            cls(id=i, credit_code=found[i].credit_code, name=found[i].name) if i in found else None
            for i in ids
        ]


@strawberry.type(description="Why a decision is what it is.")
class Reason:
    code: str = strawberry.field(
        description=(
            "NO_CREDIT_FILE, NOT_YET_SCORED, STALE_SCORE, LISTED, GRADE, NOT_EVALUATED (rules "
            'not evaluated in the window; evidence {"rules": [{ruleId, why, projects, '
            "months}]}), or the finding's rule id."
        )
    )
    message: str = strawberry.field(
        description="For an approval officer: names the project, month and numbers."
    )
    rule_id: str | None
    policy_clause: str | None = strawberry.field(description='e.g. "二(三)1"')
    evidence: JSON | None = strawberry.field(description="Window, metric values, inspection id…")


@strawberry.type(description="May this company get this kind of permit, and why.")
class Eligibility:
    credit_code: str
    company: Company | None = strawberry.field(
        description="Null when the registry has no file for this code."
    )
    decision: DecisionEnum
    grade: GradeEnum | None = strawberry.field(description="Null when never scored.")
    score: float | None
    reasons: list[Reason]
    conditions: list[str] = strawberry.field(description="What RESTRICT requires.")
    restricted_until: datetime | None
    as_of: datetime = strawberry.field(description="The score snapshot the decision rests on.")
    rulebook_version: str


@strawberry.input
class EligibilityRequest:
    credit_code: str
    kind: ApplicationKindEnum


@strawberry.input
class ScreenApplicationInput:
    credit_code: str
    kind: ApplicationKindEnum
    case_reference: str = strawberry.field(
        description="The approval system's own case id; screening is idempotent per (client, caseReference)."
    )
    project_name: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET


@strawberry.type(description="An expected failure of a mutation.")
class UserError:
    field: list[str] | None
    message: str
    code: str


@strawberry.type(description="A binding decision recorded by screenApplication.")
class ScreeningDecision(relay.Node):
    id: relay.NodeID[int]
    case_reference: str
    kind: ApplicationKindEnum
    decided_at: datetime
    eligibility: Eligibility

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list["ScreeningDecision | None"]:
        """An approval system sees the decisions it asked for; reviewers and admins see all."""
        ids = database_ids(node_ids)
        client = caller(info)
        async with info.context.services.sessions() as session:
            found = await screening.screening_by_decision_ids(session, ids)
        visible = [
            s
            for client_id, s in found.values()
            if client_id == client.id or may(client.role, Action.READ_CREDIT_FILES)
        ]
        nodes = await asyncio.gather(*(_screening_decision(info, s) for s in visible))
        by_id = {n.id: n for n in nodes}
        return [by_id.get(i) for i in ids]


@strawberry.type
class ScreenApplicationPayload:
    decision_id: strawberry.ID | None
    eligibility: Eligibility | None
    user_errors: list[UserError]


def _code(raw: str) -> str:
    try:
        return normalize_credit_code(raw)
    except InvalidCreditCode as e:
        raise ApiError(str(e), INVALID_CREDIT_CODE, creditCode=raw, problem=e.problem) from None


def _eligibility(code: str, filed: FiledStanding | None, d: Decision) -> Eligibility:
    company = None
    if filed is not None:
        company = Company(id=filed.company_id, credit_code=filed.credit_code, name=filed.name)
    return Eligibility(
        credit_code=code,
        company=company,
        decision=d.decision,
        grade=d.grade,
        score=d.score,
        reasons=d.reasons,  # scoring's Reason has the same fields as the GraphQL type
        conditions=d.conditions,
        restricted_until=d.restricted_until,
        as_of=d.as_of,
        rulebook_version=d.rulebook_version,
    )


def _count(info: Info, decisions: Sequence[tuple[Decision, ApplicationKind]], source: str) -> None:
    counted = Counter((d.decision.value, kind.value) for d, kind in decisions)
    metrics = info.context.services.metrics
    for (decision, kind), n in counted.items():
        metrics.labelled(metrics.decisions, decision, kind, source).inc(n)


async def _screening_decision(info: Info, s: screening.Screening) -> "ScreeningDecision":
    filed = None
    if s.company_id is not None:
        filed = await info.context.standings.load(s.credit_code)
    return ScreeningDecision(
        id=s.decision_id,
        case_reference=s.case_reference,
        kind=s.kind,
        decided_at=s.decided_at,
        eligibility=_eligibility(s.credit_code, filed, s.decision),
    )


AS_OF = (
    "Answer as at this past instant (ISO 8601 with offset): what was answered then, from what "
    "was recorded by then. Records nothing. Omitted: now."
)


def _standings(info: Info, as_of: datetime | None) -> tuple[Any, datetime]:
    """The loader of the standings to decide on, and the instant to decide at."""
    ctx = info.context
    if as_of is None:
        return ctx.standings, ctx.now
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ApiError("asOf needs a UTC offset, e.g. 2026-12-01T08:00:00+08:00", INVALID_AS_OF)
    if as_of > ctx.now:
        raise ApiError(
            f"asOf {as_of.isoformat()} is in the future: answers are as of now or a past instant",
            INVALID_AS_OF,
        )
    return standings_as_of(ctx, as_of), as_of


@strawberry.type
class Query:
    @root_field(
        Action.READ_DECISIONS,
        description="Advisory: may this company get this kind of permit now? Records nothing.",
    )
    async def eligibility(
        self,
        info: Info,
        credit_code: str,
        kind: ApplicationKindEnum,
        as_of: Annotated[datetime | None, strawberry.argument(description=AS_OF)] = None,
    ) -> Eligibility:
        code = _code(credit_code)
        loader, now = _standings(info, as_of)
        filed = await loader.load(code)  # with this request's other fields (aliases)
        decision = decide(
            filed.standing if filed else None, kind, info.context.services.rulebook, now
        )
        _count(info, [(decision, kind)], "eligibility")
        return _eligibility(code, filed, decision)

    @root_field(
        Action.READ_DECISIONS,
        description=(
            f"`eligibility` for many codes at once, in request order: at most {MAX_BATCH} per "
            "request, every `eligibilities` field and alias counted."
        ),
    )
    async def eligibilities(
        self,
        info: Info,
        requests: list[EligibilityRequest],
        as_of: Annotated[datetime | None, strawberry.argument(description=AS_OF)] = None,
    ) -> list[Eligibility]:
        codes, invalid = [], []
        for i, r in enumerate(requests):
            try:
                codes.append(normalize_credit_code(r.credit_code))
            except InvalidCreditCode as e:
                invalid.append({"index": i, "creditCode": r.credit_code, "problem": e.problem})
        if invalid:
            raise ApiError(
                f"{len(invalid)} invalid credit code(s), first at index {invalid[0]['index']}: "
                f"{invalid[0]['problem']}",
                INVALID_CREDIT_CODE,
                invalid=invalid,
            )
        loader, now = _standings(info, as_of)
        filed = await loader.load_many(codes)
        rulebook = info.context.services.rulebook
        decided: list[tuple[Decision, ApplicationKind]] = []
        answers: list[Eligibility] = []
        for i, (code, f, r) in enumerate(zip(codes, filed, requests, strict=True)):
            if i and i % DECIDED_AT_ONCE == 0:
                await asyncio.sleep(0)  # other requests in flight run in between
            d = decide(f.standing if f else None, r.kind, rulebook, now)
            decided.append((d, r.kind))
            answers.append(_eligibility(code, f, d))
        _count(info, decided, "eligibility")
        return answers


@strawberry.type
class Mutation:
    @root_mutation(
        Action.SCREEN_APPLICATION,
        description=(
            "Binding: records the application and its decision, and returns a decisionId to "
            "file with the case. The same caseReference returns the same decision."
        ),
    )
    async def screen_application(
        self, info: Info, input: ScreenApplicationInput
    ) -> ScreenApplicationPayload:
        code = _code(input.credit_code)
        client = caller(info)
        try:
            data = screening.ScreeningInput(
                credit_code=code,
                kind=input.kind,
                case_reference=input.case_reference,
                project_name=input.project_name or None,
                city=input.city or None,
            )
        except pydantic.ValidationError as e:
            return ScreenApplicationPayload(
                decision_id=None, eligibility=None, user_errors=_user_errors(e)
            )
        ctx = info.context
        try:
            async with db.transaction(ctx.services.sessions, f"api:{client.name}") as session:
                s = await screening.screen_application(
                    session, client.id, data, ctx.services.rulebook, ctx.now
                )
        except screening.CaseReferenceConflict as e:
            return ScreenApplicationPayload(
                decision_id=None,
                eligibility=None,
                user_errors=[
                    UserError(
                        field=["input", "caseReference"],
                        message=str(e),
                        code=CASE_REFERENCE_CONFLICT,
                    )
                ],
            )
        if not s.replayed:
            _count(info, [(s.decision, s.kind)], "screening")
        node = await _screening_decision(info, s)
        return ScreenApplicationPayload(
            decision_id=strawberry.ID(relay.to_base64(ScreeningDecision, s.decision_id)),
            eligibility=node.eligibility,
            user_errors=[],
        )


_CAMEL = {"case_reference": "caseReference", "project_name": "projectName"}


def _user_errors(e: pydantic.ValidationError) -> list[UserError]:
    return [
        UserError(
            field=["input", *(_CAMEL.get(str(p), str(p)) for p in err["loc"])],
            message=err["msg"],
            code=INVALID_INPUT,
        )
        for err in e.errors()
    ]
