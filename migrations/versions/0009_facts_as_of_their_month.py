"""registry versions take effect at a time; month facts; not-evaluated records; companies marked
for scoring

- project_version, well_version, permit: `effective_from` (NULL: when recorded; an entity's first
  version is in force from the beginning). The audit digest of a row leaves out a column added
  after the table's rows were first audited while it is NULL, so the rows recorded before this
  revision keep their digests (and a value set on one of them still shows as an alteration).
- project_month_metric: the registry facts the month is judged with, and whether it had no
  operating well. rollup_state is cleared: the next rollup recomputes every month with the facts
  in force during it (and the heating season before the first judged one).
- not_evaluated: append-only, audited.
- score_dirty: companies whose scoring inputs changed, marked by statement triggers on the
  records scoring reads; score_run_state: what the last full scoring run judged with. They
  replace score_state (a per-company inputs digest, which meant loading every company's inputs
  to find that nothing changed).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("project_version", "well_version", "permit")

# Columns added to audited tables after their first rows were audited: a row's digest leaves
# them out while they are NULL.
_ROW_DIGEST = """
CREATE FUNCTION geocredit_row_digest(r jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to((r - ARRAY(
        SELECT k FROM unnest(ARRAY['effective_from']) k WHERE r -> k = 'null'::jsonb
    ))::text, 'UTF8')), 'hex')
$$
"""

_AUDIT_INSERT = """
CREATE OR REPLACE FUNCTION geocredit_audit_insert() RETURNS trigger LANGUAGE plpgsql
SET timezone = 'UTC' AS $$
DECLARE
    prev text;
    actor text := coalesce(nullif(current_setting('geocredit.actor', true), ''), session_user);
    now_ts timestamptz := clock_timestamp();
    digest text := {digest};
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('geocredit.audit_chain'));
    SELECT hash INTO prev FROM audit_log ORDER BY id DESC LIMIT 1;
    INSERT INTO audit_log (at, actor, table_name, row_id, row_digest, prev_hash, hash)
    VALUES (now_ts, actor, TG_TABLE_NAME, NEW.id, digest, coalesce(prev, ''),
            geocredit_audit_hash(coalesce(prev, ''), TG_TABLE_NAME, NEW.id, digest, actor,
                                 now_ts));
    RETURN NULL;
END $$
"""
_OLD_DIGEST = "encode(sha256(convert_to(to_jsonb(NEW)::text, 'UTF8')), 'hex')"
_NEW_DIGEST = "geocredit_row_digest(to_jsonb(NEW))"

# Which companies an inserted row concerns (its statement's rows are `new_rows`). A project's or
# well's row concerns every company the project (or well) has belonged to.
_PROJECT_COMPANIES = "SELECT company_id FROM project_version WHERE project_id IN ({})"
DIRTY = {
    "company_version": "SELECT company_id FROM new_rows",
    "project_version": "SELECT company_id FROM new_rows UNION "
    + _PROJECT_COMPANIES.format("SELECT project_id FROM new_rows"),
    "well_version": _PROJECT_COMPANIES.format(
        "SELECT project_id FROM well_version WHERE well_id IN (SELECT well_id FROM new_rows)"
    ),
    "permit": _PROJECT_COMPANIES.format("SELECT project_id FROM new_rows"),
    "aquifer_limit": _PROJECT_COMPANIES.format(
        "SELECT project_id FROM well_version WHERE aquifer IN (SELECT aquifer FROM new_rows)"
    ),
    "monthly_report": _PROJECT_COMPANIES.format("SELECT project_id FROM new_rows"),
    "inspection": "SELECT company_id FROM new_rows",
    "inspection_finding": "SELECT company_id FROM inspection "
    "WHERE id IN (SELECT inspection_id FROM new_rows)",
    "rectification": "SELECT i.company_id FROM inspection i "
    "JOIN inspection_finding f ON f.inspection_id = i.id "
    "WHERE f.id IN (SELECT inspection_finding_id FROM new_rows)",
    "post_evaluation": "SELECT company_id FROM new_rows",
    "appeal": "SELECT company_id FROM new_rows",
    "appeal_decision": "SELECT company_id FROM appeal WHERE id IN (SELECT appeal_id FROM new_rows)",
    "listing": "SELECT company_id FROM new_rows",
    "listing_end": "SELECT company_id FROM listing WHERE id IN (SELECT listing_id FROM new_rows)",
    "credit_repair": "SELECT company_id FROM new_rows",
    "repair_decision": "SELECT company_id FROM credit_repair "
    "WHERE id IN (SELECT repair_id FROM new_rows)",
}


def upgrade() -> None:
    for table in VERSIONED:
        op.add_column(table, sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True))
    op.execute(_ROW_DIGEST)
    op.execute(_AUDIT_INSERT.replace("{digest}", _NEW_DIGEST))

    op.add_column("project_month_metric", sa.Column("project_type", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("project_month_metric", sa.Column("permit_annual_m3", sa.Float(), nullable=True))
    op.add_column("project_month_metric", sa.Column("permit_daily_m3", sa.Float(), nullable=True))
    op.add_column("project_month_metric", sa.Column("no_operating_wells", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("DELETE FROM rollup_state")

    op.create_table("not_evaluated",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("company_id", sa.Integer(), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rulebook_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("job_run_id", sa.Integer(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
    sa.ForeignKeyConstraint(["job_run_id"], ["job_run.id"]),
    sa.PrimaryKeyConstraint("id")
    )
    op.create_index("ix_not_evaluated_latest", "not_evaluated", ["company_id", "computed_at", "id"], unique=False)
    op.execute(
        "CREATE TRIGGER not_evaluated_audit AFTER INSERT ON not_evaluated "
        "FOR EACH ROW EXECUTE FUNCTION geocredit_audit_insert()"
    )
    op.execute(
        "CREATE TRIGGER not_evaluated_append_only BEFORE UPDATE OR DELETE ON not_evaluated "
        "FOR EACH ROW EXECUTE FUNCTION geocredit_reject_change()"
    )
    op.execute(
        "CREATE TRIGGER not_evaluated_no_truncate BEFORE TRUNCATE ON not_evaluated "
        "FOR EACH STATEMENT EXECUTE FUNCTION geocredit_reject_change()"
    )

    op.create_table("score_dirty",
    sa.Column("company_id", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("company_id")
    )
    op.create_table("score_run_state",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("rulebook_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("watermark_day", sa.Date(), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    sa.PrimaryKeyConstraint("id")
    )
    for table, companies in DIRTY.items():
        op.execute(
            f"""
            CREATE FUNCTION geocredit_score_dirty_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO score_dirty (company_id)
                SELECT DISTINCT company_id FROM ({companies}) c WHERE company_id IS NOT NULL
                ON CONFLICT DO NOTHING;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_score_dirty AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION geocredit_score_dirty_{table}()"
        )
    # Every company is scored by the first run after this revision (score_state's digests
    # no longer decide that).
    op.execute("INSERT INTO score_dirty (company_id) SELECT id FROM company")
    op.drop_table("score_state")


def downgrade() -> None:
    op.create_table("score_state",
    sa.Column("company_id", sa.Integer(), nullable=False),
    sa.Column("inputs_digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("rulebook_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column("window_start", sa.Date(), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("company_id")
    )
    for table in DIRTY:
        op.execute(f"DROP TRIGGER {table}_score_dirty ON {table}")
        op.execute(f"DROP FUNCTION geocredit_score_dirty_{table}()")
    op.drop_table("score_run_state")
    op.drop_table("score_dirty")
    op.drop_index("ix_not_evaluated_latest", table_name="not_evaluated")
    op.drop_table("not_evaluated")
    op.drop_column("project_month_metric", "no_operating_wells")
    op.drop_column("project_month_metric", "permit_daily_m3")
    op.drop_column("project_month_metric", "permit_annual_m3")
    op.drop_column("project_month_metric", "project_type")
    op.execute("DELETE FROM rollup_state")
    op.execute(_AUDIT_INSERT.replace("{digest}", _OLD_DIGEST))
    op.execute("DROP FUNCTION geocredit_row_digest(jsonb)")
    for table in VERSIONED:
        op.drop_column(table, "effective_from")
