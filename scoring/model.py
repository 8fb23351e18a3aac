"""Plain values in and out of scoring: the company's inputs, findings and the scoring result.

Inputs are built by the rollup and the registry (SQL); every field is something a query can
compute. Months are `date`s on the first day of a local (Asia/Shanghai) calendar month; volumes
are m³; completeness values are fractions in [0, 1].

The enums here are the scoring vocabulary, defined once for the whole program: the registry
stores them (registry/vocabulary.py adds its own) and the API publishes them.
"""

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class InputError(ValueError):
    """Inputs that cannot be right (negative volume, unknown project, duplicate month…)."""


class ProjectType(StrEnum):
    CLOSED_LOOP = "CLOSED_LOOP"
    SHALLOW_WATER_SOURCE = "SHALLOW_WATER_SOURCE"
    MEDIUM_DEEP = "MEDIUM_DEEP"
    DIRECT_USE = "DIRECT_USE"


class WellRole(StrEnum):
    EXTRACTION = "EXTRACTION"
    REINJECTION = "REINJECTION"
    MONITORING = "MONITORING"


class Severity(StrEnum):
    WARNING = "WARNING"
    MINOR = "MINOR"
    MAJOR = "MAJOR"
    CRITICAL = "CRITICAL"


class Source(StrEnum):
    METRICS = "METRICS"
    REVIEWER = "REVIEWER"
    REGISTRY = "REGISTRY"


class Grade(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class DecisionKind(StrEnum):
    """In order of restrictiveness."""

    ALLOW = "ALLOW"
    RESTRICT = "RESTRICT"
    BLOCK = "BLOCK"


RESTRICTIVENESS = {kind: rank for rank, kind in enumerate(DecisionKind)}
"""ALLOW 0 < RESTRICT 1 < BLOCK 2."""


class ApplicationKind(StrEnum):
    PROJECT_FILING = "PROJECT_FILING"
    WATER_PERMIT = "WATER_PERMIT"
    MINING_RIGHT = "MINING_RIGHT"
    ENVIRONMENTAL_ASSESSMENT = "ENVIRONMENTAL_ASSESSMENT"
    NEW_WELL = "NEW_WELL"


class Verdict(StrEnum):
    PASS = "PASS"
    CONDITIONAL = "CONDITIONAL"
    FAIL = "FAIL"


class AppealOutcome(StrEnum):
    PENDING = "PENDING"
    UPHELD = "UPHELD"
    OVERTURNED = "OVERTURNED"


class FindingStatus(StrEnum):
    ACTIVE = "ACTIVE"
    UNDER_APPEAL = "UNDER_APPEAL"  # still counts
    VOIDED = "VOIDED"  # recomputed away by a scoring run
    OVERTURNED = "OVERTURNED"  # an appeal voided it
    REPAIRED = "REPAIRED"  # behind a listing ended by an approved credit repair


COUNTING = (FindingStatus.ACTIVE, FindingStatus.UNDER_APPEAL)
"""The statuses of a finding that still counts."""


class TransitionKind(StrEnum):
    OPEN = "OPEN"
    EXTEND = "EXTEND"  # a new CRITICAL during the listing moved its ends
    LIFT = "LIFT"  # approved credit repair after the minimum period
    EXPIRE = "EXPIRE"  # max_end reached
    WITHDRAW = "WITHDRAW"  # every finding behind it was voided or overturned


# ------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class WellFacts:
    code: str
    role: WellRole
    aquifer: str
    confined: bool | None = None  # takes confined water (承压水); None = unknown
    drilled_on: date | None = None


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Reinjected-water limits registered for one aquifer layer; None = no limit registered."""

    aquifer: str
    tds_max_mg_l: float | None = None
    ph_min: float | None = None
    ph_max: float | None = None


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    """Registry facts of one project, current at scoring time. None = the registry does not know:
    rules that need the fact are then not evaluated (CompanyResult.not_evaluated says so).
    A month is judged with the facts in force during it (ProjectMonth.facts) where known."""

    code: str
    name: str
    type: ProjectType
    city: str
    registered_on: date
    in_spring_protection_zone: bool | None = None  # 泉域重点保护区
    in_drinking_water_source: bool | None = None  # 集中式地下水饮用水水源地
    in_groundwater_restricted_zone: bool | None = None  # 超采区 / 限制开采区 / 禁止开采区
    permit_annual_m3: float | None = None  # water permit: approved annual total
    permit_daily_m3: float | None = None  # water permit: max daily intensity
    wells: Sequence[WellFacts] = ()
    quality_limits: Sequence[QualityLimits] = ()


@dataclass(frozen=True, slots=True)
class LayerMonth:
    """One aquifer layer of a project in one month, over the month's evaluated part."""

    aquifer: str
    extraction_m3: float = 0.0
    reinjection_m3: float = 0.0
    reinjection_tds_mean: float | None = None  # mg/L, mean of the reinjection wells' readings
    reinjection_ph_mean: float | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.extraction_m3 < math.inf and 0 <= self.reinjection_m3 < math.inf):
            raise InputError(f"layer {self.aquifer}: volumes must be finite and ≥ 0")


@dataclass(frozen=True, slots=True)
class MonthFacts:
    """The registry facts one project-month is judged with: those in force on its last evaluated
    day (the rollup cuts the month where they change, for what it computes)."""

    type: ProjectType
    permit_annual_m3: float | None = None
    permit_daily_m3: float | None = None
    quality_limits: Sequence[QualityLimits] = ()


@dataclass(frozen=True, slots=True)
class ProjectMonth:
    """One project in one local calendar month: one row per project and month from applies_from to
    the watermark's month (closed loops too: MONTHLY_REPORT needs `operating`).

    `evaluated`, `final` and the slot counts follow `scoring.calendar.month_scope`. Volume sums and
    completeness cover the evaluated part only. Completeness = received / expected well-slots of
    that stream's wells, outage slots excluded; None when no slot was expected (all outage, or no
    such well)."""

    project_code: str
    month: date
    operating: bool
    evaluated: bool
    final: bool
    layers: Sequence[LayerMonth] = ()
    expected_slots: int = 0  # non-outage slots in the evaluated part
    outage_slots: int = 0
    extraction_completeness: float | None = None
    reinjection_completeness: float | None = None
    level_completeness: float | None = None
    temperature_completeness: float | None = None
    quality_completeness: float | None = None
    max_daily_extraction_m3: float | None = None
    days_over_daily_limit: int = 0  # local days whose extraction > permit_daily_m3
    ytd_extraction_m3: float | None = None  # 1 Jan (or applies_from) → end of the evaluated part
    facts: MonthFacts | None = None  # None: the project's current facts
    # Flagged operating on an evaluated day, but without an operating well or any extraction:
    # not operating, and its metering rules not evaluated (NO_OPERATING_WELLS).
    no_operating_wells: bool = False

    def __post_init__(self) -> None:
        problem = None
        if self.month.day != 1:
            problem = "month must be the first day of a month"
        elif len(self.layers) > 1 and len({x.aquifer for x in self.layers}) != len(self.layers):
            problem = "duplicate aquifer layer"
        elif self.days_over_daily_limit < 0 or self.expected_slots < 0 or self.outage_slots < 0:
            problem = "counts must be ≥ 0"
        elif self.days_over_daily_limit and self.max_daily_extraction_m3 is None:
            problem = "days over the daily limit need max_daily_extraction_m3"
        for c in (
            self.extraction_completeness,
            self.reinjection_completeness,
            self.level_completeness,
            self.temperature_completeness,
            self.quality_completeness,
        ):
            if c is not None and not 0 <= c <= 1:
                problem = "completeness must be in [0, 1] or None"
        if problem:
            raise InputError(f"month {self.project_code} {self.month.isoformat()}: {problem}")


@dataclass(frozen=True, slots=True)
class SeasonLevel:
    """Mean depth to water (m below ground) of a project's wells over one heating season."""

    project_code: str
    season: int  # the year the season starts in: 2025 = 2025-26
    mean_depth_m: float


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    project_code: str
    month: date
    submitted_on: date  # when the company submitted it to the energy bureau's platform


@dataclass(frozen=True, slots=True)
class InspectionFinding:
    id: str
    inspection_id: str
    project_code: str | None
    inspected_on: date
    severity: Severity  # MINOR, MAJOR or CRITICAL
    description: str
    falsified_data: bool = False  # proves monitoring data falsified or meters tampered
    rectification_deadline: date | None = None
    rectified_on: date | None = None

    def __post_init__(self) -> None:
        if self.severity not in (Severity.MINOR, Severity.MAJOR, Severity.CRITICAL):
            raise InputError(
                f"inspection finding {self.id}: severity must be MINOR, MAJOR or CRITICAL"
            )


@dataclass(frozen=True, slots=True)
class PostEvaluation:
    id: str
    project_code: str
    evaluated_on: date
    verdict: Verdict
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Appeal:
    id: str
    finding_key: str
    outcome: AppealOutcome


@dataclass(frozen=True, slots=True)
class ListedFinding:
    """A finding behind a listing, as stored with it."""

    key: str
    rule_id: str
    source: Source
    window_start: date


@dataclass(frozen=True, slots=True)
class ListingRecord:
    id: str
    started_at: datetime
    min_end: datetime
    max_end: datetime
    critical: bool  # opened on a CRITICAL finding (else on a score below the D band)
    findings: Sequence[ListedFinding]
    ended_at: datetime | None = None  # None while active


@dataclass(frozen=True, slots=True)
class CreditRepair:
    """An approved credit repair (信用修复) of a listing."""

    id: str
    listing_id: str
    approved_at: datetime


@dataclass(frozen=True, slots=True)
class CompanyInputs:
    credit_code: str
    name: str
    projects: Sequence[ProjectFacts]
    months: Sequence[ProjectMonth] = ()
    watermark: datetime | None = None  # latest resultTime stored; None = nothing ingested yet
    season_levels: Sequence[SeasonLevel] = ()
    monthly_reports: Sequence[MonthlyReport] = ()
    inspection_findings: Sequence[InspectionFinding] = ()
    post_evaluations: Sequence[PostEvaluation] = ()
    appeals: Sequence[Appeal] = ()
    listings: Sequence[ListingRecord] = ()
    repairs: Sequence[CreditRepair] = ()
    # First month `months` covers. A metric finding behind a listing from before it cannot be
    # re-derived, so its absence does not withdraw the listing. None = the lookback window's start.
    metrics_from: date | None = None


# ----------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule violation. `key` is stable across scoring runs: the same key with the same
    `content()` is the same finding; a different content replaces it (void old, add new).
    `status` and `counts` are derived each run and are not content."""

    key: str
    rule_id: str
    policy_clause: str
    severity: Severity
    deduction: float
    project_code: str | None
    window_start: date
    window_end: date
    final: bool
    source: Source
    message: str
    evidence: dict[str, Any]
    status: FindingStatus = FindingStatus.ACTIVE
    counts: bool = True  # deducted from the score: ACTIVE or UNDER_APPEAL, inside the window

    def content(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rule_id": self.rule_id,
            "policy_clause": self.policy_clause,
            "severity": self.severity.value,
            "deduction": self.deduction,
            "project_code": self.project_code,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "final": self.final,
            "source": self.source.value,
            "message": self.message,
            "evidence": self.evidence,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of content(): compare with the stored finding's."""
        text = json.dumps(self.content(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return self.content() | {"status": self.status.value, "counts": self.counts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Finding":
        return cls(
            key=data["key"],
            rule_id=data["rule_id"],
            policy_clause=data["policy_clause"],
            severity=Severity(data["severity"]),
            deduction=data["deduction"],
            project_code=data["project_code"],
            window_start=date.fromisoformat(data["window_start"]),
            window_end=date.fromisoformat(data["window_end"]),
            final=data["final"],
            source=Source(data["source"]),
            message=data["message"],
            evidence=data["evidence"],
            status=FindingStatus(data.get("status", FindingStatus.ACTIVE)),
            counts=data.get("counts", True),
        )


class NotEvaluatedWhy(StrEnum):
    """Why a rule was not evaluated."""

    REGISTRY_FACT_MISSING = "REGISTRY_FACT_MISSING"  # zone flag, permit, quality limits…
    NO_OPERATING_WELLS = "NO_OPERATING_WELLS"  # flagged operating, but no well is
    ALL_OUTAGE = "ALL_OUTAGE"  # the platform was silent for the whole evaluated part
    NO_PREVIOUS_SEASON = "NO_PREVIOUS_SEASON"  # WATER_LEVEL has nothing to compare with


@dataclass(frozen=True, slots=True)
class NotEvaluated:
    """A rule that could not be evaluated for a project: `why`, `reason` for people, and the
    period concerned (a month's first and last day, a season's; None: a registry fact that
    holds whatever the period)."""

    project_code: str
    rule_id: str
    reason: str
    why: NotEvaluatedWhy = NotEvaluatedWhy.REGISTRY_FACT_MISSING
    window: tuple[date, date] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "project_code": self.project_code,
            "rule_id": self.rule_id,
            "why": self.why.value,
            "reason": self.reason,
            "window_start": None if self.window is None else self.window[0].isoformat(),
            "window_end": None if self.window is None else self.window[1].isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NotEvaluated":
        start, end = data.get("window_start"), data.get("window_end")
        return cls(
            project_code=data["project_code"],
            rule_id=data["rule_id"],
            reason=data["reason"],
            why=NotEvaluatedWhy(data["why"]),
            window=None if start is None else (date.fromisoformat(start), date.fromisoformat(end)),
        )


@dataclass(frozen=True, slots=True)
class ListingTransition:
    kind: TransitionKind
    at: datetime
    listing_id: str | None  # None for OPEN: the registry assigns the id
    critical: bool
    started_at: datetime
    min_end: datetime
    max_end: datetime
    findings: tuple[ListedFinding, ...]  # OPEN: behind it; EXTEND: added; others: as stored
    repair_id: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ListingState:
    """The company's active listing after this run's transitions."""

    listing_id: str | None  # None when opened by this run
    critical: bool
    started_at: datetime
    min_end: datetime
    max_end: datetime
    finding_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompanyResult:
    credit_code: str
    name: str
    rulebook_version: str
    computed_at: datetime
    window_start: date  # the lookback used: first day of the oldest month counted
    window_end: date  # local date of `computed_at`
    watermark: datetime | None
    findings: list[Finding]  # every finding derived, sorted by key; see Finding.counts
    deductions: dict[str, float]  # per rule id, after the per-rule cap
    score: float
    confirmed_score: float  # without provisional findings: only this can put the score in D
    grade: Grade
    critical_keys: tuple[str, ...]  # CRITICAL findings that force D (final, reviewer or registry)
    key_supervision: bool  # grade C or D or listed: reviewers plan inspections from these
    listing_transitions: list[ListingTransition]
    listing: ListingState | None
    not_evaluated: list[NotEvaluated] = field(default_factory=list)

    @property
    def window(self) -> tuple[date, date]:
        """The lookback used: findings whose window ends on or after the start count."""
        return self.window_start, self.window_end
