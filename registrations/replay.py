"""Reopening steps: put finished steps back to pending and queue the chain in the outbox, in the
caller's transaction (published after the commit when the database publishes, else by the relay).
Used by a replay of dead letters (`registrations.dead_letters`), a step's follow-up
(`registrations.sync`), a confirmation's decision, and the backfill of skipped steps here.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations.database import Database
from registrations.models import OutboxMessage, Registration, SyncStep
from registrations.states import StepState
from registrations.status import derive_status

BACKFILL_BATCH = 500


def reopen(session: Session, registration: Registration, systems: Iterable[str]) -> OutboxMessage:
    """Put `systems`' steps back to pending with a fresh budget, and queue the chain in the outbox."""
    for system in systems:
        step = registration.step(system)
        step.state = StepState.PENDING
        step.attempts = 0
        step.first_attempt_at = None
        step.celery_task_id = None
    registration.status = derive_status(registration.steps)
    message = OutboxMessage(registration_id=registration.id)
    session.add(message)
    session.flush()
    return message


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
                    .where(SyncStep.system == system, SyncStep.state == StepState.SKIPPED)
                    .order_by(Registration.created_at)
                    .limit(BACKFILL_BATCH)
                )
            )
            outbox_ids = [reopen(session, registration, [system]).id for registration in registrations]
        if not outbox_ids:
            return total
        total += len(outbox_ids)
