"""One way in for a registration, used by the JSON API and the HTML form alike.

Validate → write registration, steps and outbox in one transaction → commit → publish (the
services' database publishes the outbox row after the commit; a broker that is down leaves it to the
relay, never fails the request). A rejected registration writes nothing; an accepted one is durable
before anyone is told so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from app.schemas import load_registration
from app.services import services
from registrations.intake import (
    Acceptance,
    IdempotencyConflict,
    accept_registration,
    find_by_idempotency_key,
    fingerprint,
)

__all__ = ["IdempotencyConflict", "submit"]


def submit(payload: Any, *, idempotency_key: str | None = None, source: str = "api") -> Acceptance:
    """Accept a registration; raises ValidationError (bad fields) or IdempotencyConflict."""
    fields = load_registration(payload)
    found = services()
    try:
        with found.database.session() as session:
            acceptance = accept_registration(
                session, fields, settings=found.settings, idempotency_key=idempotency_key, source=source
            )
    except IntegrityError:
        # Two requests with the same Idempotency-Key raced; the other one committed first.
        if idempotency_key is None:
            raise
        with found.database.session() as session:
            existing = find_by_idempotency_key(session, idempotency_key)
            if existing is None:
                raise
            if existing.request_fingerprint != fingerprint(fields):
                raise IdempotencyConflict(idempotency_key) from None
            acceptance = Acceptance(existing, created=False, outbox_id=None)
    return acceptance
