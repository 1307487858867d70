"""dead letters close the loop: a re-failure's predecessor, what resolved it and when; the audit's way in

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        # The replayed dead letter this one failed again after (NULL: a first failure).
        batch.add_column(sa.Column("previous_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_dead_letters_previous_id", ["previous_id"])
        batch.create_foreign_key(
            "fk_dead_letters_previous_id", "dead_letters", ["previous_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("ops_audit") as batch:
        # console, cli or flower (NULL: a row written before the column existed, the console's).
        batch.add_column(sa.Column("via", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ops_audit") as batch:
        batch.drop_column("via")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_constraint("fk_dead_letters_previous_id", type_="foreignkey")
        batch.drop_index("ix_dead_letters_previous_id")
        batch.drop_column("closed_at")
        batch.drop_column("resolved_by")
        batch.drop_column("previous_id")
