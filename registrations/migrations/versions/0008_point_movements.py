"""point movements: the ledger of points Membersync originates in Smaregi (sign-up bonus), sent once

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "point_movements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column(
            "registration_id",
            sa.String(36),
            sa.ForeignKey("registrations.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transaction_head_ids", sa.JSON(), nullable=True),
        sa.Column("balance_after", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("reason", "registration_id", name="uq_point_movements_reason_registration"),
    )
    op.create_index("ix_point_movements_registration_id", "point_movements", ["registration_id"])
    op.create_index("ix_point_movements_customer_id", "point_movements", ["customer_id"])
    op.create_index("ix_point_movements_state", "point_movements", ["state"])


def downgrade() -> None:
    op.drop_index("ix_point_movements_state", table_name="point_movements")
    op.drop_index("ix_point_movements_customer_id", table_name="point_movements")
    op.drop_index("ix_point_movements_registration_id", table_name="point_movements")
    op.drop_table("point_movements")
