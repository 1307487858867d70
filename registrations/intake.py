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

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from config.settings import Settings
from config.systems import SYSTEM_NAMES, SYSTEMS, System
from registrations import confirmations
from registrations.database import note_chain
from registrations.models import OutboxMessage, Registration, SyncStep, new_id, utcnow
from registrations.states import RegistrationStatus, StepState

# The tables the intake writes with plain INSERTs (typed as the Tables they are).
_REGISTRATIONS = cast(Table, Registration.__table__)
_STEPS = cast(Table, SyncStep.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)
# Built once: constructing them per request (coercions, cache keys) was a tenth of the intake's CPU.
_INSERT_REGISTRATION = insert(_REGISTRATIONS)
# The steps in one multi-row INSERT of one row per system (psycopg's executemany of five rows was a
# pipeline of its own, a tenth of the intake's CPU on PostgreSQL), their shared values bound once.
_INSERT_STEPS = insert(_STEPS).values(
    [
        {
            "registration_id": bindparam("registration_id", type_=_STEPS.c.registration_id.type),
            "system": bindparam(f"system_{number}", type_=_STEPS.c.system.type),
            "state": bindparam(f"state_{number}", type_=_STEPS.c.state.type),
            "note": bindparam(f"note_{number}", type_=_STEPS.c.note.type),
            "updated_at": bindparam("updated_at", type_=_STEPS.c.updated_at.type),
        }
        for number in range(len(SYSTEM_NAMES))
    ]
)
_INSERT_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id)


def _first_state(system: System, enabled: bool) -> tuple[str, str | None]:
    """A new registration's step of `system`: pending, skipped (switched off), or done already with
    its note (a step that waits for a decision nobody has made yet: `System.starts_done`)."""
    if not enabled:
        return StepState.SKIPPED, None
    if system.starts_done is not None:
        return StepState.SUCCEEDED, system.starts_done
    return StepState.PENDING, None


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different body."""


@dataclass(frozen=True)
class Acceptance:
    """The outcome of accepting a registration."""

    registration: Registration
    created: bool
    outbox_id: int | None
    # The chain the outbox row stands for (the enabled systems), when this acceptance wrote one.
    systems: tuple[str, ...] = ()


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
    caller_publishes: bool = False,
) -> Acceptance:
    """Write the registration, its sync steps and an outbox row in the caller's transaction.

    A repeated Idempotency-Key with the same body returns the first registration; with another body
    it raises IdempotencyConflict. Nothing is published here: the caller publishes after commit.

    `caller_publishes` (the web intake, `app.intake.submit`): the caller has already looked for the
    key, or lets the unique index refuse a repeat (IntegrityError) and looks then, which spares every
    new registration a SELECT; and it publishes the row itself right after the commit with
    `registrations.outbox.publish_claimed`. The row is then written as published (claimed), so a
    publish that succeeds costs no second transaction; a failed one un-marks the row for the relay.
    """
    print_ = fingerprint(fields)
    if idempotency_key is not None and not caller_publishes:
        existing = find_by_idempotency_key(session, idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != print_:
                raise IdempotencyConflict(idempotency_key)
            return Acceptance(existing, created=False, outbox_id=None)
    # Three INSERT statements on the tables (no unit of work: nothing here is read back), on the
    # connection of the caller's transaction (the ORM's execute path added nothing to them). The
    # registration handed back is the same row as an unsaved object.
    connection = session.connection()
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
    connection.execute(_INSERT_REGISTRATION, row)
    registration = Registration(**row)
    enabled = settings.enabled_systems()
    steps: dict[str, Any] = {"registration_id": row["id"], "updated_at": now}
    for number, system in enumerate(SYSTEMS):
        steps[f"system_{number}"] = system.name
        steps[f"state_{number}"], steps[f"note_{number}"] = _first_state(system, enabled[system.name])
    connection.execute(_INSERT_STEPS, steps)
    if registration.accepts_marketing:
        # Double opt-in: only a request here; nothing is subscribed until the owner confirms.
        confirmations.request(session, registration, confirmations.MARKETING, settings=settings)
    outbox_row: dict[str, Any] = {"registration_id": row["id"], "created_at": now}
    if caller_publishes:
        outbox_row.update(published_at=now, publish_attempts=1)
    outbox_id: int = connection.execute(_INSERT_OUTBOX, outbox_row).scalar_one()
    # The steps were made just now: the chain is every enabled system (a skipped step is finished),
    # published after the commit from these ids.
    systems = tuple(system.name for system in SYSTEMS if enabled[system.name] and system.starts_done is None)
    if not caller_publishes:
        note_chain(session, outbox_id, row["id"], systems)
    return Acceptance(registration, created=True, outbox_id=outbox_id, systems=systems)
