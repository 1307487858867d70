"""step retry budget start and dead-letter alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_steps") as batch:
        batch.add_column(sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_dead_letters_alerted_at", ["alerted_at"])


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ix_dead_letters_alerted_at")
        batch.drop_column("alerted_at")
    with op.batch_alter_table("sync_steps") as batch:
        batch.drop_column("first_attempt_at")
