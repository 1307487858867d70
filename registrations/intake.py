"""Accepting a registration: the registration, its steps and an outbox row, in the caller's transaction.

The caller commits, and only then publishes (`registrations.outbox.publish`): an accepted
registration is durable before anyone is told so, and a broker that is down loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations import confirmations
from registrations.database import note_chain
from registrations.models import OutboxMessage, Registration, SyncStep, new_id, utcnow
from registrations.states import RegistrationStatus, StepState

# The tables the intake writes with plain INSERTs (typed as the Tables they are).
_REGISTRATIONS = cast(Table, Registration.__table__)
_STEPS = cast(Table, SyncStep.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)


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
    # Three INSERT statements on the tables (no unit of work: nothing here is read back), in the
    # caller's transaction. The registration handed back is the same row as an unsaved object.
    now = utcnow()
    row = {
        "accepts_marketing": False,
        "locale": "ja",
        **fields,
        "id": new_id(),
        "idempotency_key": idempotency_key,
        "request_fingerprint": print_,
        "source": source,
        "status": RegistrationStatus.ACCEPTED,
        "created_at": now,
        "updated_at": now,
    }
    session.execute(insert(_REGISTRATIONS), row)
    registration = Registration(**row)
    enabled = settings.enabled_systems()
    session.execute(
        insert(_STEPS),
        [
            {
                "registration_id": row["id"],
                "system": system,
                "state": StepState.PENDING if enabled[system] else StepState.SKIPPED,
                "updated_at": now,
            }
            for system in SYSTEM_NAMES
        ],
    )
    if registration.accepts_marketing:
        # Double opt-in: only a request here; nothing is subscribed until the owner confirms.
        confirmations.request(session, registration, confirmations.MARKETING, settings=settings)
    outbox_id: int = session.execute(
        insert(_OUTBOX).returning(_OUTBOX.c.id),
        {"registration_id": row["id"], "created_at": now},
    ).scalar_one()
    # The steps were made just now: the chain is every enabled system (a skipped step is finished),
    # published after the commit from these ids.
    note_chain(session, outbox_id, row["id"], [system for system in SYSTEM_NAMES if enabled[system]])
    return Acceptance(registration, created=True, outbox_id=outbox_id)
