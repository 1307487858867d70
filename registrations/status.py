"""A registration's status: derived from its steps, and shown without personal data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from config.systems import MASTER, STARTS_DONE, SYSTEM_NAMES
from registrations.models import Registration, SyncStep
from registrations.states import FINISHED_STEP_STATES, RegistrationStatus, StepState


def remaining_systems(steps: Iterable[SyncStep]) -> list[str]:
    """The systems whose step is still to run, in pipeline order."""
    state = {step.system: step.state for step in steps}
    # A system the registration has no step for (accepted before that system existed) is pending:
    # its step row is made when it is claimed.
    return [
        system for system in SYSTEM_NAMES if state.get(system, StepState.PENDING) not in FINISHED_STEP_STATES
    ]


def derive_status(steps: Iterable[SyncStep]) -> str:
    """The registration status its steps imply.

    failed: the master (Shopify) is dead-lettered, so nothing else can follow; synced: every step
    succeeded or was skipped; accepted: nothing has started; syncing: something is under way;
    partial: finished, with a non-master step dead-lettered; waiting: finished but for a step that
    waits for the address's owner to confirm (a card found at the till).
    """
    return status_of({step.system: step.state for step in steps})


def status_of(state: Mapping[str, str]) -> str:
    """`derive_status` from each system's step state."""
    if state.get(MASTER.name) == StepState.DEAD:
        return RegistrationStatus.FAILED
    values = set(state.values())
    if values <= {StepState.SUCCEEDED, StepState.SKIPPED}:
        return RegistrationStatus.SYNCED
    if values & {StepState.PENDING, StepState.RUNNING}:
        # A step done from the start (`System.starts_done`) is no sign that anything has started.
        begun = {value for name, value in state.items() if name not in STARTS_DONE}
        if begun <= {StepState.PENDING, StepState.SKIPPED}:
            return RegistrationStatus.ACCEPTED
        return RegistrationStatus.SYNCING
    if StepState.DEAD in values:
        return RegistrationStatus.PARTIAL
    # Everything else is done; a step waits for the address's owner to answer.
    return RegistrationStatus.WAITING


def public_status_document(registration: Registration) -> dict[str, Any]:
    """The body of `GET /api/registrations/<id>`: each system's state and nothing else.

    Anyone may hold a registration id (it is in a URL), and a registration of an address someone
    else already owns must not tell its holder that the address is a customer: vendor ids, attempts,
    notes and errors ("adopted the customer holding this email") would. They are for ops only.
    """
    return {
        "id": registration.id,
        "status": registration.status,
        "created_at": registration.created_at.isoformat(),
        "steps": {step.system: {"state": step.state} for step in registration.steps},
    }


def status_document(registration: Registration) -> dict[str, Any]:
    """The ops view of a registration (`membersync status ID`): external ids, attempts, errors, notes."""
    return {
        "id": registration.id,
        "status": registration.status,
        "created_at": registration.created_at.isoformat(),
        "steps": {
            step.system: {
                "state": step.state,
                "external_id": step.external_id,
                "attempts": step.attempts,
                "last_error": step.last_error,
                "note": step.note,
                "updated_at": step.updated_at.isoformat() if step.updated_at else None,
            }
            for step in registration.steps
        },
    }
