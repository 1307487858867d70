"""reconciliation runs: fencing token, systems, phase, report and heartbeat

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = ("fence", "systems", "phase", "report", "heartbeat_at")


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("systems", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("phase", sa.String(16), nullable=True))
        batch.add_column(sa.Column("report", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_runs") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
