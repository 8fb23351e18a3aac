"""score_company: one company's inputs → findings → score → grade → listing transitions."""

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime

from scoring import periods
from scoring.model import (
    AppealOutcome,
    CompanyInputs,
    CompanyResult,
    Finding,
    Grade,
    InputError,
    ListedFinding,
    ListingRecord,
    ListingState,
    ListingTransition,
    NotEvaluated,
    ProjectFacts,
    ProjectMonth,
    SeasonLevel,
    Severity,
    Source,
    TransitionKind,
)
from scoring.rulebook import Rulebook
from scoring.rules import Deriver, report_index

# Findings re-derived from reviewers' own records: absent means the record is gone (voided).
_REVIEWER_RECORD_RULES = frozenset({"INSPECTION", "POST_EVALUATION", "FALSIFIED_DATA"})
# Warnings that put the company on the key-supervision list whatever its grade.
_SUPERVISED = frozenset({"LEGACY_IN_BANNED_ZONE"})


def _not_evaluated_order(n: NotEvaluated) -> tuple:
    return n.project_code, n.rule_id, n.why, n.window or (date.min, date.min), n.reason


def score_company(inputs: CompanyInputs, rulebook: Rulebook, now: datetime) -> CompanyResult:
    today = periods.local_date(now, rulebook)  # also rejects a naive `now`
    projects = _projects(inputs)
    months = _months(inputs, projects)
    listings = {rec.id: rec for rec in inputs.listings}
    if len(listings) != len(inputs.listings):
        raise InputError("duplicate listing id")
    lifts = _lifts(inputs, listings, now)
    overturned = {a.finding_key for a in inputs.appeals if a.outcome is AppealOutcome.OVERTURNED}
    under_appeal = {a.finding_key for a in inputs.appeals if a.outcome is AppealOutcome.PENDING}
    repaired = {lf.key for lid in lifts for lf in listings[lid].findings}

    d = Deriver(
        rulebook,
        now,
        watermark=inputs.watermark,
        overturned=overturned,
        under_appeal=under_appeal,
        repaired=repaired,
    )
    reports = report_index(inputs.monthly_reports)
    levels = _levels(inputs.season_levels, projects)
    for code in sorted(projects):
        p = projects[code]
        subject = d.subject(code, projects)
        d.registry(p, subject)
        d.project_months(p, months[code], reports.get(code, {}), subject)
        if p.type in rulebook.water_taking and code in levels:
            d.water_level(p, levels[code], subject)
    for f in inputs.inspection_findings:
        _known(f.project_code, projects, "inspection finding", f.id)
        if f.inspected_on <= today:
            d.inspection(f, d.subject(f.project_code, projects))
    for e in inputs.post_evaluations:
        _known(e.project_code, projects, "post-evaluation", e.id)
        if e.evaluated_on <= today:
            d.post_evaluation(e, d.subject(e.project_code, projects))

    findings = sorted(d.findings, key=lambda f: f.key)
    for a, b in itertools.pairwise(findings):
        if a.key == b.key:
            raise InputError(f"two records give finding {a.key}: duplicate record id")

    deductions, score, confirmed_score = _score(findings, rulebook)
    critical_keys = tuple(
        f.key for f in findings if f.counts and f.final and f.severity is Severity.CRITICAL
    )
    grade = rulebook.grade_for(score)
    if critical_keys:
        grade = Grade.D
    elif grade is Grade.D and rulebook.grade_for(confirmed_score) is not Grade.D:
        grade = Grade.C  # a provisional month alone never makes D (docs/rulebook.md)

    metrics_from = inputs.metrics_from or d.window_start
    derived = {f.key for f in findings}

    def gone(lf: ListedFinding) -> bool:
        return lf.key in overturned or (lf.key not in derived and derivable(lf, metrics_from))

    transitions, state = _listing_transitions(
        rulebook, now, today, listings.values(), lifts, findings, grade, critical_keys, gone
    )

    return CompanyResult(
        credit_code=inputs.credit_code,
        name=inputs.name,
        rulebook_version=rulebook.version,
        computed_at=now,
        window_start=d.window_start,
        window_end=today,
        watermark=inputs.watermark,
        findings=findings,
        deductions=deductions,
        score=score,
        confirmed_score=confirmed_score,
        grade=grade,
        critical_keys=critical_keys,
        key_supervision=grade in (Grade.C, Grade.D)
        or state is not None
        or any(f.counts and f.rule_id in _SUPERVISED for f in findings),
        listing_transitions=transitions,
        listing=state,
        not_evaluated=sorted(d.not_evaluated, key=_not_evaluated_order),
    )


# ------------------------------------------------------------------------------- inputs


def _projects(inputs: CompanyInputs) -> dict[str, ProjectFacts]:
    projects = {p.code: p for p in inputs.projects}
    if len(projects) != len(inputs.projects):
        raise InputError("duplicate project code")
    return projects


def _known(code: str | None, projects: dict[str, ProjectFacts], what: str, ident: str) -> None:
    if code is not None and code not in projects:
        raise InputError(f"{what} {ident}: unknown project {code}")


def _months(
    inputs: CompanyInputs, projects: dict[str, ProjectFacts]
) -> dict[str, list[ProjectMonth]]:
    """Months per project, sorted. Each ProjectMonth validated itself when it was built."""
    by_project: dict[str, list[ProjectMonth]] = {code: [] for code in projects}
    for m in inputs.months:
        rows = by_project.get(m.project_code)
        if rows is None:
            raise InputError(f"month {m.project_code} {m.month.isoformat()}: unknown project")
        rows.append(m)
    for rows in by_project.values():
        rows.sort(key=_by_month)
        for a, b in itertools.pairwise(rows):
            if a.month == b.month:
                raise InputError(f"month {a.project_code} {a.month.isoformat()}: duplicate")
    return by_project


_by_month = operator.attrgetter("month")


def _levels(
    levels: Sequence[SeasonLevel], projects: dict[str, ProjectFacts]
) -> dict[str, list[SeasonLevel]]:
    out: dict[str, list[SeasonLevel]] = {}
    for lv in levels:
        _known(lv.project_code, projects, "season level", str(lv.season))
        out.setdefault(lv.project_code, []).append(lv)
    for rows in out.values():
        if len({lv.season for lv in rows}) != len(rows):
            raise InputError(f"season level {rows[0].project_code}: duplicate season")
    return out


def _lifts(
    inputs: CompanyInputs, listings: dict[str, ListingRecord], now: datetime
) -> dict[str, tuple[datetime, str]]:
    """Listing id → (when its approved repair takes effect, repair id), for repairs in effect.
    DECISION: a repair approved before the listing's min_end takes effect at min_end."""
    lifts: dict[str, tuple[datetime, str]] = {}
    for r in inputs.repairs:
        listing = listings.get(r.listing_id)
        if listing is None:
            raise InputError(f"repair {r.id}: unknown listing {r.listing_id}")
        at = max(r.approved_at, listing.min_end)
        if at <= now and (r.listing_id not in lifts or (at, r.id) < lifts[r.listing_id]):
            lifts[r.listing_id] = (at, r.id)
    return lifts


def derivable(lf: ListedFinding, metrics_from: date) -> bool:
    """Whether a run whose months start at `metrics_from` re-derives this finding, so that its
    absence means it was voided."""
    if lf.source is Source.REGISTRY or lf.rule_id in _REVIEWER_RECORD_RULES:
        return True
    return lf.window_start >= metrics_from


# -------------------------------------------------------------------------------- score


def _score(findings: list[Finding], rb: Rulebook) -> tuple[dict[str, float], float, float]:
    totals: dict[str, float] = {}
    confirmed: dict[str, float] = {}
    for f in findings:  # sorted by key, so float sums do not depend on input order
        if f.counts and f.deduction:
            totals[f.rule_id] = totals.get(f.rule_id, 0.0) + f.deduction
            if f.final:
                confirmed[f.rule_id] = confirmed.get(f.rule_id, 0.0) + f.deduction
    cap, start, floor = rb.score.rule_cap, rb.score.start, rb.score.floor
    deductions = {rule: min(cap, total) for rule, total in sorted(totals.items())}
    score = max(floor, start - sum(deductions.values()))
    confirmed_score = max(floor, start - sum(min(cap, t) for t in confirmed.values()))
    return deductions, round(score, 2), round(confirmed_score, 2)


# ------------------------------------------------------------------------------ listings


def _listed(findings: Sequence[Finding]) -> tuple[ListedFinding, ...]:
    return tuple(ListedFinding(f.key, f.rule_id, f.source, f.window_start) for f in findings)


def _months_on(today: date, months: int, rb: Rulebook) -> datetime:
    """The end of a listing period of `months` from `today` (local time)."""
    return periods.listing_end(today, months, rb)


def _until(end: datetime, rb: Rulebook) -> str:
    """A period's end as people read it: local, "until <last day> 24:00" (v2026.1: the date
    the period ends at, 00:00)."""
    if rb.listing.period_end == "end_of_day":
        return f"{periods.last_day(end, rb):%Y-%m-%d} 24 时"
    return f"{end.astimezone(rb.zone):%Y-%m-%d}"


def _listing_transitions(
    rb: Rulebook,
    now: datetime,
    today: date,
    listings: Iterable[ListingRecord],
    lifts: dict[str, tuple[datetime, str]],
    findings: list[Finding],
    grade: Grade,
    critical_keys: tuple[str, ...],
    gone: Callable[[ListedFinding], bool],
) -> tuple[list[ListingTransition], ListingState | None]:
    transitions: list[ListingTransition] = []
    active = sorted(
        (
            rec
            for rec in listings
            if rec.started_at <= now and (rec.ended_at is None or rec.ended_at > now)
        ),
        key=lambda rec: (rec.started_at, rec.id),
    )
    remaining: list[ListingRecord] = []
    for rec in active:
        stored = tuple(rec.findings)
        ends: list[tuple[datetime, int, TransitionKind, str | None]] = []
        if rec.id in lifts:
            ends.append((lifts[rec.id][0], 0, TransitionKind.LIFT, lifts[rec.id][1]))
        if rec.max_end <= now:
            ends.append((rec.max_end, 1, TransitionKind.EXPIRE, None))
        if not ends and stored and all(gone(lf) for lf in stored):
            ends.append((now, 2, TransitionKind.WITHDRAW, None))
        if not ends:
            remaining.append(rec)
            continue
        at, _, kind, repair_id = min(ends)
        transitions.append(
            ListingTransition(
                kind=kind,
                at=at,
                listing_id=rec.id,
                critical=rec.critical,
                started_at=rec.started_at,
                min_end=rec.min_end,
                max_end=rec.max_end,
                findings=stored,
                repair_id=repair_id,
                message=_ENDED[kind].format(repair_id=repair_id, max_end=_until(rec.max_end, rb)),
            )
        )

    state = None
    if remaining:
        rec = remaining[-1]
        keys = tuple(lf.key for lf in rec.findings)
        state = ListingState(rec.id, rec.critical, rec.started_at, rec.min_end, rec.max_end, keys)
    if grade is not Grade.D:
        return transitions, state

    by_key = {f.key: f for f in findings}
    params = rb.listing
    if state is None:
        critical = bool(critical_keys)
        basis = (
            [by_key[k] for k in critical_keys]
            if critical
            else [f for f in findings if f.counts and f.final and f.deduction > 0]
        )
        months = params.min_months_critical if critical else params.min_months_score
        min_end = _months_on(today, months, rb)
        max_end = _months_on(today, params.max_months_for(critical), rb)
        transitions.append(
            ListingTransition(
                kind=TransitionKind.OPEN,
                at=now,
                listing_id=None,
                critical=critical,
                started_at=now,
                min_end=min_end,
                max_end=max_end,
                findings=_listed(basis),
                message=f"信用等级 D（{basis_label(critical, rb)}），列入失信名单；"
                + _open_periods(min_end, max_end, rb),
            )
        )
        state = ListingState(None, critical, now, min_end, max_end, tuple(f.key for f in basis))
        return transitions, state

    listed = {lf.key for rec in remaining for lf in rec.findings}
    new = [by_key[k] for k in critical_keys if k not in listed]
    if new:
        min_end = max(state.min_end, _months_on(today, params.min_months_critical, rb))
        max_end = max(state.max_end, _months_on(today, params.max_months, rb))
        transitions.append(
            ListingTransition(
                kind=TransitionKind.EXTEND,
                at=now,
                listing_id=state.listing_id,
                critical=True,
                started_at=state.started_at,
                min_end=min_end,
                max_end=max_end,
                findings=_listed(new),
                message=(
                    f"失信期间新增严重违规，最短期限至 {_until(min_end, rb)}，"
                    f"最长期限至 {_until(max_end, rb)}"
                ),
            )
        )
        keys = state.finding_keys + tuple(f.key for f in new)
        state = ListingState(state.listing_id, True, state.started_at, min_end, max_end, keys)
    return transitions, state


def _open_periods(min_end: datetime, max_end: datetime, rb: Rulebook) -> str:
    if rb.listing.period_end == "end_of_day":
        return (
            f"最短期限至 {_until(min_end, rb)}，期满后可经信用修复移出，"
            f"最迟于 {_until(max_end, rb)}自动移出"
        )
    return f"{_until(min_end, rb)} 起可经信用修复移出，最迟 {_until(max_end, rb)} 自动移出"


def basis_label(critical: bool, rb: Rulebook) -> str:
    if critical:
        return "严重违规"
    d_band = next(b for b in rb.grades if b.grade is Grade.D)
    return f"信用评分低于 {d_band.below:g} 分"


_ENDED = {
    TransitionKind.LIFT: "信用修复 {repair_id} 已批准，移出失信名单",
    TransitionKind.EXPIRE: "失信名单于 {max_end} 期满，自动移出",
    TransitionKind.WITHDRAW: "失信名单所依据的发现均已撤销或经异议推翻，撤回名单",
}
