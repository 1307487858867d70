"""change propagation: the changes table (vendor webhook deliveries as steps) and their dead letters

A dead letter now belongs to a registration's step or to a change: dead_letters.registration_id
becomes nullable and dead_letters.change_id (FK changes.id) is added.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHANGE_FK = "fk_dead_letters_change_id_changes"


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    op.create_index("ix_changes_subject", "changes", ["subject"])
    op.create_index("ix_changes_state", "changes", ["state"])
    op.create_index("ix_changes_queued_at", "changes", ["queued_at"])
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("registration_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("change_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(CHANGE_FK, "changes", ["change_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_dead_letters_change_id", ["change_id"])


def downgrade() -> None:
    op.execute("DELETE FROM dead_letters WHERE registration_id IS NULL")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ix_dead_letters_change_id")
        batch.drop_constraint(CHANGE_FK, type_="foreignkey")
        batch.drop_column("change_id")
        batch.alter_column("registration_id", existing_type=sa.String(36), nullable=False)
    op.drop_index("ix_changes_queued_at", table_name="changes")
    op.drop_index("ix_changes_state", table_name="changes")
    op.drop_index("ix_changes_subject", table_name="changes")
    op.drop_table("changes")
