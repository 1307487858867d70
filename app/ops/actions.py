"""`POST /ops/dead-letters/act`: replay or discard the ticked dead letters (one or many), audited.

A replay re-runs a registration's whole remaining chain, so every open dead letter of that
registration is replayed with it; each registration is replayed once, however many of its letters
were ticked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.ops import audit
from app.ops.auth import current_operator
from app.ops.blueprint import blueprint, console_path
from app.ops.inputs import field_problem, record_number
from app.services import services
from registrations.dead_letters import DeadLetters, NotOpen
from registrations.states import DeadLetterStatus
from tasks.changes import queue_change

log = logging.getLogger(__name__)

NOTE_CHARS = 500


@blueprint.post("/dead-letters/act")
def act_on_dead_letters() -> BaseResponse | tuple[str, int]:
    """Replay or discard the dead letters in `ids`; a flash message says what happened to each."""
    operator = current_operator() or "?"
    numbers = (record_number(raw) for raw in request.form.getlist("ids"))
    ids = sorted({number for number in numbers if number is not None})
    action = request.form.get("action", "")
    typed_note = request.form.get("note", "")
    problem = field_problem("Note", typed_note)
    if problem is not None:
        # The note is kept with the dead letter and shown in the console: refused, not cleaned.
        return render_template("ops/problem.html", title="Request refused", message=problem), 422
    note = typed_note.strip()[:NOTE_CHARS]
    back = _back(request.form.get("back"))
    if not ids:
        flash("Tick at least one dead letter first.", "error")
    elif action == "replay":
        replay_letters(ids, operator)
    elif action == "discard":
        if note:
            discard_letters(ids, operator, note)
        else:
            flash("Say why in the note before discarding: the note is kept with the dead letter.", "error")
    else:
        flash("Choose replay or discard.", "error")
    return redirect(back, code=303)


def replay_letters(ids: Iterable[int], operator: str) -> None:
    """Replay the registrations of the given dead letters, each once; flash and audit the outcome."""
    celery = services().celery
    letters = DeadLetters(services().database, queue_change=lambda change_id: queue_change(celery, change_id))
    replays = letters.replay_letters(ids)
    replayed_ids: list[int] = []
    runs: list[str] = []
    for replayed in replays.replayed:
        systems = ", ".join(replayed.systems) or "nothing"
        for letter_id in replayed.letter_ids:
            audit.record(
                "replay",
                operator=operator,
                dead_letter_id=letter_id,
                registration_id=replayed.registration_id,
                outcome=f"replayed: {systems}",
            )
        log.info(
            "ops %s replayed dead letters %s of registration %s",
            operator,
            list(replayed.letter_ids),
            replayed.registration_id,
        )
        replayed_ids.extend(replayed.letter_ids)
        if replayed.change_id is not None:
            runs.append(f"change {replayed.change_id} ({systems}) runs again")
        else:
            runs.append(f"registration {replayed.registration_id} runs {systems} again")
    if replayed_ids:
        # One message, however many were ticked: flashes travel in the session cookie.
        what = runs[0] if len(runs) == 1 else f"{len(runs)} registrations run their remaining steps again"
        flash(f"Replayed {_numbers(sorted(replayed_ids))}: {what}.", "success")
    _flash_not_open(replays.not_open, operator, "replay")


def discard_letters(ids: Iterable[int], operator: str, note: str) -> None:
    """Discard each given dead letter with the note (and who wrote it); flash and audit the outcome."""
    letters = DeadLetters(services().database)
    discarded: list[int] = []
    closed: list[int] = []
    for letter_id in ids:
        try:
            letter = letters.discard(letter_id, note=f"{note} (ops: {operator})")
        except NotOpen:
            closed.append(letter_id)
            continue
        discarded.append(letter_id)
        audit.record(
            "discard",
            operator=operator,
            dead_letter_id=letter_id,
            registration_id=letter.registration_id,
            outcome=DeadLetterStatus.DISCARDED,
            note=note,
        )
    if discarded:
        log.info("ops %s discarded dead letters %s", operator, discarded)
        flash(f"Discarded {_numbers(discarded)}.", "success")
    _flash_not_open(closed, operator, "discard")


def _flash_not_open(letter_ids: list[int], operator: str, action: str) -> None:
    if not letter_ids:
        return
    for letter_id in sorted(letter_ids):
        audit.record(action, operator=operator, dead_letter_id=letter_id, outcome="not open: nothing done")
    flash(f"{_numbers(sorted(letter_ids))}: not open (replayed or discarded already), nothing done.", "error")


def _numbers(letter_ids: Iterable[int]) -> str:
    numbers = [f"#{letter_id}" for letter_id in letter_ids]
    return ("dead letter " if len(numbers) == 1 else "dead letters ") + ", ".join(numbers)


def _back(target: str | None) -> str:
    # Back to the page the buttons were on (with its filter), never anywhere outside the console.
    return console_path(target) or url_for("ops.dead_letters")
