"""`GET /ops/dead-letters` (filtered by system, reason and status) and one dead letter's page."""

from __future__ import annotations

from flask import abort, render_template, request

from app.ops.blueprint import blueprint
from app.ops.inputs import page_number
from app.services import services
from config.systems import SYSTEM_NAMES
from registrations.changes import Changes
from registrations.dead_letters import DeadLetterFilter, DeadLetters, dead_letter_reason
from registrations.hints import REPLAY_TASK
from registrations.states import DeadLetterStatus

# The reasons a step is dead-lettered with (the text before the first ':' of its message).
KNOWN_REASONS = ("retries_exhausted", "permanent", "conflict", "not_found", "ambiguous_match", "worker_lost")
ANY = "any"
# The statuses the list filters by, as the query string and the page spell them.
DEAD_LETTER_STATUSES = tuple(status.value for status in DeadLetterStatus)


def requested_filter() -> DeadLetterFilter:
    """The list's filter from the query string; an unknown value is ignored, status defaults to open."""
    system = request.args.get("system", "")
    reason = request.args.get("reason", "")
    status = request.args.get("status", DeadLetterStatus.OPEN)
    return DeadLetterFilter(
        system=system if system in SYSTEM_NAMES else None,
        reason=reason if reason in KNOWN_REASONS else None,
        status=status if status in DEAD_LETTER_STATUSES else None,
    )


@blueprint.get("/dead-letters")
def dead_letters() -> str:
    """Dead letters matching the filter, newest first, with replay and discard for the ones ticked."""
    wanted = requested_filter()
    page = DeadLetters(services().database).page(wanted, number=page_number())
    return render_template(
        "ops/dead_letters.html",
        page=page,
        wanted=wanted,
        systems=SYSTEM_NAMES,
        reasons=KNOWN_REASONS,
        statuses=DEAD_LETTER_STATUSES,
        any_status=ANY,
        reason_of=dead_letter_reason,
        back=request.full_path.rstrip("?"),
    )


@blueprint.get("/dead-letters/<int:dead_letter_id>")
def dead_letter(dead_letter_id: int) -> str:
    """One dead letter: what failed and why, and the three ways to re-run it."""
    letter = DeadLetters(services().database).show(dead_letter_id)
    if letter is None:
        abort(404)
    return render_template(
        "ops/dead_letter.html",
        letter=letter,
        # A change's dead letter (a vendor webhook delivery) names no registration: show the change.
        change=Changes(services().database).get(letter.change_id) if letter.change_id else None,
        reason=dead_letter_reason(letter.message),
        replay_task=REPLAY_TASK,
        back=request.full_path.rstrip("?"),
    )
