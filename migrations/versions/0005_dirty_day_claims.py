"""a counter of rollup claims on dirty_day, so that ingest can skip marks it has sent already

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE dirty_day_claims")


def downgrade() -> None:
    op.execute("DROP SEQUENCE dirty_day_claims")
