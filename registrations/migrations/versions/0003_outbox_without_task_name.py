"""outbox rows name a registration only: the chain is rebuilt from its steps

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 20:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The task name was written and never read: what to publish follows from the steps' states.
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("task_name")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("task_name", sa.String(128), nullable=False, server_default="membersync.pipeline.start")
        )
