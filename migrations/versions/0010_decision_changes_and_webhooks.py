"""decision changes (the change feed approval systems follow) and their webhook outbox

decision_change is a credit-file table: append-only and audited. webhook_receiver and
webhook_delivery are operational (mutable): a delivery's attempts and status move.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_change",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("grade", sa.String(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("restricted_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rulebook_version", sa.String(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
        sa.ForeignKeyConstraint(["previous_id"], ["decision_change.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_decision_change_company_id", "decision_change", ["company_id"])
    op.create_table(
        "webhook_receiver",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("after_change_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("receiver_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["decision_change.id"]),
        sa.ForeignKeyConstraint(["receiver_id"], ["webhook_receiver.id"]),
        sa.PrimaryKeyConstraint("receiver_id", "change_id"),
        sa.CheckConstraint(
            "status IN ('PENDING', 'DELIVERED', 'FAILED')", name="webhook_delivery_status"
        ),
    )
    for sql in (
        "CREATE TRIGGER decision_change_audit AFTER INSERT ON decision_change "
        "FOR EACH ROW EXECUTE FUNCTION geocredit_audit_insert()",
        "CREATE TRIGGER decision_change_append_only BEFORE UPDATE OR DELETE ON decision_change "
        "FOR EACH ROW EXECUTE FUNCTION geocredit_reject_change()",
        "CREATE TRIGGER decision_change_no_truncate BEFORE TRUNCATE ON decision_change "
        "FOR EACH STATEMENT EXECUTE FUNCTION geocredit_reject_change()",
    ):
        op.execute(sql)


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_receiver")
    op.drop_table("decision_change")
