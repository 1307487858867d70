"""Replay of dead letters and backfill of skipped steps: reopen the steps and queue them in the outbox
(published after the commit when the database publishes, else by the relay).

Replay re-runs the chain from the first unfinished step (succeeded steps are no-ops). It takes a
dead-letter id or a registration id, so ops can call it from the CLI, the ops console or Flower's
`/api/task/async-apply/membersync.replay` with exact arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations.database import Database
from registrations.models import DeadLetter, OutboxMessage, Registration, SyncStep, utcnow
from registrations.outbox import published_ids
from registrations.status import derive_status

BACKFILL_BATCH = 500


class NothingToReplay(LookupError):
    """No such dead letter or registration, or nothing of it is open."""

    def __str__(self) -> str:
        return f"nothing open to replay for {self.args[0] if self.args else '?'}"


@dataclass(frozen=True)
class Replayed:
    """What a replay reopened: the registration, its systems and the outbox row that carries it."""

    registration_id: str
    systems: tuple[str, ...]
    outbox_id: int


def reopen(session: Session, registration: Registration, systems: Iterable[str]) -> OutboxMessage:
    """Put `systems`' steps back to pending with a fresh budget, and queue the chain in the outbox."""
    for system in systems:
        step = registration.step(system)
        step.state = "pending"
        step.attempts = 0
        step.first_attempt_at = None
        step.celery_task_id = None
    registration.status = derive_status(registration.steps)
    message = OutboxMessage(registration_id=registration.id)
    session.add(message)
    session.flush()
    return message


def reopen_dead_letters(session: Session, ids: str | int) -> Replayed:
    """Reopen the dead steps named by a dead-letter id or a registration id (in the caller's transaction)."""
    letters = _open_letters(session, ids)
    if not letters:
        raise NothingToReplay(str(ids))
    registration = session.get(Registration, letters[0].registration_id)
    assert registration is not None  # dead letters cascade with their registration
    # In pipeline order; a registration accepted before a system existed has no step for it.
    state = {step.system: step.state for step in registration.steps}
    systems = tuple(s for s in SYSTEM_NAMES if state.get(s) == "dead")
    now = utcnow()
    for letter in letters:
        letter.status = "replayed"
        letter.notes = ((letter.notes or "") + f"\nreplayed {now.isoformat(timespec='seconds')}").strip()
    message = reopen(session, registration, systems)
    return Replayed(registration.id, systems, message.id)


def _open_letters(session: Session, ids: str | int) -> list[DeadLetter]:
    text = str(ids).strip()
    if text.isdigit():
        letter = session.get(DeadLetter, int(text))
        if letter is None or letter.status != "open":
            return []
        # Every open letter of that registration: one replay runs the whole remaining chain.
        text = letter.registration_id
    return list(
        session.scalars(
            select(DeadLetter)
            .where(DeadLetter.registration_id == text, DeadLetter.status == "open")
            .order_by(DeadLetter.id)
        )
    )


def replay(database: Database, ids: str | int) -> Replayed:
    """Reopen and queue; published after the commit (the outbox relay covers a broker that is down)."""
    with database.session() as session:
        return reopen_dead_letters(session, ids)


def was_published(database: Database, replayed: Replayed) -> bool:
    """Whether the replay's chain has reached the broker (False: it waits in the outbox for the relay)."""
    return bool(published_ids(database, [replayed.outbox_id]))


def open_dead_letter_registrations(database: Database) -> list[str]:
    """Registrations with at least one open dead letter, oldest first."""
    with database.session() as session:
        rows = session.scalars(
            select(DeadLetter.registration_id)
            .where(DeadLetter.status == "open")
            .group_by(DeadLetter.registration_id)
            .order_by(DeadLetter.registration_id)
        )
        return list(rows)


def discard(database: Database, dead_letter_id: int, *, note: str | None = None) -> DeadLetter:
    """Close a dead letter without replaying it (a person decided it needs nothing more)."""
    with database.session() as session:
        letter = session.get(DeadLetter, dead_letter_id)
        if letter is None or letter.status != "open":
            raise NothingToReplay(str(dead_letter_id))
        letter.status = "discarded"
        letter.notes = ((letter.notes or "") + f"\ndiscarded: {note or 'by ops'}").strip()
        session.flush()
        session.expunge(letter)
        return letter


def backfill(database: Database, settings: Settings, system: str) -> int:
    """Reopen every `skipped` step of `system` (after it was switched on) and queue it, a batch per
    transaction (each published after its commit); returns how many."""
    if system not in SYSTEM_NAMES:
        raise ValueError(f"unknown system {system!r}; expected one of {', '.join(SYSTEM_NAMES)}")
    if not settings.enabled_systems()[system]:
        # Its steps would only be skipped again: the switch comes first.
        raise ValueError(f"{system} is switched off; switch it on before the backfill")
    total = 0
    while True:
        with database.session() as session:
            registrations = list(
                session.scalars(
                    select(Registration)
                    .join(SyncStep)
                    .where(SyncStep.system == system, SyncStep.state == "skipped")
                    .order_by(Registration.created_at)
                    .limit(BACKFILL_BATCH)
                )
            )
            outbox_ids = [reopen(session, registration, [system]).id for registration in registrations]
        if not outbox_ids:
            return total
        total += len(outbox_ids)
