"""A company's standing as stored: its latest score snapshot, its active listing and the findings
behind both — read set-based (one query for any number of credit codes), never recomputed.

The decision itself is scoring's (`scoring.decision.decide`); this module only reads."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from registry.current import company_name, finding_counts, recorded_by, under_appeal
from scoring.decision import ListingStanding, Reason, Standing, most_serious_first
from scoring.model import Finding, FindingStatus, Grade, Severity, Source


@dataclass(frozen=True, slots=True)
class FiledStanding:
    """A company that has a credit file, and what its file says now."""

    company_id: int
    credit_code: str
    name: str
    snapshot_id: int | None
    listing_id: int | None
    standing: Standing


@dataclass(frozen=True, slots=True)
class CompanyRef:
    company_id: int
    credit_code: str
    name: str


Ranked = dict[int, tuple[int, Reason]]  # finding id → (rank, most serious first; its reason)


def _standings_sql(at: str | None) -> str:
    """A company row per code, repeated once per finding of its snapshot and listing that still
    counts (a listing's by key: a finding recorded again with new evidence still stands behind
    it); a pending appeal leaves a finding counting, shown as UNDER_APPEAL. One round trip: a
    second query for the findings cost the API more CPU than the join. With `at` (as of an
    instant): only what was recorded by then — the file then, with the listing active then."""
    companies = f"""
        SELECT c.id AS company_id, c.credit_code, {company_name("c", at)} AS name,
               s.id AS snapshot_id, s.computed_at, s.score, s.grade, s.rulebook_version,
               s.finding_ids AS snapshot_findings,
               l.id AS listing_id, l.critical, l.started_at, l.min_end, l.max_end,
               l.finding_keys AS listing_keys, ne.summary AS not_evaluated
        FROM company c
        LEFT JOIN LATERAL (
            SELECT id, computed_at, score, grade, rulebook_version, finding_ids
            FROM score_snapshot WHERE company_id = c.id{recorded_by("score_snapshot", at)}
            ORDER BY computed_at DESC, id DESC LIMIT 1
        ) s ON true
        LEFT JOIN LATERAL (
            SELECT id, critical, started_at, min_end, max_end,
                   ARRAY(SELECT x.key FROM credit_finding x WHERE x.id IN (
                       SELECT jsonb_array_elements_text(listing.finding_ids)::bigint
                   )) AS finding_keys
            FROM listing
            WHERE company_id = c.id AND max_end > %(now)s{recorded_by("listing", at)}
              AND NOT EXISTS (SELECT 1 FROM listing_end e
                              WHERE e.listing_id = listing.id{recorded_by("e", at)})
            ORDER BY started_at DESC, id DESC LIMIT 1
        ) l ON true
        LEFT JOIN LATERAL (
            SELECT summary FROM not_evaluated WHERE company_id = c.id{recorded_by("not_evaluated", at)}
            ORDER BY computed_at DESC, id DESC LIMIT 1
        ) ne ON true
        WHERE c.credit_code = ANY(%(codes)s){"" if at is None else f" AND c.created_at <= {at}"}
    """
    return f"""
        SELECT c.*, f.*
        FROM ({companies}) c
        LEFT JOIN LATERAL (
            SELECT f.id, f.key, f.rule_id, f.policy_clause, f.severity, f.deduction,
                   p.code AS project_code, f.window_start, f.window_end, f.final, f.source,
                   f.message, f.evidence, {under_appeal("f", at)} AS under_appeal
            FROM credit_finding f LEFT JOIN project p ON p.id = f.project_id
            WHERE f.id IN (
                SELECT jsonb_array_elements_text(c.snapshot_findings)::bigint
                UNION SELECT x.id FROM credit_finding x
                      WHERE x.company_id = c.company_id AND x.key = ANY(c.listing_keys)
            )
              AND {finding_counts("f", at)}
        ) f ON true
    """


_STANDINGS = _standings_sql(None)
_STANDINGS_AS_OF = _standings_sql("%(now)s")


_NAMED = f"""
    SELECT c.id AS company_id, c.credit_code, {company_name("c")} AS name FROM company c
"""


Connection = AsyncSession | AsyncConnection | psycopg.AsyncConnection


async def _fetch(conn: Connection, sql: str, params: dict) -> list[Any]:
    """Rows as named tuples straight from psycopg, on the caller's connection and transaction:
    SQLAlchemy's result layer costs more than the queries themselves for a 1,000-code batch."""
    if isinstance(conn, AsyncSession):
        conn = await conn.connection()
    if isinstance(conn, AsyncConnection):
        conn = (await conn.get_raw_connection()).driver_connection
    async with conn.cursor(row_factory=namedtuple_row) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


async def companies_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, CompanyRef]:
    rows = await _fetch(conn, _NAMED + " WHERE c.id = ANY(%(ids)s)", {"ids": list(ids)})
    return {r.company_id: CompanyRef(r.company_id, r.credit_code, r.name) for r in rows}


async def load_standings(
    conn: Connection, codes: Iterable[str], now: datetime, *, as_of: bool = False
) -> dict[str, FiledStanding | None]:
    """Standing per normalised credit code; None when the registry has no file for the code.
    `as_of`: the standing `now` was a past instant had, from what was recorded by then."""
    wanted = list(dict.fromkeys(codes))
    result: dict[str, FiledStanding | None] = dict.fromkeys(wanted)
    if not wanted:
        return result
    sql = _STANDINGS_AS_OF if as_of else _STANDINGS
    rows = await _fetch(conn, sql, {"codes": wanted, "now": now})
    found = {row.id: _finding(row) for row in rows if row.id is not None}  # once per finding
    order = sorted(found.values(), key=lambda pair: most_serious_first(pair[1]))
    reasons: Ranked = {fid: (rank, Reason.from_finding(f)) for rank, (fid, f) in enumerate(order)}
    keyed = {(row.company_id, row.key): row.id for row in rows if row.id is not None}
    rows = list({row.company_id: row for row in rows}.values())  # once per company
    for row in rows:
        listed = [
            keyed[k]
            for k in ((row.company_id, key) for key in row.listing_keys or ())
            if k in keyed
        ]
        result[row.credit_code] = FiledStanding(
            company_id=row.company_id,
            credit_code=row.credit_code,
            name=row.name,
            snapshot_id=row.snapshot_id,
            listing_id=row.listing_id,
            standing=_standing(row, reasons, listed),
        )
    return result


def _behind(ids: Sequence[Any] | None, reasons: Ranked) -> tuple[Reason, ...]:
    """The reasons of these finding ids that still count, most serious first."""
    found = sorted(reasons[int(i)] for i in ids or () if int(i) in reasons)
    return tuple(reason for _, reason in found)


def _standing(row: Any, reasons: Ranked, listed: list[int]) -> Standing:
    listing = None
    if row.listing_id is not None:
        listing = ListingStanding(
            listing_id=str(row.listing_id),
            critical=row.critical,
            started_at=row.started_at,
            min_end=row.min_end,
            max_end=row.max_end,
            reasons=_behind(listed, reasons),
        )
    if row.snapshot_id is None:
        return Standing(listing=listing)
    return Standing(
        scored_at=row.computed_at,
        grade=Grade(row.grade),
        score=row.score,
        rulebook_version=row.rulebook_version,
        reasons=_behind(row.snapshot_findings, reasons),
        listing=listing,
        not_evaluated=row.not_evaluated,
    )


def stored_finding(row: Any, status: FindingStatus = FindingStatus.ACTIVE) -> Finding:
    """A credit_finding row as scoring's Finding."""
    return Finding(
        key=row.key,
        rule_id=row.rule_id,
        policy_clause=row.policy_clause,
        severity=Severity(row.severity),
        deduction=row.deduction,
        project_code=row.project_code,
        window_start=row.window_start,
        window_end=row.window_end,
        final=row.final,
        source=Source(row.source),
        message=row.message,
        evidence=row.evidence,
        status=status,
    )


def _finding(row: Any) -> tuple[int, Finding]:
    status = FindingStatus.UNDER_APPEAL if row.under_appeal else FindingStatus.ACTIVE
    return row.id, stored_finding(row, status)
