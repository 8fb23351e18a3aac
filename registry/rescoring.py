"""Rescore companies now: load their inputs → scoring.engine → append what changed to the file.

`rescore(conn, company_ids, …)` is the one way findings, score snapshots and listings are written
from the rulebook: the scheduled scoring run (jobs/scoring_run.py) calls it chunk by chunk, and a
reviewer's mutation calls it for one company inside its own transaction (`rescore_in_session`).

Inputs are loaded set-based — a fixed number of queries for any number of companies — from the
month metrics of the rollup (project_month_metric) and the registry's current rows.

What is appended, per company:
- credit_finding for each finding the engine derives that is not on file under its key, or whose
  content changed: the old row is then voided (finding_event VOIDED, with what changed) and the
  new one added. A provisional month's finding whose severity and deduction stay the same is kept
  while its evidence is fresher than EVIDENCE_REFRESH: the running month's numbers move with every
  pull, and re-recording them each time would flood the file. Findings no longer derived are
  voided (except metric findings of months before the metrics loaded, which cannot be
  re-derived). Overturned and repaired findings are the reviewers' (registry.reviews) and are left.
- listing / listing_end for the engine's listing transitions (OPEN, EXTEND, LIFT, EXPIRE,
  WITHDRAW). An EXTEND ends the listing (how EXTENDED) and opens its continuation with the new
  ends and the added findings, rows being append-only.
- score_snapshot when the outcome changed (score, grade, counting findings, rulebook version,
  window) or the latest snapshot is older than SNAPSHOT_REFRESH, so a decision never rests on a
  stale score while the pipeline runs; with the digest of the inputs it rests on.
- not_evaluated when what the rulebook could not evaluate (or its summary) changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from registry import changes
from registry.current import company_name, finding_counts
from registry.models import (
    CreditFinding,
    FindingEvent,
    Listing,
    ListingEnd,
    NotEvaluatedRecord,
    ScoreSnapshot,
)
from registry.standing import stored_finding
from registry.vocabulary import FindingEventKind, ListingEndKind, RepairOutcome
from scoring import periods
from scoring.decision import not_evaluated_summary, summarize_result
from scoring.engine import derivable, score_company
from scoring.model import (
    COUNTING,
    Appeal,
    AppealOutcome,
    CompanyInputs,
    CompanyResult,
    CreditRepair,
    Finding,
    InspectionFinding,
    LayerMonth,
    ListedFinding,
    ListingRecord,
    MonthFacts,
    MonthlyReport,
    PostEvaluation,
    ProjectFacts,
    ProjectMonth,
    ProjectType,
    QualityLimits,
    SeasonLevel,
    Severity,
    Source,
    TransitionKind,
    Verdict,
    WellFacts,
    WellRole,
)
from scoring.rulebook import Rulebook, load_rulebook

log = logging.getLogger(__name__)

SNAPSHOT_REFRESH = timedelta(hours=12)  # well inside the 48 h after which a score is stale
EVIDENCE_REFRESH = timedelta(hours=24)
AUDIT_LOCK = "geocredit.audit_chain"  # the audit trigger's lock (migration 0001)


@dataclass
class Loaded:
    """One company's inputs and the registry ids behind them."""

    company_id: int
    inputs: CompanyInputs
    project_ids: dict[str, int]  # project code → id
    listing_findings: dict[str, list[int]]  # listing id → the finding ids stored with it


@dataclass
class RescoreSummary:
    companies: int = 0  # asked for
    scored: int = 0
    unchanged: int = 0  # skipped: same inputs as last time
    snapshots: int = 0
    findings_added: int = 0
    findings_voided: int = 0
    listings_opened: int = 0
    listings_ended: int = 0
    changes: int = 0  # decision changes recorded for approval systems
    errors: list[str] = field(default_factory=list)
    results: dict[int, CompanyResult] = field(default_factory=dict)

    def add(self, other: RescoreSummary) -> None:
        """Add another summary's counts and errors (not its results)."""
        for f in dataclasses.fields(self):
            if f.name == "errors":
                self.errors.extend(other.errors)
            elif f.name != "results":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def counts(self) -> dict:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("errors", "results")
        } | {"errors": len(self.errors)}


# ----------------------------------------------------------------------------- loading

_Q_COMPANIES = sa.text(
    f"SELECT c.id, c.credit_code, {company_name('c')} AS name FROM company c WHERE c.id = ANY(:ids)"
)
_Q_PROJECTS = sa.text(
    """
    WITH cur AS (
        SELECT DISTINCT ON (project_id) * FROM project_version
        WHERE project_id IN (SELECT project_id FROM project_version WHERE company_id = ANY(:ids))
        ORDER BY project_id, id DESC
    )
    SELECT cur.*, p.code, p.created_at, pm.annual_total_m3, pm.daily_intensity_m3
    FROM cur JOIN project p ON p.id = cur.project_id
    LEFT JOIN LATERAL (
        SELECT annual_total_m3, daily_intensity_m3 FROM permit
        WHERE project_id = cur.project_id AND kind = 'WATER_PERMIT' ORDER BY id DESC LIMIT 1
    ) pm ON true
    WHERE cur.company_id = ANY(:ids)
    """
)
_Q_WELLS = sa.text(
    """
    SELECT * FROM (
        SELECT DISTINCT ON (v.well_id) v.*, w.code FROM well_version v JOIN well w ON w.id = v.well_id
        WHERE v.well_id IN (SELECT well_id FROM well_version WHERE project_id = ANY(:pids))
        ORDER BY v.well_id, v.id DESC
    ) cur WHERE project_id = ANY(:pids)
    """
)
# Every version of the aquifers' limits: a month is judged with those in force at its end (a
# first version from the beginning, a later one from when it was recorded).
_Q_LIMITS = sa.text(
    """
    SELECT aquifer, tds_max_mg_l, ph_min, ph_max,
           CASE WHEN id = min(id) OVER (PARTITION BY aquifer) THEN NULL ELSE recorded_at END
           AS took_effect
    FROM aquifer_limit WHERE aquifer = ANY(:aquifers) ORDER BY aquifer, id
    """
)
_Q_MONTHS = sa.text(
    """
    SELECT project_id, month, operating, evaluated, final, layers::text AS layers,
           expected_slots, outage_slots, extraction_completeness, reinjection_completeness,
           level_completeness, temperature_completeness, quality_completeness,
           max_daily_extraction_m3, days_over_daily_limit, ytd_extraction_m3, project_type,
           permit_annual_m3, permit_daily_m3, no_operating_wells
    FROM project_month_metric WHERE project_id = ANY(:pids) AND month >= :since
    """
)
_Q_SEASONS = sa.text(
    """
    SELECT project_id, season, sum(season_level_sum) / sum(season_level_n) AS depth
    FROM project_month_metric
    WHERE project_id = ANY(:pids) AND season IS NOT NULL
    GROUP BY project_id, season HAVING sum(season_level_n) > 0
    """
)
_Q_REPORTS = sa.text(
    """
    SELECT project_id, month, min(submitted_on) AS submitted_on FROM monthly_report
    WHERE project_id = ANY(:pids) GROUP BY project_id, month
    """
)
_Q_INSPECTIONS = sa.text(
    """
    SELECT i.company_id, f.id, f.inspection_id, i.project_id, i.inspected_on, f.severity,
           f.description, f.falsified_data, f.rectification_deadline,
           (SELECT min(rectified_on) FROM rectification r WHERE r.inspection_finding_id = f.id)
           AS rectified_on
    FROM inspection i JOIN inspection_finding f ON f.inspection_id = i.id
    WHERE i.company_id = ANY(:ids)
    """
)
_Q_EVALUATIONS = sa.text(
    """
    SELECT company_id, id, project_id, evaluated_on, verdict, summary FROM post_evaluation
    WHERE company_id = ANY(:ids)
    """
)
_Q_APPEALS = sa.text(
    """
    SELECT a.company_id, a.id, f.key, d.outcome
    FROM appeal a JOIN credit_finding f ON f.id = a.finding_id
    LEFT JOIN appeal_decision d ON d.appeal_id = a.id
    WHERE a.company_id = ANY(:ids)
    """
)
_Q_LISTINGS = sa.text(
    """
    SELECT l.*, e.ended_at FROM listing l LEFT JOIN listing_end e ON e.listing_id = l.id
    WHERE l.company_id = ANY(:ids)
    """
)
_Q_LISTED = sa.text(
    "SELECT id, key, rule_id, source, window_start FROM credit_finding WHERE id = ANY(:ids)"
)
_Q_REPAIRS = sa.text(
    f"""
    SELECT r.company_id, r.id, r.listing_id, d.recorded_at AS approved_at
    FROM credit_repair r JOIN repair_decision d
        ON d.repair_id = r.id AND d.outcome = '{RepairOutcome.APPROVED}'
    WHERE r.company_id = ANY(:ids)
    """
)


def metrics_from(now: datetime, rulebook: Rulebook) -> date:
    """The first month whose metrics are loaded: the lookback window, not before applies_from."""
    return max(periods.month_of(rulebook.applies_from), periods.lookback_start(now, rulebook))


def data_watermark(conn: sa.Connection) -> datetime | None:
    """The watermark the month metrics were computed with (the last rollup's)."""
    return conn.scalar(sa.text("SELECT watermark FROM rollup_state WHERE id = 1"))


def load_inputs(
    conn: sa.Connection, company_ids: Iterable[int], *, now: datetime, rulebook: Rulebook
) -> dict[int, Loaded]:
    """CompanyInputs for each company that exists, in a fixed number of queries."""
    ids = sorted(set(company_ids))
    run = lambda q, **p: conn.execute(q, p).all()  # noqa: E731
    companies = run(_Q_COMPANIES, ids=ids)
    projects = run(_Q_PROJECTS, ids=ids)
    pids = [p.project_id for p in projects]
    wells = run(_Q_WELLS, pids=pids)
    limits = _Limits(run(_Q_LIMITS, aquifers=sorted({w.aquifer for w in wells})), rulebook)
    since = metrics_from(now, rulebook)
    code_of = {p.project_id: p.code for p in projects}
    company_of = {p.project_id: p.company_id for p in projects}
    listings = run(_Q_LISTINGS, ids=ids)
    listed = {
        r.id: ListedFinding(r.key, r.rule_id, Source(r.source), r.window_start)
        for r in run(_Q_LISTED, ids=sorted({int(i) for r in listings for i in r.finding_ids}))
    }

    by: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for w in wells:
        by["wells"][w.project_id].append(
            WellFacts(w.code, WellRole(w.role), w.aquifer, w.confined, w.drilled_on)
        )
    aquifers_of = {pid: tuple(sorted({w.aquifer for w in ws})) for pid, ws in by["wells"].items()}
    month_facts: dict[tuple, MonthFacts] = {}  # equal facts share one object
    for m in run(_Q_MONTHS, pids=pids, since=since):
        facts = None
        if m.project_type is not None:
            key = (
                m.project_type, m.permit_annual_m3, m.permit_daily_m3,
                limits.at(aquifers_of.get(m.project_id, ()), m.month),
            )  # fmt: skip
            facts = month_facts.get(key)
            if facts is None:
                facts = month_facts[key] = MonthFacts(ProjectType(key[0]), *key[1:])
        by["months"][company_of[m.project_id]].append(_month(m, code_of[m.project_id], facts))
    for s in run(_Q_SEASONS, pids=pids):
        by["seasons"][company_of[s.project_id]].append(
            SeasonLevel(code_of[s.project_id], s.season, float(s.depth))
        )
    for r in run(_Q_REPORTS, pids=pids):
        by["reports"][company_of[r.project_id]].append(
            MonthlyReport(code_of[r.project_id], r.month, r.submitted_on)
        )
    for f in run(_Q_INSPECTIONS, ids=ids):
        by["inspections"][f.company_id].append(
            InspectionFinding(
                id=str(f.id),
                inspection_id=str(f.inspection_id),
                project_code=_own(code_of, company_of, f.project_id, f.company_id),
                inspected_on=f.inspected_on,
                severity=Severity(f.severity),
                description=f.description,
                falsified_data=f.falsified_data,
                rectification_deadline=f.rectification_deadline,
                rectified_on=f.rectified_on,
            )
        )
    for e in run(_Q_EVALUATIONS, ids=ids):
        code = _own(code_of, company_of, e.project_id, e.company_id)
        if code is not None:  # the engine needs the project; one moved away is not ours
            by["evaluations"][e.company_id].append(
                PostEvaluation(str(e.id), code, e.evaluated_on, Verdict(e.verdict), e.summary)
            )
    for a in run(_Q_APPEALS, ids=ids):
        outcome = AppealOutcome(a.outcome) if a.outcome else AppealOutcome.PENDING
        by["appeals"][a.company_id].append(Appeal(str(a.id), a.key, outcome))
    for r in listings:
        by["listings"][r.company_id].append(
            ListingRecord(
                id=str(r.id),
                started_at=r.started_at,
                min_end=r.min_end,
                max_end=r.max_end,
                critical=r.critical,
                findings=tuple(listed[int(i)] for i in r.finding_ids if int(i) in listed),
                ended_at=r.ended_at,
            )
        )
    for r in run(_Q_REPAIRS, ids=ids):
        by["repairs"][r.company_id].append(
            CreditRepair(str(r.id), str(r.listing_id), r.approved_at)
        )

    facts: dict[int, list[ProjectFacts]] = defaultdict(list)
    for p in projects:
        aquifers = sorted({w.aquifer for w in by["wells"][p.project_id]})
        facts[p.company_id].append(
            ProjectFacts(
                code=p.code,
                name=p.name,
                type=ProjectType(p.type),
                city=p.city,
                registered_on=periods.local_date(p.created_at, rulebook),
                in_spring_protection_zone=p.in_spring_protection_zone,
                in_drinking_water_source=p.in_drinking_water_source,
                in_groundwater_restricted_zone=p.in_groundwater_restricted_zone,
                permit_annual_m3=p.annual_total_m3,
                permit_daily_m3=p.daily_intensity_m3,
                wells=tuple(sorted(by["wells"][p.project_id], key=lambda w: w.code)),
                quality_limits=limits.at(tuple(aquifers), None),
            )
        )

    project_ids: dict[int, dict[str, int]] = defaultdict(dict)
    for p in projects:
        project_ids[p.company_id][p.code] = p.project_id
    listing_findings: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for r in listings:
        listing_findings[r.company_id][str(r.id)] = [int(i) for i in r.finding_ids]
    watermark = data_watermark(conn)
    out: dict[int, Loaded] = {}
    for c in companies:
        cid = c.id

        def rows(kind: str, key: Any, cid: int = cid) -> tuple:
            found = by[kind].get(cid, ())
            return tuple(sorted(found, key=key) if len(found) > 1 else found)

        inputs = CompanyInputs(
            credit_code=c.credit_code,
            name=c.name,
            watermark=watermark,
            projects=tuple(sorted(facts.get(cid, ()), key=lambda p: p.code)),
            months=rows("months", lambda m: (m.project_code, m.month)),
            season_levels=rows("seasons", lambda s: (s.project_code, s.season)),
            monthly_reports=rows("reports", lambda r: (r.project_code, r.month)),
            inspection_findings=rows("inspections", lambda f: int(f.id)),
            post_evaluations=rows("evaluations", lambda e: int(e.id)),
            appeals=rows("appeals", lambda a: int(a.id)),
            listings=rows("listings", lambda r: int(r.id)),
            repairs=rows("repairs", lambda r: int(r.id)),
            metrics_from=since,
        )
        out[cid] = Loaded(cid, inputs, project_ids.get(cid, {}), listing_findings.get(cid, {}))
    return out


class _Limits:
    """Quality limits per aquifer as registered over time."""

    def __init__(self, rows: list, rulebook: Rulebook) -> None:
        self.rb = rulebook
        self.versions: dict[str, list[tuple[datetime | None, QualityLimits]]] = defaultdict(list)
        for r in rows:
            limits = QualityLimits(r.aquifer, r.tds_max_mg_l, r.ph_min, r.ph_max)
            self.versions[r.aquifer].append((r.took_effect, limits))
        self._memo: dict[tuple, tuple[QualityLimits, ...]] = {}

    def at(self, aquifers: tuple[str, ...], month: date | None) -> tuple[QualityLimits, ...]:
        """The limits in force at the end of `month` (None: now, the newest)."""
        key = (aquifers, month)
        found = self._memo.get(key)
        if found is None:
            end = None if month is None else periods.local_midnight(
                periods.add_months(month, 1), self.rb
            )  # fmt: skip
            found = []
            for aquifer in aquifers:
                versions = self.versions.get(aquifer)
                if not versions:
                    continue
                in_force = [v for t, v in versions if t is None or end is None or t < end]
                if in_force:
                    found.append(in_force[-1])
            found = self._memo[key] = tuple(found)
        return found


def _own(code_of: dict, company_of: dict, project_id: int | None, company_id: int) -> str | None:
    """The project's code when it is (still) one of the company's projects."""
    if project_id is None or company_of.get(project_id) != company_id:
        return None
    return code_of[project_id]


def _month(m: Any, code: str, facts: MonthFacts | None) -> ProjectMonth:
    # Positional, in ProjectMonth's field order: a third quicker for the ~50k rows of a run.
    return ProjectMonth(
        code, m.month, m.operating, m.evaluated, m.final,
        tuple(
            LayerMonth(
                lay["aquifer"], float(lay["extraction_m3"]), float(lay["reinjection_m3"]),
                _float(lay["reinjection_tds_mean"]), _float(lay["reinjection_ph_mean"]),
            )
            for lay in orjson.loads(m.layers)
        ),
        m.expected_slots, m.outage_slots, m.extraction_completeness,
        m.reinjection_completeness, m.level_completeness, m.temperature_completeness,
        m.quality_completeness, m.max_daily_extraction_m3, m.days_over_daily_limit,
        m.ytd_extraction_m3, facts, m.no_operating_wells,
    )  # fmt: skip


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# ------------------------------------------------------------------------------ digest


_FIELDS: dict[type, tuple[str, ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _canonical(value: Any) -> Any:
    """Plain JSON values: a dataclass as the list of its fields in declaration order, times in
    UTC, enums as their values. (dataclasses.asdict deep-copies every leaf: five times slower.)"""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is tuple or kind is list:
        return [_canonical(v) for v in value]
    names = _FIELDS.get(kind)
    if names is None:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if not dataclasses.is_dataclass(value):
            raise TypeError(f"cannot digest {kind.__name__}")
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(value))
    return [_canonical(getattr(value, name)) for name in names]


def inputs_digest(inputs: CompanyInputs) -> str:
    """SHA-256 of the canonical JSON of the inputs."""
    text = json.dumps(_canonical(inputs), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ writing

_Q_ACTIVE = sa.text(
    f"""
    SELECT f.*, p.code AS project_code FROM credit_finding f
    LEFT JOIN project p ON p.id = f.project_id
    WHERE f.company_id = ANY(:ids) AND {finding_counts("f")}
    ORDER BY f.id
    """
)
_Q_SNAPSHOTS = sa.text(
    """
    SELECT DISTINCT ON (company_id) * FROM score_snapshot WHERE company_id = ANY(:ids)
    ORDER BY company_id, computed_at DESC, id DESC
    """
)
_Q_NOT_EVALUATED = sa.text(
    """
    SELECT DISTINCT ON (company_id) company_id, digest FROM not_evaluated
    WHERE company_id = ANY(:ids) ORDER BY company_id, computed_at DESC, id DESC
    """
)

_MATERIAL = ("rule_id", "policy_clause", "severity", "deduction", "project_code",
             "window_start", "window_end", "final", "source")  # fmt: skip


def _changes(old: Finding, new: Finding) -> list[str]:
    a, b = old.content(), new.content()
    return [k for k in a if a[k] != b[k]]


@dataclass
class _Plan:
    """What one company's result appends."""

    loaded: Loaded
    result: CompanyResult
    keep: dict[str, int]  # key → id of stored findings that stay
    add: list[Finding]
    void: list[tuple[int, str]]  # (finding id, reason)


def _plan(loaded: Loaded, result: CompanyResult, active: dict, now: datetime) -> _Plan:
    plan = _Plan(loaded, result, {}, [], [])
    derived = {f.key for f in result.findings}
    for f in result.findings:
        if f.status not in COUNTING:
            continue  # overturned or repaired: the reviewers' events already say so
        row = active.get(f.key)
        if row is None:
            plan.add.append(f)
            continue
        old = stored_finding(row)
        changed = _changes(old, f)
        fresh = row.recorded_at > now - EVIDENCE_REFRESH
        if not changed or (
            fresh and not old.final and not f.final and not set(changed) & set(_MATERIAL)
        ):
            plan.keep[f.key] = row.id
            continue
        plan.void.append((row.id, "recomputed: " + ", ".join(changed) + " changed"))
        plan.add.append(f)
    metrics_since = loaded.inputs.metrics_from
    for key, row in active.items():
        if key in derived:
            continue
        listed = ListedFinding(row.key, row.rule_id, Source(row.source), row.window_start)
        if derivable(listed, metrics_since):
            plan.void.append((row.id, "no longer found: the data or records it rested on changed"))
        else:
            plan.keep[key] = row.id
    return plan


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict], *cols: str) -> list:
    if not rows:
        return []
    stmt = sa.insert(table).returning(*(table.c[c] for c in cols), sort_by_parameter_order=True)
    return conn.execute(stmt, rows).all()


def _write(
    conn: sa.Connection,
    plans: list[_Plan],
    snapshots: dict[int, Any],
    *,
    now: datetime,
    rulebook: Rulebook,
    actor: str,
    job_run_id: int | None,
    force_snapshot: bool,
    summary: RescoreSummary,
) -> None:
    findings = CreditFinding.__table__
    new_rows = [
        {
            "company_id": plan.loaded.company_id,
            "project_id": plan.loaded.project_ids.get(f.project_code),
            "key": f.key,
            "rule_id": f.rule_id,
            "policy_clause": f.policy_clause,
            "severity": f.severity.value,
            "deduction": f.deduction,
            "window_start": f.window_start,
            "window_end": f.window_end,
            "final": f.final,
            "source": f.source.value,
            "message": f.message,
            "evidence": f.evidence,
            "rulebook_version": rulebook.version,
            "job_run_id": job_run_id,
        }
        for plan in plans
        for f in plan.add
    ]
    by_company = {p.loaded.company_id: p for p in plans}
    for row_id, company_id, key in _insert(conn, findings, new_rows, "id", "company_id", "key"):
        by_company[company_id].keep[key] = row_id
    _insert(
        conn,
        FindingEvent.__table__,
        [
            {
                "finding_id": fid,
                "kind": FindingEventKind.VOIDED,
                "reason": reason,
                "recorded_by": actor,
            }
            for plan in plans
            for fid, reason in plan.void
        ],
        "id",
    )
    summary.findings_added += len(new_rows)
    summary.findings_voided += sum(len(p.void) for p in plans)

    snapshot_rows, standings = [], {}
    for plan in plans:
        result, cid = plan.result, plan.loaded.company_id
        transitions = _listings(conn, plan, now=now, actor=actor, summary=summary)
        standings[cid] = summarize_result(result, rulebook)
        counted = sorted(plan.keep[f.key] for f in result.findings if f.counts)
        prev = snapshots.get(cid)
        if (
            force_snapshot
            or transitions
            or prev is None
            or prev.computed_at <= now - SNAPSHOT_REFRESH
            or (prev.score, prev.grade, sorted(prev.finding_ids), prev.rulebook_version)
            != (result.score, result.grade.value, counted, rulebook.version)
            or prev.window_start != result.window_start
        ):
            snapshot_rows.append(
                {
                    "company_id": cid,
                    "computed_at": now,
                    "score": result.score,
                    "grade": result.grade.value,
                    "rulebook_version": rulebook.version,
                    "window_start": result.window_start,
                    "window_end": result.window_end,
                    "data_watermark": result.watermark,
                    "inputs_digest": inputs_digest(plan.loaded.inputs),
                    "finding_ids": counted,
                    "job_run_id": job_run_id,
                }
            )
    _insert(conn, ScoreSnapshot.__table__, snapshot_rows, "id")
    summary.snapshots += len(snapshot_rows)
    _not_evaluated(conn, plans, now=now, rulebook=rulebook, job_run_id=job_run_id)
    summary.changes += changes.record(
        conn, standings, at=now, rulebook_version=rulebook.version, actor=actor
    )


def _not_evaluated(
    conn: sa.Connection,
    plans: list[_Plan],
    *,
    now: datetime,
    rulebook: Rulebook,
    job_run_id: int | None,
) -> None:
    """A not_evaluated row for each company whose list (or its summary) changed."""
    stored = dict(
        conn.execute(_Q_NOT_EVALUATED, {"ids": [p.loaded.company_id for p in plans]}).all()
    )
    rows = []
    for plan in plans:
        result, cid = plan.result, plan.loaded.company_id
        digest = _not_evaluated_digest(result)
        previous = stored.get(cid)
        if previous == digest or (previous is None and not result.not_evaluated):
            continue
        rows.append(
            {
                "company_id": cid,
                "computed_at": now,
                "rulebook_version": rulebook.version,
                "items": [n.to_json() for n in result.not_evaluated],
                "summary": not_evaluated_summary(
                    result.not_evaluated, result.window_start, result.window_end
                ),
                "digest": digest,
                "job_run_id": job_run_id,
            }
        )
    _insert(conn, NotEvaluatedRecord.__table__, rows, "id")


def _not_evaluated_digest(result: CompanyResult) -> str:
    """What a not_evaluated row depends on: its items, the lookback window and the month (the
    summary counts the months of a season up to today)."""
    parts = [result.window_start.isoformat(), result.window_end.isoformat()[:7]]
    parts += [
        f"{n.project_code}\t{n.rule_id}\t{n.why.value}\t{n.window}\t{n.reason}"
        for n in result.not_evaluated
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_ENDED_BY = {
    TransitionKind.LIFT: ListingEndKind.REPAIRED,
    TransitionKind.EXPIRE: ListingEndKind.EXPIRED,
    TransitionKind.WITHDRAW: ListingEndKind.WITHDRAWN,
}


def _listings(
    conn: sa.Connection, plan: _Plan, *, now: datetime, actor: str, summary: RescoreSummary
) -> int:
    """Append the listing rows of the engine's transitions; how many there were."""
    cid = plan.loaded.company_id
    for t in plan.result.listing_transitions:
        ids = [plan.keep[lf.key] for lf in t.findings if lf.key in plan.keep]
        if t.kind in (TransitionKind.OPEN, TransitionKind.EXTEND):
            if t.kind is TransitionKind.EXTEND:
                _end(conn, t.listing_id, now, ListingEndKind.EXTENDED, t.message, actor)
                ids = plan.loaded.listing_findings[t.listing_id] + ids
            conn.execute(
                sa.insert(Listing.__table__).values(
                    company_id=cid,
                    started_at=t.started_at,
                    min_end=t.min_end,
                    max_end=t.max_end,
                    critical=t.critical,
                    reason=t.message,
                    finding_ids=ids,
                    recorded_by=actor,
                )
            )
            summary.listings_opened += t.kind is TransitionKind.OPEN
        else:
            how = _ENDED_BY[t.kind]
            _end(conn, t.listing_id, t.at, how, t.message, actor, t.repair_id)
            summary.listings_ended += 1
    return len(plan.result.listing_transitions)


def _end(
    conn: sa.Connection,
    listing_id: str | None,
    at: datetime,
    how: ListingEndKind,
    reason: str,
    actor: str,
    repair_id: str | None = None,
) -> None:
    conn.execute(
        sa.insert(ListingEnd.__table__).values(
            listing_id=int(listing_id),
            ended_at=at,
            how=how,
            reason=reason,
            repair_id=None if repair_id is None else int(repair_id),
            recorded_by=actor,
        )
    )


# ------------------------------------------------------------------------------ rescore


def rescore(
    conn: sa.Connection,
    company_ids: Iterable[int],
    *,
    now: datetime | None = None,
    rulebook: Rulebook | None = None,
    actor: str = "scoring",
    job_run_id: int | None = None,
    force_snapshot: bool = False,
) -> RescoreSummary:
    """Score these companies and append what changed, inside the caller's transaction.

    Takes the audit chain's transaction lock first, so that no other writer of the credit file
    can change a company's records between loading them and appending the result (and every
    writer takes the two locks in the same order). Which companies need scoring is the
    caller's to know (jobs.scoring_run: the ones marked in score_dirty).
    """
    now = now or datetime.now(UTC)
    rb = rulebook or load_rulebook()
    ids = sorted(set(company_ids))
    summary = RescoreSummary(companies=len(ids))
    if not ids:
        return summary
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(AUDIT_LOCK))))
    loaded = load_inputs(conn, ids, now=now, rulebook=rb)
    results: list[tuple[Loaded, CompanyResult]] = []
    for cid in ids:
        item = loaded.get(cid)
        if item is None:
            summary.errors.append(f"company {cid}: no such company")
            continue
        try:
            result = score_company(item.inputs, rb, now)
        except Exception as exc:  # one company's bad inputs must not stop the others
            log.exception("scoring company %s failed", cid)
            summary.errors.append(f"company {cid} ({item.inputs.credit_code}): {exc}")
            continue
        results.append((item, result))
        summary.results[cid] = result
    summary.scored = len(results)
    if not results:
        return summary

    scored_ids = [item.company_id for item, _ in results]
    active: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in conn.execute(_Q_ACTIVE, {"ids": scored_ids}):
        active[row.company_id][row.key] = row  # the latest row per key wins
    snapshots = {r.company_id: r for r in conn.execute(_Q_SNAPSHOTS, {"ids": scored_ids})}
    plans = [_plan(item, result, active.get(item.company_id, {}), now) for item, result in results]
    _write(
        conn,
        plans,
        snapshots,
        now=now,
        rulebook=rb,
        actor=actor,
        job_run_id=job_run_id,
        force_snapshot=force_snapshot,
        summary=summary,
    )
    return summary


async def rescore_in_session(
    session: AsyncSession, company_ids: Iterable[int], **kw: Any
) -> RescoreSummary:
    """`rescore` inside an AsyncSession's transaction (for the API's reviewer mutations)."""
    ids = list(company_ids)
    return await session.run_sync(lambda s: rescore(s.connection(), ids, **kw))
