"""The registration pipeline: accepting a registration and building its chain from database state.

State lives in the database, not in the chain (a chain cannot be retried as a whole, and its tail can
be lost after a retry): the chain is rebuilt from the first unfinished step whenever it is published,
relayed or replayed, and a finished step is a no-op.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.canvas import Signature, chain
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from tasks.models import SYSTEMS, OutboxMessage, Registration, SyncStep

# The CONTRACT.md task name of each system's step, in pipeline order.
STEP_TASKS: dict[str, str] = {
    "shopify": "membersync.shopify.create_customer",
    "smaregi": "membersync.smaregi.upsert_member",
    "hubspot": "membersync.hubspot.upsert_contact",
    "email": "membersync.mail.send_welcome",
}
PIPELINE_TASK = "membersync.pipeline.start"
FINISHED_STATES = frozenset({"succeeded", "skipped", "dead"})


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
        SyncStep(system=system, state="pending" if enabled[system] else "skipped") for system in SYSTEMS
    ]
    session.add(registration)
    session.flush()
    outbox = OutboxMessage(task_name=PIPELINE_TASK, registration_id=registration.id)
    session.add(outbox)
    session.flush()
    return Acceptance(registration, created=True, outbox_id=outbox.id)


def remaining_systems(steps: Iterable[SyncStep]) -> list[str]:
    """The systems whose step is still to run, in pipeline order."""
    state = {step.system: step.state for step in steps}
    return [system for system in SYSTEMS if state.get(system, "pending") not in FINISHED_STATES]


def build_chain(celery: Celery, registration_id: str, systems: Iterable[str]) -> Signature | None:
    """The chain of step tasks for `systems`, ids only, each immutable (no result passing)."""
    signatures = [
        celery.signature(STEP_TASKS[system], args=(registration_id,), immutable=True) for system in systems
    ]
    if not signatures:
        return None
    return chain(*signatures) if len(signatures) > 1 else signatures[0]


def derive_status(steps: Iterable[SyncStep]) -> str:
    """The registration status implied by its steps (see DESIGN.md, The pipeline)."""
    state = {step.system: step.state for step in steps}
    if state.get("shopify") == "dead":
        return "failed"
    values = set(state.values())
    if values <= {"succeeded", "skipped"}:
        return "synced"
    if values & {"pending", "running"}:
        return "accepted" if values <= {"pending", "skipped"} else "syncing"
    return "partial"
