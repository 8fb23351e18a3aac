"""observation partitions refuse TRUNCATE too

A statement trigger on a partitioned table is not cloned to its partitions, so TRUNCATE of one
month's partition bypassed the append-only guard of `observation`. The partition function now
guards each partition it creates, and the existing partitions are guarded here.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTITION_FUNCTION = """
CREATE OR REPLACE FUNCTION geocredit_ensure_observation_partition(month date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'observation_' || to_char(first, 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF observation '
            'FOR VALUES FROM (%L) TO (%L)',
            name, first::timestamp AT TIME ZONE 'UTC',
            (first + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        {guard}
    END IF;
END $$
"""
_GUARD = """EXECUTE format(
            'CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION geocredit_reject_change()',
            name || '_no_truncate', name);"""

_EACH_PARTITION = """
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'observation'::regclass LOOP
        EXECUTE format({statement}, part::text || '_no_truncate', part);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(_PARTITION_FUNCTION.replace("{guard}", _GUARD))
    op.execute(
        _EACH_PARTITION.replace(
            "{statement}",
            "'CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %s "
            "FOR EACH STATEMENT EXECUTE FUNCTION geocredit_reject_change()'",
        )
    )


def downgrade() -> None:
    op.execute(_EACH_PARTITION.replace("{statement}", "'DROP TRIGGER IF EXISTS %I ON %s'"))
    op.execute(_PARTITION_FUNCTION.replace("{guard}", ""))
