"""The ops audit trail: who did what to which dead letter or registration, when, from where."""

from __future__ import annotations

import logging

from flask import render_template, request

from app.ops.blueprint import blueprint
from app.ops.inputs import page_number, shown_as_typed
from app.services import services
from registrations.models import OpsAuditEntry
from registrations.ops_queries import audit_page

log = logging.getLogger(__name__)

# What is kept of a refused sign-in's username and of a note: enough to read, bounded in size.
OPERATOR_CHARS = 64
NOTE_CHARS = 2000


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
    with services().database.session() as session:
        session.add(
            OpsAuditEntry(
                # Anyone can type a username at the sign-in: kept visible, never as raw controls.
                operator=shown_as_typed(operator)[:OPERATOR_CHARS],
                action=action,
                dead_letter_id=dead_letter_id,
                registration_id=registration_id,
                outcome=outcome,
                note=shown_as_typed(note)[:NOTE_CHARS] if note else None,
                client_address=request.remote_addr,
            )
        )
    # Ids and the action only: the note is free text a person typed.
    log.info("ops %s (%s): dead letter %s, registration %s", action, outcome, dead_letter_id, registration_id)


@blueprint.get("/audit")
def audit_trail() -> str:
    """The audit trail, newest first, one page at a time."""
    number = page_number()
    with services().database.session() as session:
        page = audit_page(session, number=number)
        session.expunge_all()
    return render_template("ops/audit.html", page=page)
