"""The rulebook: versioned data files (`scoring/rulebooks/<version>.toml`), each loaded and
validated into a frozen pydantic model.

Every installed version stays loadable, so a decision keeps the version it was made under; the
version in force is the newest installed one. Every error names the offending key (e.g.
`rules.REINJ_RATIO.threshold.MEDIUM_DEEP`).
"""

import functools
import itertools
import re
import tomllib
from datetime import date, datetime, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from scoring.model import ApplicationKind, DecisionKind, Grade, ProjectType


class RulebookError(ValueError):
    """The rulebook file is unreadable or invalid; `key` names the first offending key."""

    def __init__(self, key: str, message: str, source: str = "rulebook") -> None:
        self.key = key
        super().__init__(f"{source}: {key}: {message}")


class _Bad(ValueError):
    """Raised inside validators to name a key below the validated model."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


_CLAUSE = re.compile(r"^[一二三四五六七八九十]+(\([一二三四五六七八九十]+\)\d*)?$")


def _clause(value: str) -> str:
    parts = value.split("、")
    if not all(_CLAUSE.match(p) for p in parts):
        raise ValueError(f"{value!r} is not a policy clause like 二(三)1 (several joined by 、)")
    return value


def _month_day(value: str) -> str:
    try:
        date.fromisoformat(f"2001-{value}")  # a non-leap year: 02-29 is rejected
    except ValueError:
        raise ValueError(f"{value!r} is not a month-day like 11-15") from None
    return value


Clause = Annotated[str, AfterValidator(_clause)]
MonthDay = Annotated[str, AfterValidator(_month_day)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Points = Annotated[float, Field(ge=0, le=100)]
Text = Annotated[str, Field(min_length=1)]
Types = frozenset[ProjectType]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Monitoring(_Model):
    slot_minutes: int = Field(gt=0, le=60)
    outage_share: Fraction
    finality_days: int = Field(ge=0, le=31)
    stale_after_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _divides_hour(self) -> "Monitoring":
        if 60 % self.slot_minutes:
            raise _Bad("slot_minutes", "must divide 60")
        return self


class Meters(_Model):
    """Cumulative meter readings (totalizers): when a difference is a volume (scoring/meters.py).

    Optional in the file: a rulebook without `[meters]` gets these defaults."""

    max_flow_m3_per_hour: float = Field(default=500.0, gt=0)  # plausible flow of one well
    # a suspicious reading is decided by the readings after it: the next `lookahead_readings`
    # or those within `lookahead_minutes`, whichever reach further
    lookahead_readings: int = Field(default=4, ge=1, le=96)
    lookahead_minutes: int = Field(default=60, ge=0, le=1440)


class SeasonDates(_Model):
    start: MonthDay
    end: MonthDay

    @model_validator(mode="after")
    def _wraps_new_year(self) -> "SeasonDates":
        if self.start <= self.end:
            raise _Bad(
                "end", f"a heating season runs across the new year: {self.end} ≤ {self.start}"
            )
        return self

    @cached_property
    def start_md(self) -> tuple[int, int]:
        return int(self.start[:2]), int(self.start[3:])

    @cached_property
    def end_md(self) -> tuple[int, int]:
        return int(self.end[:2]), int(self.end[3:])


class HeatingSeasons(_Model):
    default: SeasonDates
    cities: dict[Text, SeasonDates] = {}


class ProjectTypes(_Model):
    water_taking: Types


class ScoreParams(_Model):
    start: float = Field(gt=0, le=100)
    floor: float = Field(ge=0, le=100)
    lookback_months: int = Field(ge=1, le=120)
    rule_cap: float = Field(gt=0, le=100)
    critical_deduction: Points

    @model_validator(mode="after")
    def _floor_below_start(self) -> "ScoreParams":
        if self.floor >= self.start:
            raise _Bad("floor", f"must be below start ({self.start:g})")
        return self


class GradeBand(_Model):
    grade: Grade
    min: float = Field(ge=0, le=100)
    below: float | None = Field(default=None, gt=0, le=100)


class ListingParams(_Model):
    min_months_score: int = Field(ge=1, le=120)
    min_months_critical: int = Field(ge=1, le=120)
    max_months: int = Field(ge=1, le=120)  # automatic end without a new CRITICAL
    # Automatic end of a listing opened on a score below the D band; None: max_months.
    max_months_score: int | None = Field(default=None, ge=1, le=120)
    # When a period of N months ends: at the start of the local day N months after the listing
    # began (00:00), or at its end (24:00).
    period_end: Literal["start_of_day", "end_of_day"] = "start_of_day"

    @model_validator(mode="after")
    def _mins_within_max(self) -> "ListingParams":
        for name in ("min_months_score", "min_months_critical"):
            if getattr(self, name) > self.max_months:
                raise _Bad(name, f"exceeds max_months ({self.max_months})")
        if self.max_months_score is not None and not (
            self.min_months_score <= self.max_months_score <= self.max_months
        ):
            raise _Bad(
                "max_months_score",
                f"must lie between min_months_score ({self.min_months_score}) and max_months "
                f"({self.max_months})",
            )
        return self

    def max_months_for(self, critical: bool) -> int:
        """How long a listing runs at most without a new CRITICAL."""
        if critical or self.max_months_score is None:
            return self.max_months
        return self.max_months_score


# ------------------------------------------------------------------------------------ rules


class _Rule(_Model):
    title: Text
    clause: Clause


class ReinjRatioRule(_Rule):
    clause_by_type: dict[ProjectType, Clause] = {}
    threshold: dict[ProjectType, Fraction] = Field(min_length=1)
    minor_band: float = Field(gt=0, lt=1)
    minor: Points
    major: Points
    message: Text


class NoReinjectionRule(_Rule):
    below: Fraction
    message: Text


class MeteringGapRule(_Rule):
    minor_below: Fraction
    major_below: Fraction
    minor: Points
    major: Points
    message: Text

    @model_validator(mode="after")
    def _ordered(self) -> "MeteringGapRule":
        if self.major_below >= self.minor_below:
            raise _Bad("major_below", f"must be below minor_below ({self.minor_below})")
        return self


class NoMeteringRule(_Rule):
    message: Text


class ExtractionCapRule(_Rule):
    annual_major: Points
    daily_minor_per_day: Points
    daily_month_cap: Points
    message_annual: Text
    message_daily: Text


class QualityRule(_Rule):
    major: Points
    message: Text


class WaterLevelRule(_Rule):
    max_rise_m: float = Field(gt=0, le=100)
    message: Text


class MonthlyReportRule(_Rule):
    grace_days: int = Field(ge=0, le=60)
    minor: Points
    message: Text


class ZoneBanRule(_Rule):
    spring_zone_types: Types
    drinking_water_types: Types
    # The ban applies to projects built on or after this date; older projects in a banned zone
    # get LEGACY_IN_BANNED_ZONE instead. None: every project, whenever built.
    built_on_or_after: date | None = None
    message: Text


class LegacyInBannedZoneRule(_Rule):
    message: Text


class ConfinedWaterRule(_Rule):
    applies_to: Types
    message: Text


class NewWellInZoneRule(_Rule):
    applies_to: Types
    drilled_on_or_after: date
    message: Text


class InspectionRule(_Rule):
    minor: Points
    major: Points
    unrectified_factor: float = Field(ge=1, le=10)
    message: Text


class PostEvaluationRule(_Rule):
    conditional: Points
    fail: Points
    message: Text


class FalsifiedDataRule(_Rule):
    message: Text


class MonitoringGapRule(_Rule):
    below: Fraction
    message: Text


class Rules(_Model):
    """One field per rule id: an unknown id is an extra key, a missing one a missing field."""

    REINJ_RATIO: ReinjRatioRule
    NO_REINJECTION: NoReinjectionRule
    METERING_GAP: MeteringGapRule
    NO_METERING: NoMeteringRule
    EXTRACTION_CAP: ExtractionCapRule
    QUALITY: QualityRule
    WATER_LEVEL: WaterLevelRule
    MONTHLY_REPORT: MonthlyReportRule
    ZONE_BAN: ZoneBanRule
    CONFINED_WATER: ConfinedWaterRule
    NEW_WELL_IN_ZONE: NewWellInZoneRule
    INSPECTION: InspectionRule
    POST_EVALUATION: PostEvaluationRule
    FALSIFIED_DATA: FalsifiedDataRule
    MONITORING_GAP: MonitoringGapRule
    LEGACY_IN_BANNED_ZONE: LegacyInBannedZoneRule | None = None


RULE_IDS: tuple[str, ...] = tuple(Rules.model_fields)

_SUBJECT = "项目 P001（示例项目）"
_DAY = date(2026, 1, 31)
_AT = datetime(2026, 1, 31, 8, 0)
# The placeholders each message template may use, with sample values to check the format specs.
MESSAGE_FIELDS: dict[str, dict[str, Any]] = {
    "REINJ_RATIO.message": {
        "subject": _SUBJECT, "month": "2026-01", "ratio": 0.9, "threshold": 0.95,
        "reinjection_m3": 9000.0, "extraction_m3": 10000.0,
    },
    "NO_REINJECTION.message": {
        "subject": _SUBJECT, "month": "2026-01", "ratio": 0.3, "below": 0.5,
        "reinjection_m3": 3000.0, "extraction_m3": 10000.0,
    },
    "METERING_GAP.message": {
        "subject": _SUBJECT, "month": "2026-01", "stream": "回灌", "completeness": 0.9,
        "threshold": 0.95, "expected_slots": 2976,
    },
    "NO_METERING.message": {"subject": _SUBJECT, "month": "2026-01", "stream": "回灌"},
    "EXTRACTION_CAP.message_annual": {
        "subject": _SUBJECT, "month": "2026-01", "year": 2026, "ytd_m3": 1.2e5, "permit_m3": 1e5,
    },
    "EXTRACTION_CAP.message_daily": {
        "subject": _SUBJECT, "month": "2026-01", "days": 2, "permit_daily_m3": 500.0,
        "max_daily_m3": 620.0,
    },
    "QUALITY.message": {"subject": _SUBJECT, "month": "2026-01", "details": "TDS 3,100 mg/L"},
    "WATER_LEVEL.message": {
        "subject": _SUBJECT, "season": "2025-26", "depth_m": 52.3, "previous_depth_m": 49.8,
        "rise_m": 2.5, "max_rise_m": 2.0,
    },
    "MONTHLY_REPORT.message": {"subject": _SUBJECT, "month": "2026-01", "due": _DAY},
    "ZONE_BAN.message": {"subject": _SUBJECT, "zone": "泉域重点保护区", "type_label": "水源热泵"},
    "LEGACY_IN_BANNED_ZONE.message": {
        "subject": _SUBJECT, "zone": "泉域重点保护区", "type_label": "水源热泵",
        "built_on": "2019-05-01", "since": "2025-11-15",
    },
    "CONFINED_WATER.message": {"subject": _SUBJECT, "wells": "W1、W2"},
    "NEW_WELL_IN_ZONE.message": {"subject": _SUBJECT, "well": "W3", "drilled_on": "2026-01-05"},
    "INSPECTION.message": {
        "subject": _SUBJECT, "date": "2026-01-05", "inspection_id": "I-1",
        "severity_label": "较重", "description": "…", "rectification": "",
    },
    "POST_EVALUATION.message": {
        "subject": _SUBJECT, "date": "2026-01-05", "evaluation_id": "E-1",
        "verdict_label": "不合格", "summary": "…",
    },
    "FALSIFIED_DATA.message": {
        "subject": _SUBJECT, "date": "2026-01-05", "inspection_id": "I-1", "description": "…",
    },
    "MONITORING_GAP.message": {
        "subject": _SUBJECT, "month": "2026-01", "threshold": 0.95, "details": "水位 80.0%",
    },
    "reasons.GRADE": {"grade": "B", "score": 82.0, "version": "2026.1", "scored_at": _AT},
    "reasons.LISTED": {
        "basis": "严重违规", "started": _AT, "min_end": _AT, "max_end": _AT,
        "min_last_day": _DAY, "max_last_day": _DAY,
    },
    "reasons.NOT_EVALUATED": {"details": "EXTRACTION_CAP（登记信息缺失：1 个项目、3 个月）"},
    "reasons.STALE_SCORE": {"hours": 50.0, "limit": 48, "scored_at": _AT},
    "reasons.NO_CREDIT_FILE": {},
    "reasons.NOT_YET_SCORED": {},
}  # fmt: skip


class Condition(_Model):
    clause: Clause
    text: Text


class DecisionRow(_Model):
    A: DecisionKind
    B: DecisionKind
    C: DecisionKind
    D: DecisionKind
    conditions: tuple[str, ...] = ()

    def for_grade(self, grade: Grade) -> DecisionKind:
        return getattr(self, grade.value)


class ReasonTexts(_Model):
    NO_CREDIT_FILE: Text
    NOT_YET_SCORED: Text
    GRADE: Text
    LISTED: Text
    STALE_SCORE: Text
    NOT_EVALUATED: Text | None = None  # None: decisions carry no NOT_EVALUATED reason


class Supervision(_Model):
    clause: Clause
    inspection_every_months: int = Field(ge=1, le=12)


class Rulebook(_Model):
    version: str = Field(pattern=r"^\d{4}\.\d+$")
    applies_from: date
    timezone: str
    policy: Text
    monitoring: Monitoring
    meters: Meters = Meters()
    heating_season: HeatingSeasons
    project_types: ProjectTypes
    score: ScoreParams
    grades: tuple[GradeBand, ...]
    listing: ListingParams
    rules: Rules
    conditions: dict[Text, Condition]
    supervision: Supervision
    decisions: dict[ApplicationKind, DecisionRow]
    reasons: ReasonTexts

    @model_validator(mode="after")
    def _consistent(self) -> "Rulebook":
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _Bad("timezone", f"unknown time zone {self.timezone!r}") from None
        below = self.rules.NO_REINJECTION.below
        for kind, threshold in self.rules.REINJ_RATIO.threshold.items():
            if below > threshold:
                raise _Bad("rules.NO_REINJECTION.below", f"above the {kind} ratio threshold")
        legacy = self.rules.LEGACY_IN_BANNED_ZONE
        if (self.rules.ZONE_BAN.built_on_or_after is None) != (legacy is None):
            raise _Bad(
                "rules.LEGACY_IN_BANNED_ZONE",
                "needed exactly when rules.ZONE_BAN.built_on_or_after is set",
            )
        self._check_grades()
        self._check_decisions()
        self._check_messages()
        return self

    def _check_grades(self) -> None:
        seen: dict[Grade, int] = {}
        for i, band in enumerate(self.grades):
            if band.grade in seen:
                raise _Bad(f"grades[{i}]", f"grade {band.grade} appears twice")
            seen[band.grade] = i
            if band.below is not None and band.below <= band.min:
                raise _Bad(f"grades[{i}].below", f"must be above min ({band.min:g})")
        if missing := [g for g in Grade if g not in seen]:
            raise _Bad("grades", f"missing band for grade {', '.join(missing)}")
        order = sorted(range(len(self.grades)), key=lambda i: self.grades[i].min)
        if [self.grades[i].grade for i in order] != [Grade.D, Grade.C, Grade.B, Grade.A]:
            raise _Bad("grades", "bands must rank D < C < B < A")
        if self.grades[order[0]].min != self.score.floor:
            raise _Bad(
                f"grades[{order[0]}].min", f"the lowest band must start at {self.score.floor:g}"
            )
        for lo, hi in itertools.pairwise(order):
            low, high = self.grades[lo], self.grades[hi]
            if low.below is None or low.below > high.min:
                raise _Bad(
                    f"grades[{lo}]",
                    f"band {low.grade} [{low.min:g}, {low.below:g}) overlaps band {high.grade} "
                    f"starting at {high.min:g}",
                )
            if low.below < high.min:
                raise _Bad(f"grades[{lo}].below", f"gap up to band {high.grade} at {high.min:g}")
        if self.grades[order[-1]].below is not None:
            raise _Bad(f"grades[{order[-1]}].below", "the top band has no upper bound")

    def _check_decisions(self) -> None:
        for kind in ApplicationKind:
            if kind not in self.decisions:
                raise _Bad(f"decisions.{kind}", "missing application kind")
        for kind, row in self.decisions.items():
            for i, cond in enumerate(row.conditions):
                if cond not in self.conditions:
                    raise _Bad(f"decisions.{kind}.conditions[{i}]", f"unknown condition {cond!r}")
            if DecisionKind.RESTRICT in (row.A, row.B, row.C, row.D) and not row.conditions:
                raise _Bad(f"decisions.{kind}.conditions", "RESTRICT needs conditions")
            if row.D is not DecisionKind.BLOCK:
                raise _Bad(f"decisions.{kind}.D", "grade D must BLOCK (the decision table)")

    def _check_messages(self) -> None:
        for name, sample in MESSAGE_FIELDS.items():
            section, attr = name.split(".")
            owner = self.reasons if section == "reasons" else getattr(self.rules, section)
            key = name if section == "reasons" else f"rules.{name}"
            template = None if owner is None else getattr(owner, attr)
            if template is None:
                continue  # an optional rule or text this version does not have
            try:
                template.format(**sample)
            except KeyError as e:
                raise _Bad(key, f"unknown placeholder {{{e.args[0]}}}") from None
            except (ValueError, IndexError, AttributeError) as e:
                raise _Bad(key, f"bad template: {e}") from None

    # ------------------------------------------------------------------ derived, for the engine

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def water_taking(self) -> frozenset[ProjectType]:
        return self.project_types.water_taking

    @cached_property
    def must_reinject(self) -> frozenset[ProjectType]:
        return frozenset(self.rules.REINJ_RATIO.threshold)

    @cached_property
    def _bands(self) -> tuple[tuple[float, Grade], ...]:
        return tuple(sorted(((b.min, b.grade) for b in self.grades), reverse=True))

    def grade_for(self, score: float) -> Grade:
        """The band holding `score`: half-open [min, below), the top band includes its top."""
        for low, grade in self._bands:
            if score >= low:
                return grade
        return self._bands[-1][1]

    @cached_property
    def stale_after(self) -> timedelta:
        return timedelta(hours=self.monitoring.stale_after_hours)

    @cached_property
    def _city_seasons(self) -> tuple[tuple[str, SeasonDates], ...]:
        return tuple(sorted(self.heating_season.cities.items(), key=lambda kv: -len(kv[0])))

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Cache of values derived from this rulebook alone (heating days per city and month…)."""
        return {}

    @cached_property
    def _season_of_city(self) -> dict[str, SeasonDates]:
        return {}

    def season_for(self, city: str) -> SeasonDates:
        """The heating season of a city: the longest configured name the city starts with."""
        season = self._season_of_city.get(city)
        if season is None:
            name = city.strip()
            season = next(
                (s for key, s in self._city_seasons if name.startswith(key.removesuffix("市"))),
                self.heating_season.default,
            )
            self._season_of_city[city] = season
        return season


def _describe(exc: ValidationError) -> tuple[str, str]:
    return _describe_error(exc.errors()[0])


def _describe_error(err: Any) -> tuple[str, str]:
    loc = [str(p) for p in err["loc"] if p != "[key]"]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, _Bad):
        return ".".join([*loc, cause.key]), cause.message
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return key, "unknown rule id" if loc[:1] == ["rules"] and len(loc) == 2 else "unknown key"
    if err["type"] == "missing":
        return key, "missing rule" if loc[:1] == ["rules"] and len(loc) == 2 else "missing key"
    return key, err["msg"].removeprefix("Value error, ")


def parse_rulebook(data: dict[str, Any], source: str = "rulebook") -> Rulebook:
    """Validate a parsed TOML document; raise RulebookError naming the first offending key."""
    try:
        return Rulebook.model_validate(data)
    except ValidationError as exc:
        key, message = _describe(exc)
        raise RulebookError(key, message, source) from None


def rulebook_problems(raw: bytes) -> list[tuple[str, str]]:
    """Every problem of a rulebook file as (key, message); empty when it loads. The checks
    across keys (grade bands, decisions, message templates) run once every key is valid."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        return [("(file)", f"not valid TOML: {e}")]
    try:
        Rulebook.model_validate(data)
    except ValidationError as exc:
        return [_describe_error(err) for err in exc.errors()]
    return []


RULEBOOKS = "rulebooks"  # the installed versions: scoring/rulebooks/<version>.toml


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@functools.cache
def installed_versions() -> tuple[str, ...]:
    """Every rulebook version installed with the package, oldest first."""
    names = (
        f.name.removesuffix(".toml")
        for f in resources.files("scoring").joinpath(RULEBOOKS).iterdir()
        if f.name.endswith(".toml")
    )
    return tuple(sorted(names, key=_version_key))


def load_rulebook(path: Path | None = None, *, version: str | None = None) -> Rulebook:
    """A rulebook file (`path`), an installed version, or — with neither — the version in force:
    the newest installed. Installed versions are parsed once per process."""
    if path is not None:
        return _load(path.read_bytes(), str(path))
    versions = installed_versions()
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise RulebookError(
            "version", f"no rulebook {version!r} installed (installed: {', '.join(versions)})"
        )
    return _installed(version)


def rulebook_of(version: str | None, fallback: Rulebook) -> Rulebook:
    """The installed rulebook of `version` (what a snapshot was scored under), else `fallback`."""
    if version is None or version == fallback.version or version not in installed_versions():
        return fallback
    return _installed(version)


@functools.cache
def _installed(version: str) -> Rulebook:
    source = f"scoring/{RULEBOOKS}/{version}.toml"
    data = resources.files("scoring").joinpath(RULEBOOKS).joinpath(f"{version}.toml").read_bytes()
    rulebook = _load(data, source)
    if rulebook.version != version:
        raise RulebookError("version", f"{rulebook.version!r} in a file named {version}", source)
    return rulebook


def _load(raw: bytes, source: str) -> Rulebook:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RulebookError("(file)", f"not valid TOML: {e}", source) from None
    return parse_rulebook(data, source)
