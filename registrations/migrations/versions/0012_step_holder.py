"""worker leases: a running step names the worker process that holds it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_steps") as batch:
        # host:pid:random of the worker process whose claim this is (registrations/leases.py); NULL
        # for a claim made outside a worker, or before the column existed.
        batch.add_column(sa.Column("holder", sa.String(128), nullable=True))
        # The worker-lease sweep looks up running steps by holder every few seconds.
        batch.create_index("ix_sync_steps_state_holder", ["state", "holder"])


def downgrade() -> None:
    with op.batch_alter_table("sync_steps") as batch:
        batch.drop_index("ix_sync_steps_state_holder")
        batch.drop_column("holder")
