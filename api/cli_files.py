"""`geocredit company CODE` and `geocredit eligibility CODE`: a credit file and the decision an
approval system gets, in the terminal. They read through the registry's own reads (the ones the
console and GraphQL use: registry.standing, registry.creditfile) and decide with
`scoring.decision.decide`, as the API does; nothing here reads or decides on its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from scoring.model import COUNTING, RESTRICTIVENESS, ApplicationKind, Severity

files_app = typer.Typer(rich_markup_mode=None)

_SEVERITY = tuple(reversed(Severity))  # the worst first
FINDINGS_SHOWN = 200
LISTINGS_SHOWN = 20
INSPECTIONS_SHOWN = 5
PROJECTS_SHOWN = 500


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


def _credit_code(raw: str) -> str:
    from registry.creditcode import InvalidCreditCode, normalize_credit_code

    try:
        return normalize_credit_code(raw)
    except InvalidCreditCode as exc:
        raise typer.BadParameter(str(exc)) from None


_CODE = typer.Argument(
    ...,
    metavar="CODE",
    callback=_credit_code,
    help="The company's unified social credit code (18 characters).",
)
_JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")


async def _read(work):
    """`work(conn)` on a connection of its own (the database checked reachable first, so an
    unreachable one is one line)."""
    from registry import db

    cli = _cli()
    cli._engine()
    engine = db.make_async_engine(db.database_url(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def _local_date(t: datetime | None) -> date | None:
    return None if t is None else t.astimezone(_cli().local_zone()).date()


def _month(start: date, end: date) -> str:
    """A finding's window as months: 2026-03, or 2025-11…2026-03 for a longer window."""
    first, last = f"{start:%Y-%m}", f"{end:%Y-%m}"
    return first if first == last else f"{first}…{last}"


def _text(value: Any) -> Text:
    """A cell as plain text: data is never read as rich markup."""
    return Text("" if value is None else str(value))


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:g}"


# ---------------------------------------------------------------- eligibility


async def _filed_standing(conn, code: str, now: datetime, as_of: bool = False):
    """The company's stored standing at `now`, as the API reads it; `as_of`: as it stood at the
    past instant `now`, from what was recorded by then."""
    from registry.standing import load_standings

    return (await load_standings(conn, [code], now, as_of=as_of))[code]


def _as_of(value: str | None) -> datetime | None:
    """--as-of: an ISO 8601 time with its offset, not in the future."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset, e.g. 2026-12-01T09:30:00+08:00")
    if at > datetime.now(UTC):
        raise typer.BadParameter(f"{value!r} is in the future")
    return at


def _eligibility(code: str, filed, kind: ApplicationKind, decision) -> dict[str, Any]:
    """The API's Eligibility shape (docs/api.md), plus the kind asked about."""
    return {
        "creditCode": code,
        "kind": kind.value,
        "company": None if filed is None else {"creditCode": filed.credit_code, "name": filed.name},
        "decision": decision.decision.value,
        "grade": None if decision.grade is None else decision.grade.value,
        "score": decision.score,
        "reasons": [r.to_json() for r in decision.reasons],
        "conditions": list(decision.conditions),
        "restrictedUntil": decision.restricted_until,
        "asOf": decision.as_of,
        "rulebookVersion": decision.rulebook_version,
    }


@files_app.command()
def eligibility(
    code: str = _CODE,
    kinds: list[ApplicationKind] = typer.Option(
        None,
        "--kind",
        metavar="KIND",
        case_sensitive=False,
        help="PROJECT_FILING, WATER_PERMIT, MINING_RIGHT, ENVIRONMENTAL_ASSESSMENT or NEW_WELL "
        "(repeat for several); default: every kind.",
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        metavar="TIME",
        callback=_as_of,
        help="Answer as at this past instant (ISO 8601 with offset), from what was recorded "
        "by then, as the API's asOf does.",
    ),
    as_json: bool = _JSON,
) -> None:
    """The decision an approval system gets, with its reasons.

    ALLOW, RESTRICT or BLOCK per application kind, from the company's stored standing, exactly
    as the API's `eligibility` answers it (a code without a credit file is ALLOW with
    NO_CREDIT_FILE). With --as-of, what it got at that past instant. Records nothing. --json
    prints a list of the API's Eligibility objects."""
    from scoring.decision import decide
    from scoring.rulebook import load_rulebook

    cli = _cli()
    wanted = list(dict.fromkeys(kinds)) if kinds else list(ApplicationKind)
    now = as_of or datetime.now(UTC)
    rulebook = load_rulebook()
    filed = asyncio.run(_read(lambda conn: _filed_standing(conn, code, now, as_of is not None)))
    standing = filed.standing if filed is not None else None
    answers = [(kind, decide(standing, kind, rulebook, now)) for kind in wanted]
    if as_json:
        cli.emit_json([_eligibility(code, filed, kind, d) for kind, d in answers])
        return
    first = answers[0][1]
    if filed is None:
        cli.emit(f"{code}: no credit file")
    else:
        scored = (
            f"grade {first.grade.value}, score {_score(first.score)} (scored "
            f"{cli.local_time(first.as_of)}, rulebook v{first.rulebook_version})"
            if first.grade is not None
            else "never scored"
        )
        cli.emit(f"{code} {filed.name}: {scored}")
    # Kinds with the same answer are shown once.
    groups: dict[tuple, list[str]] = {}
    for kind, d in answers:
        key = (
            d.decision.value,
            d.restricted_until,
            tuple(d.conditions),
            tuple((r.code, r.message) for r in d.reasons),
        )
        groups.setdefault(key, []).append(kind.value)
    by_key = {kind.value: d for kind, d in answers}
    for names in groups.values():
        d = by_key[names[0]]
        until = (
            f" until {_local_date(d.restricted_until)} (local date)" if d.restricted_until else ""
        )
        cli.emit("")
        cli.emit(f"{', '.join(names)}: {d.decision.value}{until}")
        for r in d.reasons:
            clause = f" [{r.policy_clause}]" if r.policy_clause else ""
            cli.emit(f"  {r.code}{clause}: {' '.join(r.message.split())}")
        for condition in d.conditions:
            cli.emit(f"  condition: {condition}")


# ---------------------------------------------------------------- company


@dataclass
class CreditFile:
    filed: Any  # registry.standing.FiledStanding
    company: dict[str, Any]
    decisions: list[tuple[ApplicationKind, Any]]
    findings: list[dict[str, Any]]
    findings_more: bool
    listings: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    inspections: list[dict[str, Any]]
    inspection_findings: dict[int, list[dict[str, Any]]]


async def _credit_file(conn, code: str, now: datetime, rulebook) -> CreditFile | None:
    from registry import creditfile
    from scoring.decision import decide

    filed = await _filed_standing(conn, code, now)
    if filed is None:
        return None
    cid = filed.company_id

    async def page(view, first, filters=()):
        return (await creditfile.pages(conn, view, "company_id", [cid], first, None, filters))[cid]

    company = (await creditfile.children(conn, creditfile.COMPANY, "id", [cid]))[cid][0]
    findings = await page(creditfile.FINDING, FINDINGS_SHOWN, (("status", COUNTING),))
    inspections = (await page(creditfile.INSPECTION, INSPECTIONS_SHOWN)).rows
    return CreditFile(
        filed=filed,
        company=company,
        decisions=[(k, decide(filed.standing, k, rulebook, now)) for k in ApplicationKind],
        # newest month first, the most serious first within a month
        findings=sorted(
            findings.rows,
            key=lambda r: (-r["window_start"].toordinal(), _SEVERITY.index(r["severity"])),
        ),
        findings_more=findings.has_next,
        listings=(await page(creditfile.LISTING, LISTINGS_SHOWN)).rows,
        projects=(await page(creditfile.PROJECT, PROJECTS_SHOWN)).rows,
        inspections=inspections,
        inspection_findings=await creditfile.children(
            conn, creditfile.INSPECTION_FINDING, "inspection_id", [i["id"] for i in inspections]
        ),
    )


def _listing_json(row: dict[str, Any], active_id: int | None) -> dict[str, Any]:
    return {
        "id": row["id"],
        "active": row["id"] == active_id,
        "critical": row["critical"],
        "startedAt": row["started_at"],
        "minEnd": row["min_end"],
        "maxEnd": row["max_end"],
        "minEndDate": _local_date(row["min_end"]),
        "maxEndDate": _local_date(row["max_end"]),
        "endedAt": row["ended_at"],
        "endedHow": row["end_how"],
        "reason": row["reason"],
    }


def _file_json(f: CreditFile) -> dict[str, Any]:
    standing = f.filed.standing
    strictest = max(f.decisions, key=lambda kd: RESTRICTIVENESS[kd[1].decision])[1]
    active = next((r for r in f.listings if r["id"] == f.filed.listing_id), None)
    return {
        "creditCode": f.filed.credit_code,
        "name": f.filed.name,
        "registeredAt": f.company["created_at"],
        "standing": {
            "grade": None if standing.grade is None else standing.grade.value,
            "score": standing.score,
            "scoredAt": standing.scored_at,
            "rulebookVersion": standing.rulebook_version,
            "stale": strictest.stale,
            "decision": strictest.decision.value,
            "restrictedUntil": strictest.restricted_until,
            "listing": None if active is None else _listing_json(active, active["id"]),
        },
        "decisions": [
            {
                "kind": kind.value,
                "decision": d.decision.value,
                "restrictedUntil": d.restricted_until,
                "conditions": list(d.conditions),
            }
            for kind, d in f.decisions
        ],
        "findings": [
            {
                "id": r["id"],
                "ruleId": r["rule_id"],
                "policyClause": r["policy_clause"],
                "month": _month(r["window_start"], r["window_end"]),
                "windowStart": r["window_start"],
                "windowEnd": r["window_end"],
                "projectCode": r["project_code"],
                "severity": r["severity"],
                "deduction": r["deduction"],
                "status": r["status"],
                "final": r["final"],
                "source": r["source"],
                "message": r["message"],
            }
            for r in f.findings
        ],
        "findingsMore": f.findings_more,
        "listings": [_listing_json(r, f.filed.listing_id) for r in f.listings],
        "projects": [
            {
                "code": p["code"],
                "name": p["name"],
                "type": p["type"],
                "city": p["city"],
                "operating": p["operating"],
            }
            for p in f.projects
        ],
        "inspections": [
            {
                "id": i["id"],
                "inspectedOn": i["inspected_on"],
                "projectCode": i["project_code"],
                "inspector": i["inspector"],
                "summary": i["summary"],
                "findings": [
                    {
                        "severity": x["severity"],
                        "description": x["description"],
                        "rectificationDeadline": x["rectification_deadline"],
                        "rectifiedOn": x["rectified_on"],
                    }
                    for x in f.inspection_findings.get(i["id"], [])
                ],
            }
            for i in f.inspections
        ],
    }


def _show_file(f: CreditFile) -> None:
    cli = _cli()
    standing = f.filed.standing
    cli.emit(f"{f.filed.credit_code} {f.filed.name}")
    if standing.grade is None:
        cli.emit("standing: never scored")
    else:
        stale = any(d.stale for _, d in f.decisions)
        cli.emit(
            f"standing: grade {standing.grade.value}, score {_score(standing.score)} (scored "
            f"{cli.local_time(standing.scored_at)}, rulebook v{standing.rulebook_version})"
            + (" — stale: STALE_SCORE is among the reasons" if stale else "")
        )
    active = next((r for r in f.listings if r["id"] == f.filed.listing_id), None)
    if active is not None:
        basis = "a CRITICAL finding" if active["critical"] else "its score"
        cli.emit(
            f"listed (失信) since {_local_date(active['started_at'])} for {basis}: earliest end "
            f"{_local_date(active['min_end'])}, latest end {_local_date(active['max_end'])} "
            "(local dates)"
        )

    decisions = Table("application kind", "decision", "until (local date)", "conditions")
    for kind, d in f.decisions:
        decisions.add_row(
            kind.value,
            d.decision.value,
            _text(_local_date(d.restricted_until)),
            _text("; ".join(d.conditions)),
        )
    cli.emit("")
    cli.show(decisions)

    more = f" (the first {len(f.findings)})" if f.findings_more else ""
    findings = Table(
        "rule",
        "clause",
        "month",
        "project",
        "severity",
        "deduction",
        "status",
        "message",
        title=f"Findings that count{more}",
    )
    for r in f.findings:
        findings.add_row(
            _text(r["rule_id"]),
            _text(r["policy_clause"]),
            _month(r["window_start"], r["window_end"]) + ("" if r["final"] else " (provisional)"),
            _text(r["project_code"] or "-"),
            _text(r["severity"]),
            f"−{r['deduction']:g}" if r["deduction"] else "0",
            _text(r["status"]),
            _text(" ".join(str(r["message"]).split())),
        )
    cli.emit("")
    cli.show(findings if f.findings else "Findings that count: none")

    listings = Table(
        "id",
        "started",
        "earliest end",
        "latest end",
        "basis",
        "status",
        title="Listings (local dates)",
    )
    for r in f.listings:
        if r["ended_at"] is not None:
            status = f"ended {_local_date(r['ended_at'])} ({r['end_how']})"
        elif r["id"] == f.filed.listing_id:
            status = "active"
        else:
            status = "over (latest end passed)"
        listings.add_row(
            str(r["id"]),
            str(_local_date(r["started_at"])),
            str(_local_date(r["min_end"])),
            str(_local_date(r["max_end"])),
            "CRITICAL" if r["critical"] else "score",
            _text(status),
        )
    cli.emit("")
    cli.show(listings if f.listings else "Listings: none")

    projects = Table("project", "name", "type", "city", "operating", title="Projects")
    for p in f.projects:
        projects.add_row(
            _text(p["code"]),
            _text(p["name"]),
            _text(p["type"]),
            _text(p["city"]),
            "yes" if p["operating"] else "no",
        )
    cli.emit("")
    cli.show(projects if f.projects else "Projects: none")

    inspections = Table("date", "project", "inspector", "findings", title="Recent inspections")
    for i in f.inspections:
        found = f.inspection_findings.get(i["id"], [])
        inspections.add_row(
            str(i["inspected_on"]),
            _text(i["project_code"] or "-"),
            _text(i["inspector"]),
            _text(
                "; ".join(
                    f"{x['severity']}: {x['description']}"
                    + (f" (rectified {x['rectified_on']})" if x["rectified_on"] else "")
                    for x in found
                )
                or "none"
            ),
        )
    cli.emit("")
    cli.show(inspections if f.inspections else "Recent inspections: none")


@files_app.command()
def company(code: str = _CODE, as_json: bool = _JSON) -> None:
    """A company's credit file in the terminal.

    The standing is the grade, score and decision per application kind, with the active
    listing's earliest and latest end (local dates); then the findings that count (ACTIVE or
    UNDER_APPEAL), every listing, the projects and the most recent inspections. The reviewer
    console (/console) shows the whole file."""
    from scoring.rulebook import load_rulebook

    cli = _cli()
    now = datetime.now(UTC)
    rulebook = load_rulebook()
    found = asyncio.run(_read(lambda conn: _credit_file(conn, code, now, rulebook)))
    if found is None:
        raise cli.CliError(f"no credit file for {code}")
    if as_json:
        cli.emit_json(_file_json(found))
    else:
        _show_file(found)
