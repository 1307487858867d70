"""The ops console's audit trail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("dead_letter_id", sa.Integer(), nullable=True),
        sa.Column("registration_id", sa.String(36), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
    )
    op.create_index("ix_ops_audit_at", "ops_audit", ["at"])
    op.create_index("ix_ops_audit_dead_letter_id", "ops_audit", ["dead_letter_id"])
    op.create_index("ix_ops_audit_registration_id", "ops_audit", ["registration_id"])


def downgrade() -> None:
    op.drop_index("ix_ops_audit_registration_id", "ops_audit")
    op.drop_index("ix_ops_audit_dead_letter_id", "ops_audit")
    op.drop_index("ix_ops_audit_at", "ops_audit")
    op.drop_table("ops_audit")
