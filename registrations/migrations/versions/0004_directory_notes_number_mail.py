"""Smaregi member directory and sync cursors; step notes; when the member number was mailed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smaregi_directory",
        sa.Column("customer_id", sa.String(32), primary_key=True),
        sa.Column("customer_code", sa.String(20), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("upd_date_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_smaregi_directory_customer_code", "smaregi_directory", ["customer_code"])
    op.create_index("ix_smaregi_directory_email", "smaregi_directory", ["email"])
    op.create_index("ix_smaregi_directory_upd_date_time", "smaregi_directory", ["upd_date_time"])
    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("full_sync_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("sync_steps") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("member_number_mailed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("member_number_mailed_at")
    with op.batch_alter_table("sync_steps") as batch:
        batch.drop_column("note")
    op.drop_table("sync_cursors")
    op.drop_index("ix_smaregi_directory_upd_date_time", "smaregi_directory")
    op.drop_index("ix_smaregi_directory_email", "smaregi_directory")
    op.drop_index("ix_smaregi_directory_customer_code", "smaregi_directory")
    op.drop_table("smaregi_directory")
