"""`GET /ops/dead-letters` (filtered by system, reason and status), its CSV export, and one dead
letter's page."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Mapping

import redis
from flask import Response, abort, render_template, request

from app.ops.blueprint import blueprint
from app.ops.inputs import page_number
from app.services import services
from config.systems import SYSTEM_NAMES
from registrations.changes import Changes
from registrations.dead_letters import FAILED_AGAIN, DeadLetterFilter, DeadLetters, dead_letter_reason
from registrations.hints import REPLAY_TASK
from registrations.models import DeadLetter
from registrations.replay_jobs import ReplayJob, ReplayJobs
from registrations.states import DeadLetterStatus

log = logging.getLogger(__name__)

# The reasons a step is dead-lettered with (the text before the first ':' of its message).
KNOWN_REASONS = ("retries_exhausted", "permanent", "conflict", "not_found", "ambiguous_match", "worker_lost")
ANY = "any"
# The statuses the list filters by, as the query string and the page spell them: open, replayed and
# failed again (open, after a replay), resolved, discarded.
DEAD_LETTER_STATUSES = (
    DeadLetterStatus.OPEN.value,
    FAILED_AGAIN,
    DeadLetterStatus.REPLAYED.value,
    DeadLetterStatus.RESOLVED.value,
    DeadLetterStatus.DISCARDED.value,
)
STATUS_LABELS = {FAILED_AGAIN: "replayed and failed again"}
# The CSV export: ids, system, reason, status, counts and times; never the message's vendor text or
# anything of the person (their registration's id leads to them, for whoever may see it).
CSV_COLUMNS = (
    "id",
    "registration_id",
    "change_id",
    "system",
    "reason",
    "error_class",
    "status",
    "attempts",
    "first_failed_at",
    "last_failed_at",
    "closed_at",
    "resolved_by",
    "previous_id",
)


def requested_filter(values: Mapping[str, str] | None = None) -> DeadLetterFilter:
    """The list's filter from the query string (or a form); an unknown value is ignored, status
    defaults to open."""
    values = request.args if values is None else values
    system = values.get("system", "")
    reason = values.get("reason", "")
    status = values.get("status", DeadLetterStatus.OPEN)
    return DeadLetterFilter(
        system=system if system in SYSTEM_NAMES else None,
        reason=reason if reason in KNOWN_REASONS else None,
        status=status if status in DEAD_LETTER_STATUSES else None,
    )


@blueprint.get("/dead-letters")
def dead_letters() -> str:
    """Dead letters matching the filter, newest first, with replay and discard for the ones ticked."""
    wanted = requested_filter()
    letters = DeadLetters(services().database)
    page = letters.page(wanted, number=page_number())
    return render_template(
        "ops/dead_letters.html",
        page=page,
        wanted=wanted,
        matching=len(letters.matching_ids(wanted)) if page.number > 1 or page.has_next else len(page.rows),
        systems=SYSTEM_NAMES,
        reasons=KNOWN_REASONS,
        statuses=DEAD_LETTER_STATUSES,
        status_labels=STATUS_LABELS,
        any_status=ANY,
        reason_of=dead_letter_reason,
        jobs=replay_jobs(),
        back=request.full_path.rstrip("?"),
    )


def replay_jobs() -> list[ReplayJob]:
    """The recent bulk replays with their progress (none shown when Redis does not answer)."""
    try:
        client = redis.Redis.from_url(services().settings.effective_redis_url, socket_timeout=2)
        return ReplayJobs(client).recent()
    except redis.RedisError:
        log.warning("ops: the bulk replays' progress could not be read (Redis did not answer)")
        return []


@blueprint.get("/dead-letters.csv")
def dead_letters_csv() -> Response:
    """Every dead letter matching the filter (all pages), oldest first, as CSV."""
    wanted = requested_filter()
    rows = DeadLetters(services().database).export(wanted)
    return Response(
        _csv_lines(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="dead-letters.csv"'},
    )


def _csv_lines(letters: Iterator[DeadLetter]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(value) for value in values])
        return buffer.getvalue()

    yield line(list(CSV_COLUMNS))
    for letter in letters:
        yield line(
            [
                letter.id,
                letter.registration_id,
                letter.change_id,
                letter.system,
                dead_letter_reason(letter.message),
                letter.error_class,
                letter.status,
                letter.attempts,
                letter.first_failed_at,
                letter.last_failed_at,
                letter.closed_at,
                letter.resolved_by,
                letter.previous_id,
            ]
        )


def _cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula (=, +, -, @) is quoted with a '."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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
        successor=DeadLetters(services().database).successor(letter.id),
        reason=dead_letter_reason(letter.message),
        replay_task=REPLAY_TASK,
        back=request.full_path.rstrip("?"),
    )
