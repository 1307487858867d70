"""The ops audit trail: who did what to which dead letter or registration, when, from where (the
console, the CLI or Flower: every way in writes through `registrations.audit`)."""

from __future__ import annotations

import logging

from flask import render_template, request

from app.ops.blueprint import blueprint
from app.ops.inputs import page_number, shown_as_typed
from app.services import services
from registrations import audit
from registrations.audit import CONSOLE, Actor
from registrations.ops_queries import audit_page

log = logging.getLogger(__name__)


def record(
    action: str,
    *,
    operator: str,
    dead_letter_id: int | None = None,
    registration_id: str | None = None,
    outcome: str | None = None,
    note: str | None = None,
) -> None:
    """Write one audit row for the current request (its client address included), in its own commit."""
    audit.record(
        services().database,
        console_actor(operator),
        action,
        dead_letter_id=dead_letter_id,
        registration_id=registration_id,
        outcome=outcome,
        note=shown_as_typed(note) if note else None,
    )
    # Ids and the action only: the note is free text a person typed.
    log.info("ops %s (%s): dead letter %s, registration %s", action, outcome, dead_letter_id, registration_id)


def console_actor(operator: str) -> Actor:
    """The operator of this request, from the console, at the client's address. Anyone can type a
    username at the sign-in: kept visible, never as raw controls."""
    return Actor(shown_as_typed(operator), CONSOLE, request.remote_addr)


@blueprint.get("/audit")
def audit_trail() -> str:
    """The audit trail, newest first, one page at a time."""
    number = page_number()
    with services().database.session() as session:
        page = audit_page(session, number=number)
        session.expunge_all()
    return render_template("ops/audit.html", page=page)
