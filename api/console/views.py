"""What the console's pages show, read through the registry's own reads (registry.creditfile,
registry.standing — the ones GraphQL's credit-file types use) and the decision table
(scoring.decision). This module only arranges them for display: a grid of projects × months,
chart points, labels; it decides nothing."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from registry import creditfile
from registry.creditfile import Row
from registry.standing import FiledStanding, load_standings
from scoring import periods
from scoring.decision import Decision, decide
from scoring.model import (
    COUNTING,
    RESTRICTIVENESS,
    ApplicationKind,
    FindingStatus,
    Severity,
)
from scoring.rulebook import Rulebook

PAGE = 100  # rows per list of a credit file
HISTORY = 500  # score snapshots in the chart
MAX_PROJECTS = 500
SUPERVISION_MAX = 1000

# Display order of severities: the worst colours a grid cell.
SEVERITY_ORDER = tuple(reversed(Severity))
STATUSES = tuple(FindingStatus)

LABELS = {
    "ACTIVE": "有效",
    "UNDER_APPEAL": "异议中",
    "VOIDED": "已撤销",
    "OVERTURNED": "异议成立",
    "REPAIRED": "已修复",
    "CRITICAL": "严重",
    "MAJOR": "较重",
    "MINOR": "一般",
    "WARNING": "提示",
    "ALLOW": "准予",
    "RESTRICT": "限制",
    "BLOCK": "禁止",
    "PROJECT_FILING": "项目备案",
    "WATER_PERMIT": "取水许可",
    "MINING_RIGHT": "采矿权",
    "ENVIRONMENTAL_ASSESSMENT": "环境影响评价",
    "NEW_WELL": "新建井",
    "PENDING": "待决定",
    "UPHELD": "维持",
    "APPROVED": "批准",
    "REJECTED": "驳回",
    "PASS": "合格",
    "CONDITIONAL": "有条件合格",
    "FAIL": "不合格",
    "METRICS": "监测数据",
    "REVIEWER": "检查记录",
    "REGISTRY": "登记信息",
    "EXPIRED": "期满",
    "WITHDRAWN": "撤回",
    "LIFTED": "解除",
    "EXTENDED": "延长",
    "MEDIUM_DEEP": "中深层水热型",
    "SHALLOW_WATER_SOURCE": "水源热泵",
    "CLOSED_LOOP": "地源热泵（取热不取水）",
}


def label(value: Any) -> str:
    return LABELS.get(str(value), str(value))


# ---------------------------------------------------------------- the compliance grid


@dataclass
class Cell:
    month: date
    severity: str | None = None  # the worst counting finding's
    rules: list[str] = field(default_factory=list)  # the tooltip: one line per finding
    data: bool = False  # the rollup has the month
    provisional: bool = False
    outage: bool = False
    evaluated: bool = True
    not_evaluated: list[str] = field(default_factory=list)  # rules not evaluated, and why

    @property
    def css(self) -> str:
        parts = [
            f"sev-{self.severity.lower()}" if self.severity else ("ok" if self.data else "nodata")
        ]
        if self.provisional:
            parts.append("provisional")
        if self.data and not self.evaluated:
            parts.append("not-evaluated")
        if self.outage:
            parts.append("outage")
        return " ".join(parts)

    @property
    def tooltip(self) -> str:
        lines = [periods.month_label(self.month)]
        if not self.data:
            lines.append("无汇总数据")
        else:
            if self.provisional:
                lines.append("暂定（当月数据未终结）")
            if not self.evaluated:
                lines.append("本月未评估")
            if self.outage:
                lines.append("含平台停运时段")
        lines += self.rules or ([] if not self.data else ["无违规发现"])
        lines += [f"未评估：{n}" for n in self.not_evaluated]
        return "\n".join(lines)


@dataclass
class GridRow:
    code: str | None  # None: findings against the company as a whole
    name: str
    cells: list[Cell]


def grid_months(today: date, rulebook: Rulebook) -> list[date]:
    """The months of the scoring window, oldest first, ending with this month."""
    first = periods.lookback_start(periods.local_midnight(today, rulebook), rulebook)
    months, m = [], first
    while m <= today:
        months.append(m)
        m = periods.add_months(m, 1)
    return months


def _rule_line(f: Row) -> str:
    deduction = f" −{f['deduction']:g}" if f["deduction"] else ""
    extra = "" if f["status"] == FindingStatus.ACTIVE else f"（{label(f['status'])}）"
    provisional = "" if f["final"] else "【暂定】"
    return (
        f"{f['rule_id']} {f['policy_clause']} {label(f['severity'])}{deduction}{extra}"
        f"{provisional}：{f['message']}"
    )


def compliance_grid(
    projects: list[Row],
    metrics: dict[int, list[Row]],
    findings: list[Row],
    months: list[date],
    not_evaluated: list[Row] = (),
) -> list[GridRow]:
    """Projects × months: each cell coloured by its worst counting finding, with the month's
    rollup flags (provisional, outage, evaluated) and the rules the latest scoring could not
    evaluate in it (a missing registry fact: in every month)."""
    index = {m: i for i, m in enumerate(months)}
    unevaluated: dict[str, list[Row]] = defaultdict(list)
    for n in not_evaluated:
        unevaluated[n["project_code"]].append(n)
    by_project: dict[int | None, list[Row]] = defaultdict(list)
    for f in findings:
        if f["status"] in COUNTING:
            by_project[f["project_id"]].append(f)
    rows = []
    company_wide = by_project.get(None)
    subjects: list[tuple[int | None, str | None, str]] = [
        (p["id"], p["code"], p["name"]) for p in projects
    ]
    if company_wide:
        subjects.insert(0, (None, None, "企业整体"))
    for pid, code, name in subjects:
        cells = [Cell(m) for m in months]
        for metric in metrics.get(pid, ()) if pid is not None else ():
            i = index.get(metric["month"])
            if i is not None:
                cell = cells[i]
                cell.data = True
                cell.provisional = not metric["final"]
                cell.outage = metric["outage_slots"] > 0
                cell.evaluated = metric["evaluated"]
        for n in unevaluated.get(code, ()):
            first = None if n["window_start"] is None else periods.month_of(n["window_start"])
            for cell in cells:
                if first is None or first <= cell.month <= n["window_end"]:
                    cell.not_evaluated.append(f"{n['rule_id']}：{n['reason']}")
        for f in sorted(by_project.get(pid, ()), key=lambda f: SEVERITY_ORDER.index(f["severity"])):
            start, end = periods.month_of(f["window_start"]), periods.month_of(f["window_end"])
            for cell in cells:
                if start <= cell.month <= end:
                    cell.rules.append(_rule_line(f))
                    if cell.severity is None:
                        cell.severity = f["severity"]
        rows.append(GridRow(code, name, cells))
    return rows


# ---------------------------------------------------------------- the credit file


@dataclass
class CreditFilePage:
    filed: FiledStanding
    company: Row
    decisions: list[tuple[ApplicationKind, Decision]]
    strictest: Decision
    listing: Row | None  # the active one
    months: list[date]
    grid: list[GridRow]
    projects: list[Row]
    snapshots: list[Row]  # newest first
    history: list[dict[str, Any]]  # the same as chart points, oldest first
    bands: list[dict[str, Any]]
    findings: list[Row]
    findings_more: bool
    inspections: list[Row]
    inspection_findings: dict[int, list[Row]]
    post_evaluations: list[Row]
    monthly_reports: list[Row]
    listings: list[Row]
    appeals: list[Row]
    repairs: list[Row]
    quarantine: dict[str | None, list[Row]]  # project code → rows
    quarantine_more: bool


async def _page(
    conn: AsyncConnection,
    view: creditfile.View,
    company_id: int,
    first: int = PAGE,
    filters: tuple = (),
) -> creditfile.Page:
    pages = await creditfile.pages(conn, view, "company_id", [company_id], first, None, filters)
    return pages[company_id]


async def findings_page(
    conn: AsyncConnection, company_id: int, statuses: list[str]
) -> creditfile.Page:
    filters = (("status", tuple(statuses)),) if statuses else ()
    return await _page(conn, creditfile.FINDING, company_id, PAGE, filters)


async def credit_file(
    conn: AsyncConnection,
    credit_code: str,
    now: datetime,
    rulebook: Rulebook,
    statuses: list[str] = (),
) -> CreditFilePage | None:
    """A company's whole file as the console shows it; None when the registry has no file."""
    filed = (await load_standings(conn, [credit_code], now))[credit_code]
    if filed is None:
        return None
    cid = filed.company_id
    today = periods.local_date(now, rulebook)
    months = grid_months(today, rulebook)
    company = (await creditfile.children(conn, creditfile.COMPANY, "id", [cid]))[cid][0]
    projects = (await _page(conn, creditfile.PROJECT, cid, MAX_PROJECTS)).rows
    pids = [p["id"] for p in projects]
    metrics = await creditfile.children(
        conn, creditfile.MONTH_FLAGS, "project_id", pids, since=("month", months[0])
    )
    in_window = (
        await creditfile.children(
            conn, creditfile.FINDING, "company_id", [cid], since=("window_end", months[0])
        )
    )[cid]
    findings = await findings_page(conn, cid, list(statuses))
    snapshots = (await _page(conn, creditfile.SNAPSHOT, cid, HISTORY)).rows
    inspections = (await _page(conn, creditfile.INSPECTION, cid)).rows
    inspection_findings = await creditfile.children(
        conn, creditfile.INSPECTION_FINDING, "inspection_id", [i["id"] for i in inspections]
    )
    listings = (await _page(conn, creditfile.LISTING, cid)).rows
    quarantine = await _page(conn, creditfile.QUARANTINE, cid)
    unevaluated = (await creditfile.children(conn, creditfile.NOT_EVALUATED, "company_id", [cid]))[
        cid
    ]
    code_of = {p["id"]: p["code"] for p in projects}
    by_project: dict[str | None, list[Row]] = defaultdict(list)
    for q in quarantine.rows:
        by_project[code_of.get(q["project_id"])].append(q)

    decisions = [(kind, decide(filed.standing, kind, rulebook, now)) for kind in ApplicationKind]
    strictest = max((d for _, d in decisions), key=lambda d: RESTRICTIVENESS[d.decision])
    active = next((row for row in listings if row["id"] == filed.listing_id), None)
    return CreditFilePage(
        filed=filed,
        company=company,
        decisions=decisions,
        strictest=strictest,
        listing=active,
        months=months,
        grid=compliance_grid(projects, metrics, in_window, months, unevaluated),
        projects=projects,
        snapshots=snapshots,
        history=[
            {"t": s["computed_at"].timestamp(), "score": s["score"], "grade": s["grade"]}
            for s in reversed(snapshots)
        ],
        bands=[{"grade": b.grade.value, "min": b.min, "below": b.below} for b in rulebook.grades],
        findings=findings.rows,
        findings_more=findings.has_next,
        inspections=inspections,
        inspection_findings=inspection_findings,
        post_evaluations=(await _page(conn, creditfile.POST_EVALUATION, cid)).rows,
        monthly_reports=(await _page(conn, creditfile.MONTHLY_REPORT, cid)).rows,
        listings=listings,
        appeals=(await _page(conn, creditfile.APPEAL, cid)).rows,
        repairs=(await _page(conn, creditfile.REPAIR, cid)).rows,
        quarantine=dict(by_project),
        quarantine_more=quarantine.has_next,
    )


# ---------------------------------------------------------------- lists

SORTS = {
    "next_due": lambda r: (r["next_due"], r["name"]),
    "last_inspected_on": lambda r: (r["last_inspected_on"] or date.min, r["name"]),
    "name": lambda r: (r["name"],),
    "grade": lambda r: (r["grade"] or "Z", r["score"] if r["score"] is not None else 101),
    "score": lambda r: (r["score"] if r["score"] is not None else 101, r["name"]),
}


async def supervision(
    conn: AsyncConnection, now: datetime, rulebook: Rulebook, sort: str, descending: bool
) -> tuple[list[Row], bool]:
    """The key-supervision list (the registry's), sorted for display."""
    today = periods.local_date(now, rulebook)
    every = rulebook.supervision.inspection_every_months
    page = await creditfile.supervision_list(conn, now, today, every, SUPERVISION_MAX, None)
    rows = sorted(page.rows, key=SORTS.get(sort, SORTS["next_due"]), reverse=descending)
    for r in rows:
        r["overdue"] = r["next_due"] < today
    return rows, page.has_next


async def search(conn: AsyncConnection, text: str, now: datetime) -> list[Row]:
    filt = creditfile.CompanyFilter(search=text)
    return (await creditfile.companies(conn, filt, now, 50, None)).rows
