"""index for the latest score snapshot of a company

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_score_snapshot_latest", "score_snapshot", ["company_id", "computed_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_score_snapshot_latest", table_name="score_snapshot")
