"""decide: a company's standing + an application kind → ALLOW / RESTRICT / BLOCK with reasons.

Called per request for up to 1,000 codes at a time, so it formats nothing it can avoid: the
reasons are built once, when a score snapshot is taken (Standing.from_result), and stored with it
(Standing.to_json / from_json). Only STALE_SCORE depends on the request time.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from scoring import periods
from scoring.engine import basis_label
from scoring.model import (
    RESTRICTIVENESS,
    ApplicationKind,
    CompanyResult,
    DecisionKind,
    Finding,
    Grade,
    NotEvaluated,
    NotEvaluatedWhy,
    Severity,
)
from scoring.rulebook import Rulebook, rulebook_of

_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.MAJOR: 1, Severity.MINOR: 2, Severity.WARNING: 3}


def most_serious_first(f: Finding) -> tuple[int, float, str]:
    """Sort key for reasons: CRITICAL first, then the larger deduction, then the key."""
    return _SEVERITY_RANK[f.severity], -f.deduction, f.key


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # NO_CREDIT_FILE, NOT_YET_SCORED, STALE_SCORE, LISTED, GRADE, NOT_EVALUATED, or a
    # finding's rule id
    message: str
    rule_id: str | None = None
    policy_clause: str | None = None
    evidence: dict[str, Any] | None = None

    @classmethod
    def from_finding(cls, f: Finding) -> "Reason":
        evidence = {
            "key": f.key,
            "project_code": f.project_code,
            "window": {"start": f.window_start.isoformat(), "end": f.window_end.isoformat()},
            "severity": f.severity.value,
            "deduction": f.deduction,
            "final": f.final,
            "source": f.source.value,
            "status": f.status.value,
            **f.evidence,
        }
        return cls(f.rule_id, f.message, f.rule_id, f.policy_clause, evidence)

    def to_json(self) -> dict[str, Any]:
        """The contract's Reason shape (camelCase keys)."""
        return {
            "code": self.code,
            "message": self.message,
            "ruleId": self.rule_id,
            "policyClause": self.policy_clause,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Reason":
        return cls(
            data["code"], data["message"], data["ruleId"], data["policyClause"], data["evidence"]
        )


def grade_reason(
    grade: Grade, score: float, version: str, scored_at: datetime, rulebook: Rulebook
) -> Reason:
    return Reason(
        "GRADE",
        rulebook.reasons.GRADE.format(
            grade=grade.value,
            score=score,
            version=version,
            scored_at=scored_at.astimezone(rulebook.zone),
        ),
        evidence={"grade": grade.value, "score": score, "scored_at": scored_at.isoformat()},
    )


WHY_LABEL = {
    NotEvaluatedWhy.REGISTRY_FACT_MISSING: "登记信息缺失",
    NotEvaluatedWhy.NO_OPERATING_WELLS: "登记为运行但无运行中的井",
    NotEvaluatedWhy.ALL_OUTAGE: "平台全时段中断",
    NotEvaluatedWhy.NO_PREVIOUS_SEASON: "无上一供暖期水位数据",
}


def not_evaluated_summary(
    items: Iterable[NotEvaluated], window_start: date, today: date
) -> dict[str, Any]:
    """The compact evidence of a NOT_EVALUATED reason: per rule and cause, how many projects
    and how many months (of the lookback window, up to today) it concerns."""
    groups: dict[tuple[str, str], tuple[set[str], set[date]]] = {}
    for n in items:
        projects, months = groups.setdefault((n.rule_id, n.why.value), (set(), set()))
        if n.window is not None:
            first, last = max(n.window[0], window_start), min(n.window[1], today)
            if first > last:
                continue  # outside the window
            month = periods.month_of(first)
            while month <= last:
                months.add(month)
                month = periods.add_months(month, 1)
        projects.add(n.project_code)
    return {
        "rules": [
            {"ruleId": rule_id, "why": why, "projects": len(projects), "months": len(months)}
            for (rule_id, why), (projects, months) in sorted(groups.items())
        ]
    }


def not_evaluated_reason(summary: dict[str, Any] | None, rulebook: Rulebook) -> Reason | None:
    """One NOT_EVALUATED reason, when something was not evaluated and the rulebook says so."""
    text = rulebook.reasons.NOT_EVALUATED
    if text is None or not summary or not summary.get("rules"):
        return None
    parts = []
    for r in summary["rules"]:
        label = WHY_LABEL.get(NotEvaluatedWhy(r["why"]), r["why"])
        scope = f"{r['projects']} 个项目" + (f"、{r['months']} 个月" if r["months"] else "")
        parts.append(f"{r['ruleId']}（{label}：{scope}）")
    return Reason("NOT_EVALUATED", text.format(details="；".join(parts)), evidence=summary)


@dataclass(frozen=True, slots=True)
class ListingStanding:
    listing_id: str | None
    critical: bool
    started_at: datetime
    min_end: datetime
    max_end: datetime
    reasons: tuple[Reason, ...]  # the findings behind the listing, most serious first
    reason: Reason | None = None  # LISTED; decide builds it when None

    def listed_reason(self, rulebook: Rulebook) -> Reason:
        if self.reason is not None:
            return self.reason
        zone = rulebook.zone
        return Reason(
            "LISTED",
            rulebook.reasons.LISTED.format(
                basis=basis_label(self.critical, rulebook),
                started=self.started_at.astimezone(zone),
                min_end=self.min_end.astimezone(zone),
                max_end=self.max_end.astimezone(zone),
                min_last_day=periods.last_day(self.min_end, rulebook),
                max_last_day=periods.last_day(self.max_end, rulebook),
            ),
            evidence={
                "listing_id": self.listing_id,
                "critical": self.critical,
                "started_at": self.started_at.isoformat(),
                "min_end": self.min_end.isoformat(),
                "max_end": self.max_end.isoformat(),
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "listing_id": self.listing_id,
            "critical": self.critical,
            "started_at": self.started_at.isoformat(),
            "min_end": self.min_end.isoformat(),
            "max_end": self.max_end.isoformat(),
            "reasons": [r.to_json() for r in self.reasons],
            "reason": None if self.reason is None else self.reason.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ListingStanding":
        return cls(
            listing_id=data["listing_id"],
            critical=data["critical"],
            started_at=datetime.fromisoformat(data["started_at"]),
            min_end=datetime.fromisoformat(data["min_end"]),
            max_end=datetime.fromisoformat(data["max_end"]),
            reasons=tuple(Reason.from_json(r) for r in data["reasons"]),
            reason=None if data.get("reason") is None else Reason.from_json(data["reason"]),
        )


@dataclass(frozen=True, slots=True)
class Standing:
    """What a stored score snapshot and the active listing say about a company with a credit
    file. `scored_at` None = never scored. (No credit file at all: pass None to `decide`.)"""

    scored_at: datetime | None = None
    grade: Grade | None = None
    score: float | None = None
    rulebook_version: str | None = None
    reasons: tuple[Reason, ...] = ()  # counting findings, most serious first
    listing: ListingStanding | None = None
    grade_reason: Reason | None = None  # GRADE; decide builds it when None
    # What was not evaluated in the window (not_evaluated_summary); decide makes its reason.
    not_evaluated: dict[str, Any] | None = None

    @classmethod
    def from_result(
        cls, result: CompanyResult, rulebook: Rulebook, listing_id: str | None = None
    ) -> "Standing":
        """The standing a scoring result gives; `listing_id` names the listing it opened."""
        order = sorted((f for f in result.findings if f.counts), key=most_serious_first)
        listing = None
        if result.listing is not None:
            by_key = {f.key: f for f in result.findings}
            behind = sorted(
                (by_key[k] for k in result.listing.finding_keys if k in by_key),
                key=most_serious_first,
            )
            listing = ListingStanding(
                listing_id=result.listing.listing_id or listing_id,
                critical=result.listing.critical,
                started_at=result.listing.started_at,
                min_end=result.listing.min_end,
                max_end=result.listing.max_end,
                reasons=tuple(Reason.from_finding(f) for f in behind),
            )
            listing = _with_reason(listing, listing.listed_reason(rulebook))
        return cls(
            scored_at=result.computed_at,
            grade=result.grade,
            score=result.score,
            rulebook_version=result.rulebook_version,
            reasons=tuple(Reason.from_finding(f) for f in order),
            listing=listing,
            grade_reason=grade_reason(
                result.grade, result.score, result.rulebook_version, result.computed_at, rulebook
            ),
            not_evaluated=not_evaluated_summary(
                result.not_evaluated, result.window_start, result.window_end
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scored_at": None if self.scored_at is None else self.scored_at.isoformat(),
            "grade": None if self.grade is None else self.grade.value,
            "score": self.score,
            "rulebook_version": self.rulebook_version,
            "reasons": [r.to_json() for r in self.reasons],
            "listing": None if self.listing is None else self.listing.to_json(),
            "grade_reason": None if self.grade_reason is None else self.grade_reason.to_json(),
            "not_evaluated": self.not_evaluated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Standing":
        return cls(
            scored_at=_dt(data["scored_at"]),
            grade=None if data["grade"] is None else Grade(data["grade"]),
            score=data["score"],
            rulebook_version=data["rulebook_version"],
            reasons=tuple(Reason.from_json(r) for r in data["reasons"]),
            listing=None if data["listing"] is None else ListingStanding.from_json(data["listing"]),
            grade_reason=(
                None if data.get("grade_reason") is None else Reason.from_json(data["grade_reason"])
            ),
            not_evaluated=data.get("not_evaluated"),
        )


def _with_reason(listing: ListingStanding, reason: Reason) -> ListingStanding:
    return ListingStanding(
        listing.listing_id,
        listing.critical,
        listing.started_at,
        listing.min_end,
        listing.max_end,
        listing.reasons,
        reason,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    decision: DecisionKind
    grade: Grade | None
    score: float | None
    reasons: list[Reason]
    conditions: list[str]
    restricted_until: datetime | None
    as_of: datetime  # the snapshot the decision rests on (now, when there is none)
    rulebook_version: str
    listing_id: str | None = None
    stale: bool = False


def decide(
    standing: Standing | None, kind: ApplicationKind, rulebook: Rulebook, now: datetime
) -> Decision:
    """docs/rulebook.md, decisions: no file / never scored → ALLOW; listed → BLOCK until the
    listing's min_end; otherwise the grade's row for `kind` (C → RESTRICT with conditions). A
    score is answered with the rulebook version it was made under, when that version is
    installed."""
    if standing is not None:
        rulebook = rulebook_of(standing.rulebook_version, rulebook)
    texts = rulebook.reasons
    if standing is None:
        reason = Reason("NO_CREDIT_FILE", texts.NO_CREDIT_FILE)
        return Decision(DecisionKind.ALLOW, None, None, [reason], [], None, now, rulebook.version)

    conditions: list[str] = []
    restricted_until = None
    listing = standing.listing
    if listing is not None and listing.max_end <= now:
        listing = None  # ended automatically, even if no scoring run has recorded it yet
    scored_at, grade = standing.scored_at, standing.grade
    scored = scored_at is not None and grade is not None

    if listing is not None:
        decision = DecisionKind.BLOCK
        restricted_until = listing.min_end
        reasons = [listing.listed_reason(rulebook), *listing.reasons]
    elif not scored:
        decision = DecisionKind.ALLOW
        reasons = [Reason("NOT_YET_SCORED", texts.NOT_YET_SCORED)]
    else:
        row = rulebook.decisions[kind]
        decision = row.for_grade(grade)
        if decision is DecisionKind.RESTRICT:
            conditions = [rulebook.conditions[c].text for c in row.conditions]
        reasons = []

    stale = False
    if scored:
        reasons.append(
            standing.grade_reason
            or grade_reason(
                grade, standing.score, standing.rulebook_version or "", scored_at, rulebook
            )
        )
        if listing is None:
            reasons.extend(standing.reasons)
        unevaluated = not_evaluated_reason(standing.not_evaluated, rulebook)
        if unevaluated is not None:
            reasons.append(unevaluated)
        age = now - scored_at
        if age > rulebook.stale_after:
            stale = True
            hours = age.total_seconds() / 3600
            reasons.append(
                Reason(
                    "STALE_SCORE",
                    texts.STALE_SCORE.format(
                        hours=hours,
                        limit=f"{rulebook.monitoring.stale_after_hours:g}",
                        scored_at=scored_at.astimezone(rulebook.zone),
                    ),
                    evidence={"scored_at": scored_at.isoformat(), "age_hours": round(hours, 2)},
                )
            )
    return Decision(
        decision=decision,
        grade=grade if scored else None,
        score=standing.score if scored else None,
        reasons=reasons,
        conditions=conditions,
        restricted_until=restricted_until,
        as_of=scored_at if scored else now,
        rulebook_version=standing.rulebook_version or rulebook.version,
        listing_id=None if listing is None else listing.listing_id,
        stale=stale,
    )


@dataclass(frozen=True, slots=True)
class StandingSummary:
    """What approval systems keep of a company: the most restrictive decision over every
    application kind, the grade, the score and how long a listing restricts it."""

    decision: DecisionKind
    grade: Grade | None
    score: float | None
    restricted_until: datetime | None

    def differs_from(self, other: "StandingSummary | None") -> bool:
        """A change for approval systems: a score that moves nothing else is not one."""
        return other is None or (self.decision, self.grade, self.restricted_until) != (
            other.decision,
            other.grade,
            other.restricted_until,
        )


def summarize(standing: Standing | None, rulebook: Rulebook, now: datetime) -> StandingSummary:
    """The summary of the decisions `decide` gives now for every application kind."""
    decisions = [decide(standing, kind, rulebook, now) for kind in ApplicationKind]
    worst = max(decisions, key=lambda d: RESTRICTIVENESS[d.decision])
    return StandingSummary(worst.decision, worst.grade, worst.score, worst.restricted_until)


_UNUSED = Reason("", "")  # a summary needs no reason texts: skip formatting them


def summarize_result(result: CompanyResult, rulebook: Rulebook) -> StandingSummary:
    """The summary of the standing a scoring result gives, at the time it was computed."""
    listing = result.listing
    standing = Standing(
        scored_at=result.computed_at,
        grade=result.grade,
        score=result.score,
        rulebook_version=result.rulebook_version,
        listing=None
        if listing is None
        else ListingStanding(
            listing.listing_id,
            listing.critical,
            listing.started_at,
            listing.min_end,
            listing.max_end,
            reasons=(),
            reason=_UNUSED,
        ),
        grade_reason=_UNUSED,
    )
    return summarize(standing, rulebook, result.computed_at)
