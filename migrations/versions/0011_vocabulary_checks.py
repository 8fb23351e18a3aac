"""the vocabulary in the database: a CHECK constraint on every enum column

Each column that holds one of the program's enums (registry/vocabulary.py, scoring/model.py)
stays text and gets a CHECK constraint `<table>_<column>` listing the enum's values; the values
are written out here, as they are at this revision. webhook_delivery.status has its constraint
since 0010. Stored rows are checked first: a value outside its enum stops the upgrade with the
table, column and values named (nothing is changed).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROJECT_TYPES = ("CLOSED_LOOP", "SHALLOW_WATER_SOURCE", "MEDIUM_DEEP", "DIRECT_USE")
_GRADES = ("A", "B", "C", "D")
_DECISIONS = ("ALLOW", "RESTRICT", "BLOCK")

CHECKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("project_version", "type"): _PROJECT_TYPES,
    ("well_version", "role"): ("EXTRACTION", "REINJECTION", "MONITORING"),
    ("permit", "kind"): ("PROJECT_FILING", "WATER_PERMIT", "MINING_RIGHT", "ENVIRONMENTAL_ASSESSMENT"),
    ("datastream", "accumulation"): ("interval", "cumulative"),
    ("inspection_finding", "severity"): ("MINOR", "MAJOR", "CRITICAL"),
    ("post_evaluation", "verdict"): ("PASS", "CONDITIONAL", "FAIL"),
    ("credit_finding", "severity"): ("WARNING", "MINOR", "MAJOR", "CRITICAL"),
    ("credit_finding", "source"): ("METRICS", "REVIEWER", "REGISTRY"),
    ("finding_event", "kind"): ("VOIDED", "OVERTURNED", "REPAIRED"),
    ("score_snapshot", "grade"): _GRADES,
    ("listing_end", "how"): ("REPAIRED", "EXPIRED", "WITHDRAWN", "LIFTED", "EXTENDED"),
    ("appeal_decision", "outcome"): ("UPHELD", "OVERTURNED"),
    ("repair_decision", "outcome"): ("APPROVED", "REJECTED"),
    ("api_client", "role"): ("approval_system", "reviewer", "admin", "scheduler"),
    ("application", "kind"): (
        "PROJECT_FILING",
        "WATER_PERMIT",
        "MINING_RIGHT",
        "ENVIRONMENTAL_ASSESSMENT",
        "NEW_WELL",
    ),
    ("decision", "decision"): _DECISIONS,
    ("decision", "grade"): _GRADES,
    ("decision_change", "decision"): _DECISIONS,
    ("decision_change", "grade"): _GRADES,
    ("job_run", "status"): ("RUNNING", "SUCCEEDED", "FAILED"),
    ("project_month_metric", "project_type"): _PROJECT_TYPES,
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    conn = op.get_bind()
    stray = []
    for (table, column), values in CHECKS.items():
        found = conn.scalars(
            sa.text(f"SELECT DISTINCT {column} FROM {table} WHERE NOT ({_in(column, values)})")
        ).all()
        if found:
            stray.append(f"{table}.{column}: {', '.join(map(repr, sorted(found)))}")
    if stray:
        raise RuntimeError("stored values outside their enum: " + "; ".join(stray))
    for (table, column), values in CHECKS.items():
        op.create_check_constraint(f"{table}_{column}", table, _in(column, values))


def downgrade() -> None:
    for table, column in reversed(CHECKS):
        op.drop_constraint(f"{table}_{column}", table, type_="check")
