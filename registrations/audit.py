"""Who did what to which dead letter, from anywhere: the ops console, the CLI, or Flower (through the
`membersync.replay` task). One row per act in `ops_audit`, written in the caller's transaction when
it has one, so an act and its audit row commit together."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from registrations.database import Database
from registrations.models import OpsAuditEntry

# Where an act was done (`ops_audit.via`).
CONSOLE, CLI, FLOWER = "console", "cli", "flower"
# What is kept of a name and a note: enough to read, bounded in size.
OPERATOR_CHARS = 64
NOTE_CHARS = 2000


@dataclass(frozen=True)
class Actor:
    """Who acts and from where: a console operator (with the client's address), the OS user or
    `--operator` of the CLI, or the operator Flower passes ("flower" when it passes none)."""

    name: str
    via: str
    address: str | None = None


def add_entry(
    session: Session,
    actor: Actor,
    action: str,
    *,
    dead_letter_id: int | None = None,
    registration_id: str | None = None,
    outcome: str | None = None,
    note: str | None = None,
) -> None:
    """Add one audit row to the caller's transaction."""
    session.add(
        OpsAuditEntry(
            operator=actor.name[:OPERATOR_CHARS],
            action=action,
            dead_letter_id=dead_letter_id,
            registration_id=registration_id,
            outcome=outcome,
            note=note[:NOTE_CHARS] if note else None,
            client_address=actor.address,
            via=actor.via,
        )
    )


def record(database: Database, actor: Actor, action: str, **details: str | int | None) -> None:
    """Write one audit row in its own commit."""
    with database.session() as session:
        add_entry(session, actor, action, **details)  # type: ignore[arg-type]
