"""Accepting a registration: the registration, its steps and an outbox row, in the caller's transaction.

The caller commits, and only then publishes (`registrations.outbox.publish`): an accepted
registration is durable before anyone is told so, and a broker that is down loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations import confirmations
from registrations.database import note_chain
from registrations.models import OutboxMessage, Registration, SyncStep
from registrations.states import StepState
from registrations.status import remaining_systems


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


@dataclass(frozen=True)
class Acceptance:
    """The outcome of accepting a registration."""

    registration: Registration
    created: bool
    outbox_id: int | None


def fingerprint(fields: Mapping[str, Any]) -> str:
    """A stable SHA-256 of the normalised registration fields."""
    canonical = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_by_idempotency_key(session: Session, key: str) -> Registration | None:
    """The registration first accepted under `key`, if any."""
    return session.scalar(select(Registration).where(Registration.idempotency_key == key))


def accept_registration(
    session: Session,
    fields: Mapping[str, Any],
    *,
    settings: Settings,
    idempotency_key: str | None = None,
    source: str = "api",
) -> Acceptance:
    """Write the registration, its sync steps and an outbox row in the caller's transaction.

    A repeated Idempotency-Key with the same body returns the first registration; with another body
    it raises IdempotencyConflict. Nothing is published here: the caller publishes after commit.
    """
    print_ = fingerprint(fields)
    if idempotency_key is not None:
        existing = find_by_idempotency_key(session, idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != print_:
                raise IdempotencyConflict(idempotency_key)
            return Acceptance(existing, created=False, outbox_id=None)
    registration = Registration(
        idempotency_key=idempotency_key, request_fingerprint=print_, source=source, **fields
    )
    enabled = settings.enabled_systems()
    registration.steps = [
        SyncStep(system=system, state=StepState.PENDING if enabled[system] else StepState.SKIPPED)
        for system in SYSTEM_NAMES
    ]
    session.add(registration)
    session.flush()
    if registration.accepts_marketing:
        # Double opt-in: only a request here; nothing is subscribed until the owner confirms.
        confirmations.request(session, registration, confirmations.MARKETING, settings=settings)
    outbox = OutboxMessage(registration_id=registration.id)
    session.add(outbox)
    session.flush()
    # The steps were made just now, so the chain is known: published after the commit from these ids.
    note_chain(session, outbox.id, registration.id, remaining_systems(registration.steps))
    return Acceptance(registration, created=True, outbox_id=outbox.id)
