"""The audit chain: every insert into a credit-file table is chained into audit_log by a trigger
(migration 0001). `verify` proves the chain intact and every audited row unchanged."""

from dataclasses import dataclass, field

import sqlalchemy as sa

from registry.models import APPEND_ONLY_TABLES

_ROW_DIGEST = "encode(sha256(convert_to(to_jsonb(t)::text, 'UTF8')), 'hex')"


@dataclass
class AuditReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)  # the first `max_problems` of them
    problem_count: int = 0
    max_problems: int = 100

    @property
    def intact(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)


def verify(conn: sa.Connection, max_problems: int = 100) -> AuditReport:
    report = AuditReport(max_problems=max_problems)
    # Digests were taken in UTC; take them the same way.
    conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))
    report.entries = conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
    broken = conn.execute(
        sa.text(
            """
            SELECT id, table_name, row_id, prev_hash = coalesce(lag(hash) OVER w, '') AS linked,
                   hash = geocredit_audit_hash(prev_hash, table_name, row_id, row_digest, actor, at)
                       AS sealed
            FROM audit_log WINDOW w AS (ORDER BY id)
            """
        )
    )
    for entry_id, table, row_id, linked, sealed in broken:
        if not linked:
            report.add(
                f"audit entry {entry_id} ({table} {row_id}) does not follow the entry before it: "
                "an entry was removed or inserted"
            )
        if not sealed:
            report.add(f"audit entry {entry_id} ({table} {row_id}) was altered")
    for table in APPEND_ONLY_TABLES:
        rows = conn.execute(
            sa.text(
                f"""
                SELECT a.id, a.row_id, t.id, a.row_digest = {_ROW_DIGEST}
                FROM (SELECT id, row_id, row_digest FROM audit_log WHERE table_name = :t) a
                FULL JOIN {table} t ON t.id = a.row_id
                WHERE a.id IS NULL OR t.id IS NULL OR a.row_digest <> {_ROW_DIGEST}
                """
            ),
            {"t": table},
        )
        for entry_id, audited_row, row_id, _ in rows:
            if entry_id is None:
                report.add(f"{table} row {row_id} has no audit entry")
            elif row_id is None:
                report.add(f"{table} row {audited_row} was removed")
            else:
                report.add(f"{table} row {row_id} was altered after it was recorded")
    return report
