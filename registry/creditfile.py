"""Set-based reads of credit files: one query per relation for any number of parents, never one
per row. The transport batches its loaders onto these (api/loaders_reviewer.py).

Each `View` is the SQL of one kind of record, with its current status derived (a finding's
status, an appeal's outcome, a listing's end…): records are append-only, so nothing is read from
an updated column. `children` and `page` select a view's rows by a parent column (e.g. a
company's inspections), `page` in keyset pages ordered by the view's cursor column.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import changes
from registry.current import (
    company_name,
    finding_counts,
    finding_end,
    finding_status,
    latest_version,
)
from registry.vocabulary import RepairOutcome
from scoring.model import AppealOutcome

Row = dict[str, Any]
_current = latest_version


@dataclass(frozen=True)
class View:
    sql: str
    cursor: str = "id"  # unique within a parent; pages are ordered by it
    descending: bool = True  # newest first
    parse: Any = int  # cursor text → the cursor column's value


COMPANY = View(
    f"SELECT c.id, c.credit_code, {company_name('c')} AS name, c.created_at FROM company c"
)

PROJECT = View(
    f"""
    SELECT p.id, p.code, v.company_id, v.name, v.type, v.city, v.county, v.operating,
           v.in_spring_protection_zone, v.in_drinking_water_source,
           v.in_groundwater_restricted_zone, v.source, v.recorded_at AS updated_at, p.created_at
    FROM project p JOIN project_version v ON v.project_id = p.id
    WHERE {_current("project_version", "v", "project_id")}
    """,
    cursor="code",
    descending=False,
    parse=str,
)

WELL = View(
    f"""
    SELECT w.id, w.code, v.project_id, v.role, v.aquifer, v.confined, v.drilled_on, v.operating,
           v.source, v.recorded_at AS updated_at
    FROM well w JOIN well_version v ON v.well_id = w.id
    WHERE {_current("well_version", "v", "well_id")}
    """,
    cursor="code",
    descending=False,
    parse=str,
)

PERMIT = View(
    """
    SELECT p.*, EXISTS (SELECT 1 FROM permit s WHERE s.supersedes_id = p.id) AS superseded
    FROM permit p
    """
)

# Status: the event that ended the finding (VOIDED, OVERTURNED, REPAIRED), else UNDER_APPEAL
# while an appeal awaits its decision, else ACTIVE.
FINDING = View(
    f"""
    SELECT f.id, f.company_id, f.project_id, p.code AS project_code, f.key, f.rule_id,
           f.policy_clause, f.severity, f.deduction, f.window_start, f.window_end, f.final,
           f.source, f.message, f.evidence, f.rulebook_version, f.recorded_at,
           {finding_status("f", "e")} AS status,
           e.reason AS status_reason, e.recorded_at AS status_changed_at
    FROM credit_finding f
    LEFT JOIN project p ON p.id = f.project_id
    {finding_end("f", "e")}
    """
)

SNAPSHOT = View("SELECT * FROM score_snapshot")

INSPECTION = View(
    """
    SELECT i.*, p.code AS project_code
    FROM inspection i LEFT JOIN project p ON p.id = i.project_id
    """
)

INSPECTION_FINDING = View(
    """
    SELECT f.*, r.rectified_on, r.note AS rectification_note,
           r.recorded_by AS rectification_recorded_by, r.recorded_at AS rectification_recorded_at
    FROM inspection_finding f
    LEFT JOIN rectification r ON r.inspection_finding_id = f.id
    """,
    descending=False,
)

POST_EVALUATION = View(
    """
    SELECT e.*, p.code AS project_code
    FROM post_evaluation e JOIN project p ON p.id = e.project_id
    """
)

MONTHLY_REPORT = View(
    f"""
    SELECT r.*, p.code AS project_code, v.company_id
    FROM monthly_report r
    JOIN project p ON p.id = r.project_id
    JOIN project_version v ON v.project_id = r.project_id
    WHERE {_current("project_version", "v", "project_id")}
    """
)

LISTING = View(
    """
    SELECT l.*, e.ended_at, e.how AS end_how, e.reason AS end_reason,
           e.recorded_by AS end_recorded_by, e.repair_id AS end_repair_id
    FROM listing l LEFT JOIN listing_end e ON e.listing_id = l.id
    """
)

APPEAL = View(
    f"""
    SELECT a.*, coalesce(d.outcome, '{AppealOutcome.PENDING}') AS outcome, d.reason AS decision_reason,
           d.decided_by, d.recorded_at AS decided_at
    FROM appeal a LEFT JOIN appeal_decision d ON d.appeal_id = a.id
    """
)

REPAIR = View(
    f"""
    SELECT r.*, coalesce(d.outcome, '{RepairOutcome.PENDING}') AS outcome, d.reason AS decision_reason,
           d.decided_by, d.recorded_at AS decided_at
    FROM credit_repair r LEFT JOIN repair_decision d ON d.repair_id = r.id
    """
)

APPLICATION = View(
    """
    SELECT a.id, d.company_id, a.case_reference, a.kind, a.project_name, a.city,
           a.received_at, c.name AS client_name, d.id AS decision_id, d.decision, d.grade,
           d.score, d.reasons, d.conditions, d.restricted_until, d.as_of, d.rulebook_version,
           d.decided_at
    FROM application a
    JOIN decision d ON d.application_id = a.id
    JOIN api_client c ON c.id = a.client_id
    """
)

# What the latest scoring of each company could not evaluate, one row per item.
NOT_EVALUATED = View(
    """
    SELECT n.company_id, n.computed_at, n.rulebook_version, i.n AS id,
           i.item ->> 'project_code' AS project_code, i.item ->> 'rule_id' AS rule_id,
           i.item ->> 'why' AS why, i.item ->> 'reason' AS reason,
           CAST(i.item ->> 'window_start' AS date) AS window_start,
           CAST(i.item ->> 'window_end' AS date) AS window_end
    FROM (
        SELECT DISTINCT ON (company_id) * FROM not_evaluated
        ORDER BY company_id, computed_at DESC, id DESC
    ) n CROSS JOIN LATERAL jsonb_array_elements(n.items) WITH ORDINALITY i(item, n)
    """,
    descending=False,
)

DECISION_CHANGE = View(changes.SELECT)  # a company's decision history, newest first

MONTH_METRIC = View(
    "SELECT * FROM project_month_metric",
    cursor="month",
    parse=date.fromisoformat,
)

MONTH_FLAGS = View(
    "SELECT project_id, month, final, evaluated, outage_slots FROM project_month_metric",
    cursor="month",
    parse=date.fromisoformat,
)
"""What a compliance grid shows of each month besides its findings."""

QUARANTINE = View(
    f"""
    SELECT q.id, q.reason, q.detail, q.datastream_platform_id, q.platform_obs_id,
           q.phenomenon_time, q.result_time, q.raw, q.received_at,
           w.id AS well_id, w.code AS well_code, wv.project_id, pv.company_id
    FROM quarantine q
    JOIN datastream d ON d.platform_id = q.datastream_platform_id
    JOIN well w ON w.id = d.well_id
    JOIN well_version wv ON wv.well_id = w.id
    JOIN project_version pv ON pv.project_id = wv.project_id
    WHERE {_current("well_version", "wv", "well_id")}
      AND {_current("project_version", "pv", "project_id")}
      -- a withdrawn meter_glitch record no longer counts, nor does its withdrawal
      AND q.withdraws_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM quarantine w WHERE w.withdraws_id = q.id)
    """
)


# ---------------------------------------------------------------- reads by parent


def _order(view: View) -> str:
    return f"r.{view.cursor} {'DESC' if view.descending else 'ASC'}"


async def children(
    conn: AsyncConnection,
    view: View,
    column: str,
    ids: Iterable[int],
    since: tuple[str, Any] | None = None,
) -> dict[int, list[Row]]:
    """Every row of `view` whose `column` is one of `ids` (e.g. "id" for rows by id); with
    `since` (column, value), only rows whose column is at least that value."""
    wanted = sorted(set(ids))
    out: dict[int, list[Row]] = {i: [] for i in wanted}
    if not wanted:
        return out
    params: dict[str, Any] = {"ids": wanted}
    where = f"r.{column} = ANY(:ids)"
    if since is not None:
        where += f" AND r.{since[0]} >= :since"
        params["since"] = since[1]
    rows = await conn.execute(
        sa.text(
            f"SELECT r.* FROM ({view.sql}) r WHERE {where} ORDER BY r.{column}, {_order(view)}"
        ),
        params,
    )
    for row in rows.mappings():
        out[row[column]].append(dict(row))
    return out


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    has_next: bool


async def pages(
    conn: AsyncConnection,
    view: View,
    column: str,
    ids: Sequence[int],
    first: int,
    after: Any = None,
    filters: Sequence[tuple[str, Sequence[Any]]] = (),
) -> dict[int, Page]:
    """Per parent id, its first `first` rows after the cursor value `after`: one query for all
    parents (top-N per parent by a lateral join). `filters` are (column, allowed values)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    where = [f"r.{column} = k.parent"]
    params: dict[str, Any] = {"ids": wanted, "limit": first + 1}
    if after is not None:
        where.append(f"r.{view.cursor} {'<' if view.descending else '>'} :after")
        params["after"] = after
    for n, (col, values) in enumerate(filters):
        where.append(f"r.{col} = ANY(:f{n})")
        params[f"f{n}"] = list(values)
    rows = await conn.execute(
        sa.text(
            f"""
            SELECT x.* FROM unnest(CAST(:ids AS bigint[])) AS k(parent)
            CROSS JOIN LATERAL (
                SELECT r.* FROM ({view.sql}) r WHERE {" AND ".join(where)}
                ORDER BY {_order(view)} LIMIT :limit
            ) x
            """
        ),
        params,
    )
    found: dict[int, list[Row]] = {i: [] for i in wanted}
    for row in rows.mappings():
        found[row[column]].append(dict(row))
    key = view.cursor
    out = {}
    for parent, got in found.items():
        got.sort(key=lambda r: r[key], reverse=view.descending)
        out[parent] = Page(got[:first], len(got) > first)
    return out


# ---------------------------------------------------------------- companies and supervision

_COMPANY = f"""
    SELECT c.id, c.credit_code, {company_name("c")} AS name, c.created_at,
           s.grade, s.score, s.computed_at AS scored_at, l.id AS listing_id
    FROM company c
    LEFT JOIN LATERAL (
        SELECT grade, score, computed_at FROM score_snapshot WHERE company_id = c.id
        ORDER BY computed_at DESC, id DESC LIMIT 1
    ) s ON true
    LEFT JOIN LATERAL (
        SELECT id FROM listing
        WHERE company_id = c.id AND max_end > :now
          AND NOT EXISTS (SELECT 1 FROM listing_end e WHERE e.listing_id = listing.id)
        ORDER BY started_at DESC, id DESC LIMIT 1
    ) l ON true
"""
"""Company, name, latest grade and active listing, as registry.standing reads them."""

LEGACY_ZONE_RULE = "LEGACY_IN_BANNED_ZONE"
"""A project in a banned zone from before the ban: no deduction, but key supervision."""


@dataclass(frozen=True)
class CompanyFilter:
    grades: Sequence[str] = ()
    city: str | None = (
        None  # a project of the company is in this city (prefix: 太原 ⊃ 太原市小店区)
    )
    listed: bool | None = None
    search: str | None = None  # part of the name, or the start of the credit code


async def companies(
    conn: AsyncConnection, filt: CompanyFilter, now: datetime, first: int, after: int | None
) -> Page:
    """Companies with a credit file, by id, filtered."""
    where, params = [], {"now": now, "limit": first + 1}
    if after is not None:
        where.append("c.id > :after")
        params["after"] = after
    if filt.grades:
        where.append("s.grade = ANY(:grades)")
        params["grades"] = list(filt.grades)
    if filt.listed is not None:
        where.append("(l.id IS NOT NULL) = :listed")
        params["listed"] = filt.listed
    if filt.city:
        where.append(
            f"""EXISTS (SELECT 1 FROM project_version pv WHERE pv.company_id = c.id
                AND {_current("project_version", "pv", "project_id")}
                AND starts_with(pv.city, :city))"""
        )
        params["city"] = filt.city
    if filt.search:
        where.append(
            f"(strpos(lower({company_name('c')}), lower(:search)) > 0 "
            "OR starts_with(c.credit_code, upper(:search)))"
        )
        params["search"] = filt.search
    sql = (
        _COMPANY
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.id LIMIT :limit"
    )
    rows = [dict(r) for r in (await conn.execute(sa.text(sql), params)).mappings()]
    return Page(rows[:first], len(rows) > first)


async def supervision_list(
    conn: AsyncConnection,
    now: datetime,
    today: date,
    every_months: int,
    first: int,
    after: tuple[date, int] | None,
) -> Page:
    """The key-supervision list: companies graded C or D, listed, or with a project in a banned
    zone from before the ban (LEGACY_IN_BANNED_ZONE, `legacy_zone`), with their last inspection
    and the next one due (`every_months` after it; today when never inspected), soonest due
    first."""
    keyset = "WHERE (due.next_due, due.id) > (:after_due, :after_id)" if after else ""
    legacy = f"""EXISTS (SELECT 1 FROM credit_finding f WHERE f.company_id = q.id
        AND f.rule_id = '{LEGACY_ZONE_RULE}' AND {finding_counts("f")})"""
    sql = f"""
        SELECT * FROM (
            SELECT x.*, i.id AS last_inspection_id, i.inspected_on AS last_inspected_on,
                   coalesce(CAST(i.inspected_on + make_interval(months => :every) AS date),
                            :today) AS next_due
            FROM (SELECT q.*, {legacy} AS legacy_zone FROM ({_COMPANY}) q) x
            LEFT JOIN LATERAL (
                SELECT id, inspected_on FROM inspection WHERE company_id = x.id
                ORDER BY inspected_on DESC, id DESC LIMIT 1
            ) i ON true
            WHERE x.grade IN ('C', 'D') OR x.listing_id IS NOT NULL OR x.legacy_zone
        ) due {keyset}
        ORDER BY due.next_due, due.id LIMIT :limit
    """
    params: dict[str, Any] = {
        "now": now,
        "today": today,
        "every": every_months,
        "limit": first + 1,
    }
    if after:
        params["after_due"], params["after_id"] = after
    rows = [dict(r) for r in (await conn.execute(sa.text(sql), params)).mappings()]
    return Page(rows[:first], len(rows) > first)


# ---------------------------------------------------------------- derived numbers


def same_layer_ratio(layers: Sequence[dict[str, Any]]) -> float | None:
    """Σ_layers min(reinjection, extraction) / Σ extraction — the reinjection ratio as the rulebook
    measures it (REINJ_RATIO: water put back into another layer offsets nothing); None without
    extraction."""
    extraction = sum(layer.get("extraction_m3") or 0.0 for layer in layers)
    if extraction <= 0:
        return None
    same = sum(
        min(layer.get("reinjection_m3") or 0.0, layer.get("extraction_m3") or 0.0)
        for layer in layers
    )
    return same / extraction
