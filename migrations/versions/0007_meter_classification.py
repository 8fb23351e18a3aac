"""cumulative meters classified: daily meter state and estimates, withdrawable glitch records

daily_rollup gains the estimated part of a day's volume and the meter state its next day is
classified from; quarantine rows can withdraw an earlier meter_glitch record (append-only: a new
row references the old one). Every stored day of a cumulative datastream is marked dirty, so the
next rollup classifies its readings.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "daily_rollup",
        sa.Column("estimated_m3", sa.Float(), server_default="0", nullable=False),
    )
    op.add_column("daily_rollup", sa.Column("meter_at", sa.DateTime(timezone=True)))
    op.add_column("daily_rollup", sa.Column("meter_reading", sa.Float()))
    op.add_column("daily_rollup", sa.Column("meter_tail", sa.String()))
    op.add_column("quarantine", sa.Column("withdraws_id", sa.BigInteger()))
    op.create_foreign_key(
        "quarantine_withdraws_id_fkey", "quarantine", "quarantine", ["withdraws_id"], ["id"]
    )
    op.create_unique_constraint("quarantine_withdraws_id_key", "quarantine", ["withdraws_id"])
    op.create_index(
        "ix_quarantine_meter_glitch",
        "quarantine",
        ["datastream_platform_id", "phenomenon_time"],
        postgresql_where=sa.text("reason = 'meter_glitch'"),
    )
    op.execute(
        """
        INSERT INTO dirty_day (datastream_id, day)
        SELECT r.datastream_id, r.day FROM daily_rollup r
        JOIN datastream d ON d.id = r.datastream_id
        WHERE d.accumulation = 'cumulative'
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_meter_glitch", table_name="quarantine")
    op.drop_constraint("quarantine_withdraws_id_key", "quarantine", type_="unique")
    op.drop_constraint("quarantine_withdraws_id_fkey", "quarantine", type_="foreignkey")
    op.drop_column("quarantine", "withdraws_id")
    op.drop_column("daily_rollup", "meter_tail")
    op.drop_column("daily_rollup", "meter_reading")
    op.drop_column("daily_rollup", "meter_at")
    op.drop_column("daily_rollup", "estimated_m3")
