"""Confirmations (consent record, profile claims, cards found at the till), ownership, mail limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "confirmations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "registration_id",
            sa.String(36),
            sa.ForeignKey("registrations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("text_version", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_confirmations_registration_id", "confirmations", ["registration_id"])
    op.create_index("ix_confirmations_state", "confirmations", ["state"])
    op.create_index("ix_confirmations_email", "confirmations", ["email"])
    op.create_index("ix_confirmations_expires_at", "confirmations", ["expires_at"])
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("ownership", sa.String(16), nullable=True))
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("welcomed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
    # Every registration has a step per system: earlier ones had nothing decided, so their consent
    # step has nothing to do.
    op.execute(
        "INSERT INTO sync_steps (registration_id, system, state, attempts, updated_at) "
        "SELECT id, 'consent', 'skipped', 0, CURRENT_TIMESTAMP FROM registrations"
    )
    # Registrations synced before this revision were their address's first: their owners.
    op.execute("UPDATE registrations SET ownership = 'owner' WHERE status <> 'accepted'")
    # An address whose welcome step succeeded has had its one welcome.
    op.execute(
        "UPDATE identities SET welcomed_at = updated_at WHERE email IN ("
        "SELECT r.email FROM registrations r JOIN sync_steps s ON s.registration_id = r.id "
        "WHERE s.system = 'email' AND s.state = 'succeeded')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM sync_steps WHERE system = 'consent'")
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("notified_at")
        batch.drop_column("welcomed_at")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("ownership")
    op.drop_index("ix_confirmations_expires_at", "confirmations")
    op.drop_index("ix_confirmations_email", "confirmations")
    op.drop_index("ix_confirmations_state", "confirmations")
    op.drop_index("ix_confirmations_registration_id", "confirmations")
    op.drop_table("confirmations")
