"""The credit file as reviewers see it (docs/domain.md, glossary): a company's projects, wells,
permits, standing, findings, score history, inspections, post-evaluations, monthly reports,
listings, appeals, repairs, screened applications, month metrics and quarantined rows.

Approval systems never reach these types: `company`/`companies`/`supervisionList` are for
reviewers and admins, and `node` answers null for them on every type here. Every relation goes
through a per-request DataLoader (api/loaders_reviewer.py); every list that grows is a Relay
connection, newest first unless said otherwise."""

import dataclasses
from datetime import date, datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from api.errors import INVALID_PAGE, ApiError
from api.loaders_reviewer import loaders
from api.schema.approval import Company, Reason, ScreeningDecision
from api.schema.base import Info, caller
from api.schema.changes import DecisionChange
from api.schema.enums import (
    AppealOutcomeEnum,
    ApplicationKindEnum,
    DecisionEnum,
    FindingSourceEnum,
    FindingStatusEnum,
    GradeEnum,
    NotEvaluatedWhyEnum,
    PermitKindEnum,
    ProjectTypeEnum,
    RepairOutcomeEnum,
    SeverityEnum,
    VerdictEnum,
    WellRoleEnum,
)
from api.schema.node import database_ids
from registry import creditfile
from registry.creditfile import Row, View
from registry.roles import Action, may
from scoring import periods

DEFAULT_PAGE = 20
MAX_PAGE = 100


# ---------------------------------------------------------------- helpers


def build(cls: Any, row: Row, **extra: Any) -> Any:
    """An instance of a strawberry type from a view row: its fields by name."""
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in extra]
    return cls(**{n: row[n] for n in names if n in row}, **extra)


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_PAGE:
        raise ApiError(f"first must be between 1 and {MAX_PAGE}", INVALID_PAGE, first=first)
    return first


def encode_cursor(value: Any) -> str:
    return relay.to_base64("cursor", value.isoformat() if isinstance(value, date) else value)


def decode_cursor(after: str | None, parse: Any) -> Any:
    if after is None:
        return None
    try:
        prefix, value = relay.from_base64(after)
        if prefix != "cursor":
            raise ValueError(prefix)
        return parse(value)
    except ValueError:
        raise ApiError(f"not a cursor of this list: {after!r}", INVALID_PAGE) from None


def connection(
    edges: list[tuple[Any, Any]], has_next: bool, after: str | None
) -> relay.Connection[Any]:
    """A Relay connection of (node, cursor value) pairs."""
    cursors = [encode_cursor(value) for _, value in edges]
    return relay.Connection(
        edges=[
            relay.Edge(node=node, cursor=c) for (node, _), c in zip(edges, cursors, strict=True)
        ],
        page_info=relay.PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
    )


async def related(
    info: Info,
    cls: Any,
    column: str,
    parent: int,
    first: int,
    after: str | None,
    filters: tuple = (),
) -> relay.Connection[Any]:
    """A page of `cls` records whose `column` is `parent`, batched with its siblings."""
    view = VIEWS[cls]
    size = page_size(first)
    key = (parent, size, decode_cursor(after, view.parse), filters)
    page = await loaders(info.context).page(view, column).load(key)
    return connection([(cls.from_row(r), r[view.cursor]) for r in page.rows], page.has_next, after)


async def by_id(info: Info, cls: Any, row_id: int | None) -> Any:
    if row_id is None:
        return None
    row = await loaders(info.context).row(VIEWS[cls]).load(row_id)
    return cls.from_row(row) if row else None


async def by_ids(info: Info, cls: Any, ids: list[int]) -> list[Any]:
    rows = await loaders(info.context).row(VIEWS[cls]).load_many(ids)
    return [cls.from_row(r) for r in rows if r]


async def children(info: Info, cls: Any, column: str, parent: int) -> list[Any]:
    rows = await loaders(info.context).children(VIEWS[cls], column).load(parent)
    return [cls.from_row(r) for r in rows]


class FileNode(relay.Node):
    """A record of a credit file: re-fetchable by `node(id)`, by reviewers and admins only."""

    @classmethod
    def from_row(cls, row: Row) -> Any:
        return build(cls, row)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Any, required: bool = False) -> list[Any]:
        ids = database_ids(node_ids)
        if not may(caller(info).role, Action.READ_CREDIT_FILES):
            return [None] * len(ids)
        rows = await loaders(info.context).row(VIEWS[cls]).load_many(ids)
        return [cls.from_row(r) if r else None for r in rows]


# ---------------------------------------------------------------- the file


@strawberry.type(description="A company's reinjection credit file (企业回灌信用档案).")
class CreditFile(FileNode):
    id: relay.NodeID[int]
    credit_code: str
    name: str
    created_at: datetime

    @strawberry.field(description="The company as approval systems see it.")
    def company(self) -> Company:
        return Company(id=self.id, credit_code=self.credit_code, name=self.name)

    @strawberry.field(description="What the latest score snapshot and active listing say.")
    async def standing(self, info: Info) -> "Standing":
        filed = await info.context.standings.load(self.credit_code)
        return Standing.of(filed)

    @strawberry.field(description="Its projects, by code.")
    async def projects(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["Project"]:
        return await related(info, Project, "company_id", self.id, first, after)

    @strawberry.field(description="Findings of the rulebook, whatever their status unless asked.")
    async def findings(
        self,
        info: Info,
        status: list[FindingStatusEnum] | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> relay.Connection["Finding"]:
        filters = (("status", tuple(s.value for s in status)),) if status else ()
        return await related(info, Finding, "company_id", self.id, first, after, filters)

    @strawberry.field(
        description="Changes of its decision, grade or restrictedUntil, newest first (the "
        "change feed approval systems follow, for this company)."
    )
    async def decision_history(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection[DecisionChange]:
        return await related(info, DecisionChange, "company_id", self.id, first, after)

    @strawberry.field(description="Score snapshots, newest first.")
    async def score_history(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["ScoreSnapshot"]:
        return await related(info, ScoreSnapshot, "company_id", self.id, first, after)

    @strawberry.field
    async def inspections(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["Inspection"]:
        return await related(info, Inspection, "company_id", self.id, first, after)

    @strawberry.field
    async def post_evaluations(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["PostEvaluation"]:
        return await related(info, PostEvaluation, "company_id", self.id, first, after)

    @strawberry.field(description="Monthly operating reports of its projects.")
    async def monthly_reports(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["MonthlyReport"]:
        return await related(info, MonthlyReport, "company_id", self.id, first, after)

    @strawberry.field(description="失信 listings, active or ended.")
    async def listings(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["Listing"]:
        return await related(info, Listing, "company_id", self.id, first, after)

    @strawberry.field
    async def appeals(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["Appeal"]:
        return await related(info, Appeal, "company_id", self.id, first, after)

    @strawberry.field(description="Credit repair requests.")
    async def repairs(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["CreditRepair"]:
        return await related(info, CreditRepair, "company_id", self.id, first, after)

    @strawberry.field(description="Applications approval systems screened, with their decisions.")
    async def applications(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["ScreenedApplication"]:
        return await related(info, ScreenedApplication, "company_id", self.id, first, after)

    @strawberry.field(
        description=(
            "What the latest scoring could not evaluate, and why: per project, rule and period "
            "(a month, a heating season; none for a registry fact)."
        )
    )
    async def not_evaluated(self, info: Info) -> list["NotEvaluatedRule"]:
        return await children(info, NotEvaluatedRule, "company_id", self.id)

    @strawberry.field(description="Monitoring rows of its wells rejected at ingest, with reasons.")
    async def quarantined_rows(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["QuarantinedRow"]:
        return await related(info, QuarantinedRow, "company_id", self.id, first, after)


@strawberry.type(description="A company's standing now.")
class Standing:
    scored_at: datetime | None = strawberry.field(description="Null when never scored.")
    grade: GradeEnum | None
    score: float | None
    rulebook_version: str | None
    listed: bool = strawberry.field(description="An active 失信 listing: BLOCK for every kind.")
    key_supervision: bool = strawberry.field(
        description="Graded C or D, or listed, or a project in a banned zone built before the "
        "ban (重点监督)."
    )
    reasons: list[Reason] = strawberry.field(
        description="The counting findings behind the score, most serious first."
    )
    listing_id: strawberry.Private[int | None]

    @classmethod
    def of(cls, filed: Any) -> "Standing":
        s = filed.standing
        grade = s.grade.value if s.grade else None
        return cls(
            scored_at=s.scored_at,
            grade=grade,
            score=s.score,
            rulebook_version=s.rulebook_version,
            listed=s.listing is not None,
            key_supervision=grade in ("C", "D")
            or s.listing is not None
            or any(r.code == "LEGACY_IN_BANNED_ZONE" for r in s.reasons),
            reasons=list(s.reasons),
            listing_id=filed.listing_id,
        )

    @strawberry.field(description="The active listing.")
    async def listing(self, info: Info) -> "Listing | None":
        return await by_id(info, Listing, self.listing_id)


@strawberry.type(description="A geothermal project of the company (latest registered version).")
class Project(FileNode):
    id: relay.NodeID[int]
    code: str
    name: str
    type: ProjectTypeEnum
    city: str
    county: str | None
    operating: bool
    in_spring_protection_zone: bool | None = strawberry.field(
        description="泉域重点保护区; null: not known, zone rules not evaluated."
    )
    in_drinking_water_source: bool | None = strawberry.field(
        description="集中式地下水饮用水水源地; null: not known."
    )
    in_groundwater_restricted_zone: bool | None = strawberry.field(
        description="超采区 / 限制开采区 / 禁止开采区; null: not known."
    )
    updated_at: datetime
    company_id: strawberry.Private[int]

    @strawberry.field
    async def credit_file(self, info: Info) -> CreditFile | None:
        return await by_id(info, CreditFile, self.company_id)

    @strawberry.field(description="Its wells, by code.")
    async def wells(self, info: Info) -> list["Well"]:
        return await children(info, Well, "project_id", self.id)

    @strawberry.field(description="Its approvals, newest first; a superseded one says so.")
    async def permits(self, info: Info) -> list["Permit"]:
        return await children(info, Permit, "project_id", self.id)

    @strawberry.field(description="Month by month, newest first: volumes, ratio, completeness.")
    async def monthly_metrics(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection["ProjectMonthMetric"]:
        return await related(info, ProjectMonthMetric, "project_id", self.id, first, after)


@strawberry.type
class Well(FileNode):
    id: relay.NodeID[int]
    code: str
    role: WellRoleEnum
    aquifer: str = strawberry.field(description="热储层")
    confined: bool | None = strawberry.field(description="Takes confined water (承压水).")
    drilled_on: date | None
    operating: bool
    updated_at: datetime
    project_id: strawberry.Private[int]

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await by_id(info, Project, self.project_id)


@strawberry.type(description="An approval of a project: filing, water permit, EIA, mining right.")
class Permit(FileNode):
    id: relay.NodeID[int]
    kind: PermitKindEnum
    number: str
    annual_total_m3: float | None
    daily_intensity_m3: float | None
    valid_from: date
    valid_to: date | None
    superseded: bool = strawberry.field(description="A later permit of the same kind replaced it.")
    recorded_by: str
    recorded_at: datetime
    effective_from: datetime | None = strawberry.field(
        description="When it took effect in the registry, if not when recorded (the first "
        "permit of a kind is in force from the beginning)."
    )
    project_id: strawberry.Private[int]

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await by_id(info, Project, self.project_id)


@strawberry.type(description="A finding of the rulebook against the company.")
class Finding(FileNode):
    id: relay.NodeID[int]
    key: str = strawberry.field(description="Stable across scoring runs, e.g. rule:project:month.")
    rule_id: str
    policy_clause: str = strawberry.field(description='e.g. "二(三)1"')
    severity: SeverityEnum
    deduction: float
    project_code: str | None
    window_start: date
    window_end: date
    final: bool = strawberry.field(description="False: a provisional month's finding.")
    source: FindingSourceEnum
    message: str
    evidence: JSON
    rulebook_version: str
    recorded_at: datetime
    status: FindingStatusEnum = strawberry.field(
        description="ACTIVE and UNDER_APPEAL count; the others stopped counting by a later record."
    )
    status_reason: str | None = strawberry.field(description="Why it stopped counting.")
    status_changed_at: datetime | None
    company_id: strawberry.Private[int]
    project_id: strawberry.Private[int | None]

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await by_id(info, Project, self.project_id)

    @strawberry.field
    async def appeals(self, info: Info) -> list["Appeal"]:
        return await children(info, Appeal, "finding_id", self.id)


@strawberry.type(description="A score as computed at one time, with the findings it counted.")
class ScoreSnapshot(FileNode):
    id: relay.NodeID[int]
    computed_at: datetime
    score: float
    grade: GradeEnum
    rulebook_version: str
    window_start: date
    window_end: date
    data_watermark: datetime | None = strawberry.field(
        description="The monitoring data it rests on: the latest resultTime ingested."
    )
    finding_ids: strawberry.Private[list]

    @strawberry.field(description="The findings this score counted.")
    async def findings(self, info: Info) -> list[Finding]:
        return await by_ids(info, Finding, [int(i) for i in self.finding_ids])


@strawberry.type(description="A task-force inspection (监督检查).")
class Inspection(FileNode):
    id: relay.NodeID[int]
    inspected_on: date
    inspector: str
    summary: str
    project_code: str | None
    recorded_by: str
    recorded_at: datetime
    company_id: strawberry.Private[int]
    project_id: strawberry.Private[int | None]

    @strawberry.field
    async def findings(self, info: Info) -> list["InspectionFinding"]:
        return await children(info, InspectionFinding, "inspection_id", self.id)

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await by_id(info, Project, self.project_id)

    @strawberry.field
    async def credit_file(self, info: Info) -> CreditFile | None:
        return await by_id(info, CreditFile, self.company_id)


@strawberry.type
class Rectification:
    rectified_on: date
    note: str
    recorded_by: str
    recorded_at: datetime


@strawberry.type(description="One finding of an inspection, and its rectification.")
class InspectionFinding(FileNode):
    id: relay.NodeID[int]
    severity: SeverityEnum
    description: str
    falsified_data: bool = strawberry.field(
        description="Proves monitoring data falsified or meters tampered."
    )
    rectification_deadline: date | None
    evidence: list[str] = strawberry.field(description="References to the evidence.")
    recorded_at: datetime
    rectification: Rectification | None
    inspection_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row) -> "InspectionFinding":
        done = None
        if row["rectified_on"] is not None:
            done = Rectification(
                rectified_on=row["rectified_on"],
                note=row["rectification_note"],
                recorded_by=row["rectification_recorded_by"],
                recorded_at=row["rectification_recorded_at"],
            )
        return build(cls, row, rectification=done)

    @strawberry.field(description="Past its deadline (local date) and not rectified.")
    def overdue(self, info: Info) -> bool:
        if self.rectification is not None or self.rectification_deadline is None:
            return False
        rulebook = info.context.services.rulebook
        return self.rectification_deadline < periods.local_date(info.context.now, rulebook)

    @strawberry.field
    async def inspection(self, info: Info) -> Inspection | None:
        return await by_id(info, Inspection, self.inspection_id)


@strawberry.type(description="A post-evaluation (后评估) of an operating project.")
class PostEvaluation(FileNode):
    id: relay.NodeID[int]
    project_code: str
    evaluated_on: date
    verdict: VerdictEnum
    reviewer: str
    summary: str
    findings: list[str]
    recorded_by: str
    recorded_at: datetime
    project_id: strawberry.Private[int]

    @strawberry.field
    async def project(self, info: Info) -> Project | None:
        return await by_id(info, Project, self.project_id)


@strawberry.type(description="A monthly operating report (每月运行状况) as recorded.")
class MonthlyReport(FileNode):
    id: relay.NodeID[int]
    project_code: str
    month: date = strawberry.field(description="The first day of the month reported on.")
    submitted_on: date
    recorded_by: str
    recorded_at: datetime


@strawberry.type
class ListingEnd:
    ended_at: datetime
    how: str = strawberry.field(description="REPAIRED, EXPIRED, WITHDRAWN, LIFTED or EXTENDED.")
    reason: str
    recorded_by: str


@strawberry.type(description="A 失信 listing: BLOCK while active.")
class Listing(FileNode):
    id: relay.NodeID[int]
    started_at: datetime
    min_end: datetime = strawberry.field(description="Credit repair possible from then on.")
    max_end: datetime = strawberry.field(description="Ends by itself then.")
    critical: bool = strawberry.field(description="Opened on a CRITICAL finding, not a score.")
    reason: str
    recorded_by: str
    recorded_at: datetime
    end: ListingEnd | None
    finding_ids: strawberry.Private[list]

    @classmethod
    def from_row(cls, row: Row) -> "Listing":
        end = None
        if row["ended_at"] is not None:
            end = ListingEnd(
                ended_at=row["ended_at"],
                how=row["end_how"],
                reason=row["end_reason"],
                recorded_by=row["end_recorded_by"],
            )
        return build(cls, row, end=end)

    @strawberry.field(description="Not ended and not past its maximum end.")
    def active(self, info: Info) -> bool:
        now = info.context.now
        return self.end is None and self.started_at <= now < self.max_end

    @strawberry.field(description="The findings behind it.")
    async def findings(self, info: Info) -> list[Finding]:
        return await by_ids(info, Finding, [int(i) for i in self.finding_ids])

    @strawberry.field
    async def repairs(self, info: Info) -> list["CreditRepair"]:
        return await children(info, CreditRepair, "listing_id", self.id)


@strawberry.type
class AppealDecision:
    reason: str
    decided_by: str
    decided_at: datetime


@strawberry.type(description="An appeal (异议) against a finding.")
class Appeal(FileNode):
    id: relay.NodeID[int]
    filed_on: date
    grounds: str
    recorded_by: str
    recorded_at: datetime
    outcome: AppealOutcomeEnum
    decision: AppealDecision | None
    finding_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row) -> "Appeal":
        return build(cls, row, decision=_decision(AppealDecision, row))

    @strawberry.field
    async def finding(self, info: Info) -> Finding | None:
        return await by_id(info, Finding, self.finding_id)


@strawberry.type
class RepairDecision:
    reason: str
    decided_by: str
    decided_at: datetime


@strawberry.type(description="A credit repair (信用修复) request to end a listing.")
class CreditRepair(FileNode):
    id: relay.NodeID[int]
    statement: str
    recorded_by: str
    recorded_at: datetime
    outcome: RepairOutcomeEnum
    decision: RepairDecision | None
    listing_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Row) -> "CreditRepair":
        return build(cls, row, decision=_decision(RepairDecision, row))

    @strawberry.field
    async def listing(self, info: Info) -> Listing | None:
        return await by_id(info, Listing, self.listing_id)


def _decision(cls: Any, row: Row) -> Any:
    if row["decided_at"] is None:
        return None
    return cls(
        reason=row["decision_reason"], decided_by=row["decided_by"], decided_at=row["decided_at"]
    )


@strawberry.type(description="An application an approval system screened, and its decision.")
class ScreenedApplication:
    case_reference: str
    kind: ApplicationKindEnum
    project_name: str | None
    city: str | None
    client_name: str = strawberry.field(description="The approval system that asked.")
    received_at: datetime
    decision: DecisionEnum
    grade: GradeEnum | None
    score: float | None
    reasons: list[Reason]
    conditions: list[str]
    restricted_until: datetime | None
    as_of: datetime
    rulebook_version: str
    decided_at: datetime
    decision_id: strawberry.ID = strawberry.field(description="The ScreeningDecision's node id.")

    @classmethod
    def from_row(cls, row: Row) -> "ScreenedApplication":
        reasons = [
            Reason(
                code=r["code"],
                message=r["message"],
                rule_id=r.get("ruleId"),
                policy_clause=r.get("policyClause"),
                evidence=r.get("evidence"),
            )
            for r in row["reasons"]
        ]
        decision_id = strawberry.ID(relay.to_base64(ScreeningDecision, row["decision_id"]))
        return build(cls, row, reasons=reasons, decision_id=decision_id)


@strawberry.type(description="The volumes of one aquifer layer in a month's evaluated part.")
class LayerVolume:
    aquifer: str
    extraction_m3: float
    reinjection_m3: float
    reinjection_tds_mean: float | None
    reinjection_ph_mean: float | None


@strawberry.type(description="One project in one local month, as the rollup computed it.")
class ProjectMonthMetric:
    month: date
    operating: bool
    evaluated: bool = strawberry.field(description="Rules apply to this month.")
    final: bool = strawberry.field(description="The data is 3 days past the month's end.")
    expected_slots: int = strawberry.field(description="Non-outage 15-minute slots evaluated.")
    outage_slots: int
    extraction_completeness: float | None
    reinjection_completeness: float | None
    level_completeness: float | None
    temperature_completeness: float | None
    quality_completeness: float | None
    reinjection_ratio: float | None = strawberry.field(
        description="Same-layer: Σ min(reinjection, extraction) per layer / Σ extraction."
    )
    layers: list[LayerVolume]
    extraction_m3: float = strawberry.field(description="Every day of the month.")
    ytd_extraction_m3: float | None
    max_daily_extraction_m3: float | None
    days_over_daily_limit: int
    computed_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> "ProjectMonthMetric":
        layers = [
            LayerVolume(
                aquifer=layer["aquifer"],
                extraction_m3=layer.get("extraction_m3") or 0.0,
                reinjection_m3=layer.get("reinjection_m3") or 0.0,
                reinjection_tds_mean=layer.get("reinjection_tds_mean"),
                reinjection_ph_mean=layer.get("reinjection_ph_mean"),
            )
            for layer in row["layers"]
        ]
        ratio = creditfile.same_layer_ratio(row["layers"])
        return build(cls, row, layers=layers, reinjection_ratio=ratio)


@strawberry.type(description="A monitoring row rejected at ingest: kept, counted, never dropped.")
class QuarantinedRow:
    reason: str
    detail: str
    datastream_platform_id: str | None
    platform_observation_id: str | None
    well_code: str
    phenomenon_time: datetime | None
    result_time: datetime | None
    raw: JSON
    received_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> "QuarantinedRow":
        obs = row["platform_obs_id"]
        return build(cls, row, platform_observation_id=None if obs is None else str(obs))


@strawberry.type(description="A rule the rulebook could not evaluate for a project, and why.")
class NotEvaluatedRule:
    project_code: str
    rule_id: str
    why: NotEvaluatedWhyEnum
    reason: str
    window_start: date | None = strawberry.field(
        description="The period not evaluated (a month, a heating season); null: a registry "
        "fact, whatever the period."
    )
    window_end: date | None

    @classmethod
    def from_row(cls, row: Row) -> "NotEvaluatedRule":
        return build(cls, row, why=NotEvaluatedWhyEnum(row["why"]))


@strawberry.type(description="A company on the key-supervision list (重点监督).")
class SupervisionEntry:
    credit_file: CreditFile
    grade: GradeEnum | None
    score: float | None
    listed: bool
    last_inspected_on: date | None
    next_inspection_due: date = strawberry.field(
        description="A quarter after the last inspection; today when never inspected."
    )
    overdue: bool
    last_inspection_id: strawberry.Private[int | None]

    @strawberry.field(description="Why: the counting findings, most serious first.")
    async def reasons(self, info: Info) -> list[Reason]:
        filed = await info.context.standings.load(self.credit_file.credit_code)
        return list(filed.standing.reasons) if filed else []

    @strawberry.field
    async def last_inspection(self, info: Info) -> Inspection | None:
        return await by_id(info, Inspection, self.last_inspection_id)


VIEWS: dict[type, View] = {
    CreditFile: creditfile.COMPANY,
    Project: creditfile.PROJECT,
    Well: creditfile.WELL,
    Permit: creditfile.PERMIT,
    Finding: creditfile.FINDING,
    ScoreSnapshot: creditfile.SNAPSHOT,
    Inspection: creditfile.INSPECTION,
    InspectionFinding: creditfile.INSPECTION_FINDING,
    PostEvaluation: creditfile.POST_EVALUATION,
    MonthlyReport: creditfile.MONTHLY_REPORT,
    Listing: creditfile.LISTING,
    Appeal: creditfile.APPEAL,
    CreditRepair: creditfile.REPAIR,
    ScreenedApplication: creditfile.APPLICATION,
    ProjectMonthMetric: creditfile.MONTH_METRIC,
    NotEvaluatedRule: creditfile.NOT_EVALUATED,
    QuarantinedRow: creditfile.QUARANTINE,
    DecisionChange: creditfile.DECISION_CHANGE,
}

TYPES: list[type] = [cls for cls in VIEWS if issubclass(cls, FileNode)]
