"""One way in for a registration, used by the JSON API and the HTML form alike.

Validate → write registration, steps and outbox in one transaction → commit → publish (from the ids
the intake holds, `registrations.outbox.publish_claimed`: the row is committed as published, so a
broker that takes the chain costs no second transaction; one that is down un-marks the row for the
relay, and never fails the request). A rejected registration writes nothing; an accepted one is
durable before anyone is told so. An Idempotency-Key is not looked up first: the unique index
refuses a repeat, and only then is the first registration read (a retry is the rare case).
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
from registrations.outbox import bound_publisher, publish_claimed

__all__ = ["IdempotencyConflict", "submit"]


def submit(payload: Any, *, idempotency_key: str | None = None, source: str = "api") -> Acceptance:
    """Accept a registration; raises ValidationError (bad fields) or IdempotencyConflict."""
    fields = load_registration(payload)
    found = services()
    # A database that publishes nothing (no broker bound) leaves the row to the relay, unclaimed.
    publisher = bound_publisher(found.database)
    try:
        with found.database.session() as session:
            acceptance = accept_registration(
                session,
                fields,
                settings=found.settings,
                idempotency_key=idempotency_key,
                source=source,
                caller_publishes=publisher is not None,
            )
    except IntegrityError:
        # The Idempotency-Key was taken (a client's retry, or two requests racing): the first answers.
        if idempotency_key is None:
            raise
        with found.database.session() as session:
            existing = find_by_idempotency_key(session, idempotency_key)
            if existing is None:
                raise
            if existing.request_fingerprint != fingerprint(fields):
                raise IdempotencyConflict(idempotency_key) from None
            acceptance = Acceptance(existing, created=False, outbox_id=None)
    if publisher is not None and acceptance.outbox_id is not None:
        publish_claimed(
            publisher, found.database, acceptance.outbox_id, acceptance.registration.id, acceptance.systems
        )
    return acceptance
