"""The system of record: every table of the credit registry.

Credit-file tables are append-only (the database rejects UPDATE, DELETE and TRUNCATE on them, and
every insert is chained into `audit_log`): a change is a new row — a new version, or an event that
references the row it voids, overturns or ends — and current status is derived from the rows.
Operational tables (datastream, watermarks, rollups, job runs, API clients) are marked mutable.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import AutoString, Field, SQLModel

from registry.vocabulary import (
    Accumulation,
    AppealDecisionOutcome,
    DeliveryStatus,
    FindingEventKind,
    InspectionSeverity,
    JobStatus,
    ListingEndKind,
    PermitKind,
    RepairDecisionOutcome,
    Role,
)
from scoring.model import (
    ApplicationKind,
    DecisionKind,
    Grade,
    ProjectType,
    Severity,
    Source,
    Verdict,
    WellRole,
)


class EnumText(sa.types.TypeDecorator):
    """A column of one enum's values, stored as text: written by value (a member or its string),
    read back as the member. The database's CHECK constraint keeps other values out."""

    impl = AutoString
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


def _enum(enum: type[StrEnum], **kw: Any) -> Any:
    return Field(sa_type=EnumText(enum), **kw)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=sa.DateTime(timezone=True), **kw)


def _created() -> Any:
    return Field(
        sa_type=sa.DateTime(timezone=True),
        sa_column_kwargs={"server_default": sa.func.now()},
        default=None,
        nullable=False,
    )


def _json(**kw: Any) -> Any:
    return Field(sa_type=JSONB, **kw)


def _fk(target: str, **kw: Any) -> Any:
    return Field(foreign_key=target, index=True, **kw)


# ---------------------------------------------------------------- registry: companies, projects, wells


class Company(SQLModel, table=True):
    """Identity of a credit subject; its attributes live in company_version."""

    id: int | None = Field(default=None, primary_key=True)
    credit_code: str = Field(max_length=18, unique=True)
    created_at: datetime = _created()


class CompanyVersion(SQLModel, table=True):
    __tablename__ = "company_version"
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    name: str
    source: str  # "platform" or the reviewer/admin who recorded it
    recorded_at: datetime = _created()


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True)
    created_at: datetime = _created()


def _effective() -> Any:
    return _ts(default=None)


class ProjectVersion(SQLModel, table=True):
    """A full snapshot of a project's attributes; the latest row per project is current.

    Zone flags are None when the registry does not know them: rules that need them are then not
    evaluated for the project (docs/rulebook.md, Scope).

    Versions take effect (registry/facts.py): a project's first version describes it as it has
    always been; a later one from `effective_from` (an admin record's, which may lie in the past),
    or, when None, from when it was recorded (a platform sync).
    """

    __tablename__ = "project_version"
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = _fk("project.id")
    company_id: int = _fk("company.id")
    name: str
    type: ProjectType = _enum(ProjectType)
    city: str
    county: str | None = None
    operating: bool = True
    in_spring_protection_zone: bool | None = None  # 泉域重点保护区
    in_drinking_water_source: bool | None = None  # 集中式地下水饮用水水源地
    in_groundwater_restricted_zone: bool | None = None  # 超采区 / 限制开采区 / 禁止开采区
    source: str
    recorded_at: datetime = _created()
    effective_from: datetime | None = _effective()


class Well(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True)
    created_at: datetime = _created()


class WellVersion(SQLModel, table=True):
    __tablename__ = "well_version"
    id: int | None = Field(default=None, primary_key=True)
    well_id: int = _fk("well.id")
    project_id: int = _fk("project.id")
    role: WellRole = _enum(WellRole)
    aquifer: str
    confined: bool | None = None  # takes confined water (承压水)
    drilled_on: date | None = None
    operating: bool = True
    source: str
    recorded_at: datetime = _created()
    effective_from: datetime | None = _effective()  # as ProjectVersion's


class Permit(SQLModel, table=True):
    """An approval of a project; a later permit of the same kind supersedes an earlier one from
    its `effective_from` (as a project version's: the first permit of a kind from the beginning,
    None = from when it was recorded). `valid_from`/`valid_to` are the permit document's own."""

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = _fk("project.id")
    kind: PermitKind = _enum(PermitKind)
    number: str
    annual_total_m3: float | None = Field(default=None, ge=0)
    daily_intensity_m3: float | None = Field(default=None, ge=0)
    valid_from: date
    valid_to: date | None = None
    supersedes_id: int | None = Field(default=None, foreign_key="permit.id")
    recorded_by: str
    recorded_at: datetime = _created()
    effective_from: datetime | None = _effective()


class AquiferLimit(SQLModel, table=True):
    """Quality limits registered for an aquifer layer; the latest row per aquifer counts."""

    __tablename__ = "aquifer_limit"
    id: int | None = Field(default=None, primary_key=True)
    aquifer: str = Field(index=True)
    tds_max_mg_l: float | None = None
    ph_min: float | None = None
    ph_max: float | None = None
    recorded_by: str
    recorded_at: datetime = _created()


# ---------------------------------------------------------------- monitoring data


class Datastream(SQLModel, table=True):
    """One indicator of one well on the platform (mutable: follows the platform's metadata)."""

    id: int | None = Field(default=None, primary_key=True)
    platform_id: str = Field(unique=True)
    well_id: int = _fk("well.id")
    indicator: str  # an Indicator, or a name the platform sent that we do not know
    unit: str
    accumulation: Accumulation = _enum(Accumulation, default=Accumulation.INTERVAL)
    name: str = ""
    updated_at: datetime = _created()


class Observation(SQLModel, table=True):
    """A meter value in canonical units (m³, m, °C, mg/L, pH), partitioned by month.

    A correction of the same (datastream, phenomenon time) is a new revision; the highest counts.
    For cumulative meters `value` is the reading; interval volumes are derived in the rollup.
    """

    __table_args__ = {"postgresql_partition_by": "RANGE (phenomenon_time)"}
    well_id: int = Field(primary_key=True)
    datastream_id: int = Field(primary_key=True)
    phenomenon_time: datetime = Field(sa_type=sa.DateTime(timezone=True), primary_key=True)
    revision: int = Field(default=0, primary_key=True, sa_type=sa.SmallInteger)
    value: float
    result_time: datetime = _ts()
    platform_obs_id: int = Field(sa_type=sa.BigInteger)


class Quarantine(SQLModel, table=True):
    """A monitoring row rejected at ingest, kept with its reason; or a stored cumulative meter
    reading the rollup found to be a glitch (reason `meter_glitch`: no volume). A glitch record
    that no longer holds (a correction or a later reading changed the classification) is
    withdrawn by a new row that references it (`withdraws_id`); it then no longer counts."""

    __table_args__ = (
        sa.Index(
            "ix_quarantine_meter_glitch",
            "datastream_platform_id",
            "phenomenon_time",
            postgresql_where=sa.text("reason = 'meter_glitch'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    reason: str = Field(index=True)
    detail: str
    datastream_platform_id: str | None = Field(default=None, index=True)
    platform_obs_id: int | None = Field(default=None, sa_type=sa.BigInteger, index=True)
    phenomenon_time: datetime | None = _ts(default=None)
    result_time: datetime | None = _ts(default=None)
    raw: dict = _json()
    received_at: datetime = _created()
    withdraws_id: int | None = Field(
        default=None, foreign_key="quarantine.id", unique=True, sa_type=sa.BigInteger
    )


class IngestWatermark(SQLModel, table=True):
    """How far the observation feed has been read: the (resultTime, @iot.id) of the last stored row."""

    __tablename__ = "ingest_watermark"
    source: str = Field(primary_key=True)
    result_time: datetime = _ts()
    platform_obs_id: int = Field(sa_type=sa.BigInteger)
    updated_at: datetime = _created()


class DirtyDay(SQLModel, table=True):
    """A (datastream, local day) whose observations changed since its last rollup."""

    __tablename__ = "dirty_day"
    datastream_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True)


class DailyRollup(SQLModel, table=True):
    """Per datastream and local day; recomputed whenever the day's observations change."""

    __tablename__ = "daily_rollup"
    datastream_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True)
    n: int  # slots received (volumes: with a counted volume)
    total: float | None = None  # Σ interval volume (volumes), derived from readings when cumulative
    minimum: float | None = None  # per observation; cumulative meters: per slot
    maximum: float | None = None
    mean: float | None = None
    # Cumulative meters (scoring/meters.py); interval streams keep the defaults.
    # m³ of `total` spread from a silent gap reaching beyond the day: an estimate, so the day is
    # not judged for the daily intensity cap
    estimated_m3: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    # the meter's settled reading at the day's end: the next day is classified from it
    meter_at: datetime | None = _ts(default=None)
    meter_reading: float | None = None
    # what the day's result assumed about the readings after that settled one (their kinds and
    # the interval reaching into the day from after it): when the readings say otherwise, the
    # day is recomputed (jobs/meter_days.py)
    meter_tail: str | None = None
    computed_at: datetime = _created()


# ---------------------------------------------------------------- reviewers' records


class MonthlyReport(SQLModel, table=True):
    """A monthly operating report (每月运行状况) recorded by a reviewer or imported."""

    __tablename__ = "monthly_report"
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = _fk("project.id")
    month: date  # first day of the month
    submitted_on: date
    recorded_by: str
    recorded_at: datetime = _created()


class Inspection(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    project_id: int | None = Field(default=None, foreign_key="project.id")
    inspected_on: date
    inspector: str
    summary: str = ""
    recorded_by: str
    recorded_at: datetime = _created()


class InspectionFinding(SQLModel, table=True):
    __tablename__ = "inspection_finding"
    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = _fk("inspection.id")
    severity: InspectionSeverity = _enum(InspectionSeverity)
    description: str
    falsified_data: bool = False  # proves monitoring data falsified or meters tampered
    rectification_deadline: date | None = None
    evidence: list = _json(default_factory=list)
    recorded_at: datetime = _created()


class Rectification(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    inspection_finding_id: int = _fk("inspection_finding.id")
    rectified_on: date
    note: str = ""
    recorded_by: str
    recorded_at: datetime = _created()


class PostEvaluation(SQLModel, table=True):
    __tablename__ = "post_evaluation"
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    project_id: int = _fk("project.id")
    evaluated_on: date
    verdict: Verdict = _enum(Verdict)
    reviewer: str
    summary: str = ""
    findings: list = _json(default_factory=list)
    recorded_by: str
    recorded_at: datetime = _created()


# ---------------------------------------------------------------- credit file: findings, scores, listings


class CreditFinding(SQLModel, table=True):
    """A finding of the rulebook. Stopped counting only by a finding_event that references it."""

    __tablename__ = "credit_finding"
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    project_id: int | None = Field(default=None, foreign_key="project.id")
    key: str = Field(index=True)  # stable identity across scoring runs, e.g. REINJ_RATIO:P1:2026-01
    rule_id: str
    policy_clause: str
    severity: Severity = _enum(Severity)
    deduction: float
    window_start: date
    window_end: date
    final: bool
    source: Source = _enum(Source)
    message: str
    evidence: dict = _json()
    rulebook_version: str
    job_run_id: int | None = Field(default=None, foreign_key="job_run.id")
    recorded_at: datetime = _created()


class FindingEvent(SQLModel, table=True):
    """Ends a finding's effect: VOIDED (recomputed away), OVERTURNED (appeal), REPAIRED (credit repair)."""

    __tablename__ = "finding_event"
    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = _fk("credit_finding.id")
    kind: FindingEventKind = _enum(FindingEventKind)
    reason: str
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id")
    repair_id: int | None = Field(default=None, foreign_key="credit_repair.id")
    recorded_by: str
    recorded_at: datetime = _created()


class ScoreSnapshot(SQLModel, table=True):
    """A company's score as computed at `computed_at`; enough to recompute and explain it."""

    __tablename__ = "score_snapshot"
    # The latest snapshot per company is read on every eligibility request.
    __table_args__ = (sa.Index("ix_score_snapshot_latest", "company_id", "computed_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    computed_at: datetime = _ts()
    score: float
    grade: Grade = _enum(Grade)
    rulebook_version: str
    window_start: date
    window_end: date
    data_watermark: datetime | None = _ts(default=None)
    inputs_digest: str
    finding_ids: list = _json(default_factory=list)
    job_run_id: int | None = Field(default=None, foreign_key="job_run.id")
    recorded_at: datetime = _created()


class NotEvaluatedRecord(SQLModel, table=True):
    """What the rulebook could not evaluate for a company, and why, as of `computed_at`: every
    (project, rule, cause, period) in `items`, summed up per rule and cause in `summary` (the
    evidence of a decision's NOT_EVALUATED reason). A new row when either changes."""

    __tablename__ = "not_evaluated"
    __table_args__ = (sa.Index("ix_not_evaluated_latest", "company_id", "computed_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id")
    computed_at: datetime = _ts()
    rulebook_version: str
    # [{project_code, rule_id, why, reason, window_start, window_end}]
    items: list = _json(default_factory=list)
    summary: dict = _json(default_factory=dict)  # {"rules": [{ruleId, why, projects, months}]}
    digest: str  # of what the row depends on: the next scoring compares it
    job_run_id: int | None = Field(default=None, foreign_key="job_run.id")
    recorded_at: datetime = _created()


class Listing(SQLModel, table=True):
    """A 失信 listing; it is over once a listing_end references it (or after max_end)."""

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    started_at: datetime = _ts()
    min_end: datetime = _ts()
    max_end: datetime = _ts()
    critical: bool
    reason: str
    finding_ids: list = _json(default_factory=list)
    recorded_by: str
    recorded_at: datetime = _created()


class ListingEnd(SQLModel, table=True):
    __tablename__ = "listing_end"
    id: int | None = Field(default=None, primary_key=True)
    listing_id: int = Field(foreign_key="listing.id", unique=True)
    ended_at: datetime = _ts()
    how: ListingEndKind = _enum(ListingEndKind)
    reason: str
    repair_id: int | None = Field(default=None, foreign_key="credit_repair.id")
    recorded_by: str
    recorded_at: datetime = _created()


class Appeal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    finding_id: int = _fk("credit_finding.id")
    filed_on: date
    grounds: str
    recorded_by: str
    recorded_at: datetime = _created()


class AppealDecision(SQLModel, table=True):
    __tablename__ = "appeal_decision"
    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", unique=True)
    outcome: AppealDecisionOutcome = _enum(AppealDecisionOutcome)
    reason: str
    decided_by: str
    recorded_at: datetime = _created()


class CreditRepair(SQLModel, table=True):
    __tablename__ = "credit_repair"
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = _fk("company.id")
    listing_id: int = _fk("listing.id")
    statement: str
    recorded_by: str
    recorded_at: datetime = _created()


class RepairDecision(SQLModel, table=True):
    __tablename__ = "repair_decision"
    id: int | None = Field(default=None, primary_key=True)
    repair_id: int = Field(foreign_key="credit_repair.id", unique=True)
    outcome: RepairDecisionOutcome = _enum(RepairDecisionOutcome)
    reason: str
    decided_by: str
    recorded_at: datetime = _created()


# ---------------------------------------------------------------- approval systems


class ApiClient(SQLModel, table=True):
    """A bearer token's holder; only the token's SHA-256 is stored."""

    __tablename__ = "api_client"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: Role = _enum(Role)
    token_hash: str = Field(unique=True)
    created_at: datetime = _created()
    revoked_at: datetime | None = _ts(default=None)
    expires_at: datetime | None = _ts(default=None)  # None: never


class ConsoleSession(SQLModel, table=True):
    """A login to the reviewer console. The browser's cookie holds the session id; only its
    SHA-256 is stored, with the form token every POST must carry. Not part of the credit file:
    logging out deletes the row."""

    __tablename__ = "console_session"
    id_hash: str = Field(primary_key=True)
    client_id: int = _fk("api_client.id")
    csrf_token: str
    created_at: datetime = _created()
    expires_at: datetime = _ts(index=True)


class Application(SQLModel, table=True):
    """An application screened by an approval system; idempotent per (client, case reference)."""

    __table_args__ = (sa.UniqueConstraint("client_id", "case_reference"),)
    id: int | None = Field(default=None, primary_key=True)
    client_id: int = _fk("api_client.id")
    case_reference: str
    credit_code: str = Field(index=True)
    kind: ApplicationKind = _enum(ApplicationKind)
    project_name: str | None = None
    city: str | None = None
    received_at: datetime = _created()


class Decision(SQLModel, table=True):
    """The binding decision for an application and the snapshot it rested on."""

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    company_id: int | None = Field(default=None, foreign_key="company.id", index=True)
    snapshot_id: int | None = Field(default=None, foreign_key="score_snapshot.id")
    listing_id: int | None = Field(default=None, foreign_key="listing.id")
    decision: DecisionKind = _enum(DecisionKind)
    grade: Grade | None = _enum(Grade, default=None)
    score: float | None = None
    reasons: list = _json(default_factory=list)
    conditions: list = _json(default_factory=list)
    restricted_until: datetime | None = _ts(default=None)
    as_of: datetime = _ts()
    rulebook_version: str
    decided_at: datetime = _created()


class DecisionChange(SQLModel, table=True):
    """A change of a company's standing for approval systems (decision over every application
    kind, grade, restrictedUntil), recorded in the transaction that made it. `id` is gap-free:
    it is assigned under the audit chain's lock, which every credit-file writer holds."""

    __tablename__ = "decision_change"
    id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    company_id: int = _fk("company.id")
    previous_id: int | None = Field(
        default=None, foreign_key="decision_change.id", sa_type=sa.BigInteger
    )
    changed_at: datetime = _ts()
    decision: DecisionKind = _enum(DecisionKind)
    grade: Grade | None = _enum(Grade, default=None)
    score: float | None = None
    restricted_until: datetime | None = _ts(default=None)
    rulebook_version: str
    recorded_by: str
    recorded_at: datetime = _created()


class WebhookReceiver(SQLModel, table=True):
    """A URL that gets every decision change after `after_change_id` (mutable: removable)."""

    __tablename__ = "webhook_receiver"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    url: str
    secret: str  # whsec_ + base64 key: the receiver verifies signatures with it
    after_change_id: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = _created()
    removed_at: datetime | None = _ts(default=None)


class WebhookDelivery(SQLModel, table=True):
    """The outbox: one row per receiver and change, written with the change."""

    __tablename__ = "webhook_delivery"
    receiver_id: int = Field(primary_key=True, foreign_key="webhook_receiver.id")
    change_id: int = Field(
        primary_key=True, foreign_key="decision_change.id", sa_type=sa.BigInteger
    )
    status: DeliveryStatus = _enum(DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts: int = 0
    first_attempt_at: datetime | None = _ts(default=None)
    last_attempt_at: datetime | None = _ts(default=None)
    next_attempt_at: datetime | None = _ts(default=None)
    last_error: str | None = None
    delivered_at: datetime | None = _ts(default=None)


# ---------------------------------------------------------------- operations and audit


class JobRun(SQLModel, table=True):
    """One run of a scheduled job; unique per (job, window) so a window is done once."""

    __tablename__ = "job_run"
    __table_args__ = (sa.UniqueConstraint("job", "window_key"),)
    id: int | None = Field(default=None, primary_key=True)
    job: str
    window_key: str
    status: JobStatus = _enum(JobStatus)
    started_at: datetime = _created()
    finished_at: datetime | None = _ts(default=None)
    counts: dict = _json(default_factory=dict)
    error: str | None = None


class AuditLog(SQLModel, table=True):
    """Chained record of every insert into a credit-file table (written by a database trigger)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    at: datetime = _ts()
    actor: str
    table_name: str
    row_id: int = Field(sa_type=sa.BigInteger)
    row_digest: str
    prev_hash: str
    hash: str


APPEND_ONLY_TABLES = (
    "company",
    "company_version",
    "project",
    "project_version",
    "well",
    "well_version",
    "permit",
    "aquifer_limit",
    "monthly_report",
    "inspection",
    "inspection_finding",
    "rectification",
    "post_evaluation",
    "credit_finding",
    "finding_event",
    "score_snapshot",
    "not_evaluated",
    "listing",
    "listing_end",
    "appeal",
    "appeal_decision",
    "credit_repair",
    "repair_decision",
    "application",
    "decision",
    "decision_change",
)
"""Credit-file tables: append-only and audited. observation, quarantine and audit_log are
append-only too but not audited row by row (volume; the chain itself)."""


# ---------------------------------------------------------------- derived metrics (rollup, scoring run)
# Owned by jobs/rollup.py and registry/rescoring.py. Everything here is recomputable from the
# observations and the registry (`geocredit rollup --all`, `geocredit score --all`): mutable,
# neither append-only nor audited. A slot mask is a bit string with one bit per 15-minute slot of
# a local day, leftmost bit = the slot starting at local midnight.

_SLOTS = sa.dialects.postgresql.BIT(varying=True)


class DailyCoverage(SQLModel, table=True):
    """Which slots of a local day a datastream sent data for; kept beside its daily_rollup row."""

    __tablename__ = "daily_coverage"
    datastream_id: int = Field(primary_key=True)
    day: date = Field(primary_key=True, index=True)  # outage slots are judged day by day
    slots: str = Field(sa_type=_SLOTS)
    completeness: float | None = None  # received / non-outage slots of the day; None: all outage
    computed_at: datetime = _created()


class OutageDay(SQLModel, table=True):
    """Outage slots of a local day (docs/rulebook.md, Outage): a set bit is a slot in which at least
    `outage_share` of the operating water-taking projects sent no volume data."""

    __tablename__ = "outage_day"
    day: date = Field(primary_key=True)
    projects: int  # operating water-taking projects the day was judged against
    slots: str = Field(sa_type=_SLOTS)
    outage_slots: int
    computed_at: datetime = _created()


class ProjectMonthMetric(SQLModel, table=True):
    """One project in one local month: the numbers of scoring.model.ProjectMonth, over the month's
    evaluated part (scoring.periods.month_scope), from applies_from to the watermark's month."""

    __tablename__ = "project_month_metric"
    project_id: int = Field(primary_key=True)
    month: date = Field(primary_key=True)  # first day of the local month
    operating: bool
    evaluated: bool
    final: bool
    scope_start: datetime = _ts()
    scope_end: datetime = _ts()
    expected_slots: int = 0  # non-outage slots in the evaluated part
    outage_slots: int = 0  # outage slots in the evaluated part
    extraction_completeness: float | None = None
    reinjection_completeness: float | None = None
    level_completeness: float | None = None
    temperature_completeness: float | None = None
    quality_completeness: float | None = None
    # [{aquifer, extraction_m3, reinjection_m3, reinjection_tds_mean, reinjection_ph_mean}]
    layers: list = _json(default_factory=list)
    max_daily_extraction_m3: float | None = None
    days_over_daily_limit: int = 0
    extraction_m3: float = 0.0  # every day of the month, for the year-to-date sum
    ytd_extraction_m3: float | None = None
    season: int | None = None  # heating season (start year) of the month's heating days
    season_level_sum: float = 0.0  # Σ depth to water over the month's heating days …
    season_level_n: int = 0  # … and how many readings
    # The registry facts the month is judged with: those in force on its last evaluated day
    # (else its last day). None on rows older than these columns: the current facts then.
    project_type: ProjectType | None = _enum(ProjectType, default=None)
    permit_annual_m3: float | None = None
    permit_daily_m3: float | None = None
    # Flagged operating on an evaluated day, but without an operating well or any extraction.
    no_operating_wells: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    watermark: datetime | None = _ts(default=None)
    computed_at: datetime = _created()


class DirtyMonth(SQLModel, table=True):
    """A project month whose days changed since it was last recomputed (project 0: every project
    of the month, after its outage slots changed)."""

    __tablename__ = "dirty_month"
    month: date = Field(primary_key=True)
    project_id: int = Field(primary_key=True)


class RollupState(SQLModel, table=True):
    """Where the last rollup left off (one row): the watermark its month metrics used and the
    newest registry rows it had seen, so a change of either recomputes what it affects."""

    __tablename__ = "rollup_state"
    id: int = Field(default=1, primary_key=True)
    watermark: datetime | None = _ts(default=None)
    project_version_id: int = 0
    well_version_id: int = 0
    permit_id: int = 0
    datastream_changed_at: datetime | None = _ts(default=None)
    updated_at: datetime = _created()


class ScoreDirty(SQLModel, table=True):
    """A company whose scoring inputs changed since it was last scored: marked by database
    triggers on the registry's and reviewers' records and by the rollup (month metrics), taken
    by the scoring run."""

    __tablename__ = "score_dirty"
    company_id: int = Field(primary_key=True)


class ScoreRunState(SQLModel, table=True):
    """What the last full scoring run judged with (one row): a new rulebook version, local day
    or watermark day makes the next run score every company, not only the marked ones."""

    __tablename__ = "score_run_state"
    id: int = Field(default=1, primary_key=True)
    rulebook_version: str
    day: date
    watermark_day: date | None = None
    updated_at: datetime = _created()


# ---------------------------------------------------------------- the vocabulary's CHECK constraints


def enum_columns() -> list[sa.Column]:
    """Every column typed with an enum (EnumText), table by table."""
    return [
        column
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EnumText)
    ]


def _check_values(column: sa.Column) -> None:
    """The constraint the migrations create on an enum column, named <table>_<column>."""
    values = ", ".join(f"'{member.value}'" for member in column.type.enum)
    column.table.append_constraint(
        sa.CheckConstraint(
            f"{column.name} IN ({values})", name=f"{column.table.name}_{column.name}"
        )
    )


for _column in enum_columns():
    _check_values(_column)
