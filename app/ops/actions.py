"""`POST /ops/dead-letters/act`: replay or discard the ticked dead letters (one or many), or every
dead letter matching the list's filter ("all matching", over every page), audited with who.

A replay re-runs a registration's whole remaining chain, so every open dead letter of that
registration is replayed with it; each registration is replayed once, however many of its letters
were ticked. More than DIRECT_REPLAYS registrations are replayed by a worker in the background,
paced by the vendors' rate budgets (`membersync.replay_paced`), its progress shown on the list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import redis
from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.ops import audit
from app.ops.audit import console_actor
from app.ops.auth import current_operator
from app.ops.blueprint import blueprint, console_path
from app.ops.dead_letters import requested_filter
from app.ops.inputs import field_problem, record_number
from app.services import services
from registrations.audit import CONSOLE
from registrations.dead_letters import DeadLetters, NotOpen
from registrations.replay_jobs import ReplayJobs
from tasks.changes import queue_change

log = logging.getLogger(__name__)

NOTE_CHARS = 500
# Up to this many registrations are replayed in the request; more go to a paced background replay.
DIRECT_REPLAYS = 10
PACED_REPLAY_TASK = "membersync.replay_paced"


@blueprint.post("/dead-letters/act")
def act_on_dead_letters() -> BaseResponse | tuple[str, int]:
    """Replay or discard the dead letters in `ids`; a flash message says what happened to each."""
    operator = current_operator() or "?"
    if request.form.get("all_matching") == "1":
        # The filter travels in the form: every matching dead letter, not only this page's.
        ids = DeadLetters(services().database).matching_ids(requested_filter(request.form))
    else:
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
    """Replay the registrations of the given dead letters, each once (audited with who, by the
    service); many go to a paced background replay. Flash the outcome."""
    celery = services().celery
    letters = DeadLetters(
        services().database,
        queue_change=lambda change_id: queue_change(celery, change_id),
        actor=console_actor(operator),
    )
    targets, not_open = letters.replay_targets(ids)
    if len(targets) > DIRECT_REPLAYS:
        start_paced_replay(targets, operator)
        _flash_not_open(list(not_open), operator, "replay")
        return
    replays = letters.replay_letters(targets)
    replayed_ids: list[int] = []
    runs: list[str] = []
    for replayed in replays.replayed:
        systems = ", ".join(replayed.systems) or "nothing"
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
    _flash_not_open(sorted({*not_open, *replays.not_open}), operator, "replay")


def start_paced_replay(targets: Sequence[int], operator: str) -> None:
    """Hand many replays to a worker that paces them by the rate budgets; the list shows progress."""
    settings = services().settings
    try:
        jobs = ReplayJobs(redis.Redis.from_url(settings.effective_redis_url, socket_timeout=2))
        job_id = jobs.start(len(targets), operator)
        services().celery.send_task(
            PACED_REPLAY_TASK, args=[job_id, [str(target) for target in targets], operator, CONSOLE]
        )
    except Exception:  # Redis or the broker did not answer: nothing was replayed
        log.exception("ops %s: the paced replay of %d registrations could not start", operator, len(targets))
        flash(
            "The bulk replay could not start (Redis or the broker did not answer); nothing was replayed.",
            "error",
        )
        return
    log.info("ops %s started paced replay %s of %d registrations", operator, job_id, len(targets))
    flash(
        f"Replaying {len(targets)} registrations in the background, paced by the vendors' rate limits; "
        "the progress is shown above the list.",
        "success",
    )


def discard_letters(ids: Iterable[int], operator: str, note: str) -> None:
    """Discard each given dead letter with the note (and who wrote it); flash and audit the outcome."""
    letters = DeadLetters(services().database, actor=console_actor(operator))
    discarded: list[int] = []
    closed: list[int] = []
    for letter_id in ids:
        try:
            letters.discard(letter_id, note=note)  # audited by the service, with who
        except NotOpen:
            closed.append(letter_id)
            continue
        discarded.append(letter_id)
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


# A flash travels in the session cookie: a long selection is named by its first numbers and a count.
NUMBERS_SHOWN = 20


def _numbers(letter_ids: Iterable[int]) -> str:
    numbers = [f"#{letter_id}" for letter_id in letter_ids]
    shown = ", ".join(numbers[:NUMBERS_SHOWN])
    if len(numbers) > NUMBERS_SHOWN:
        shown += f" and {len(numbers) - NUMBERS_SHOWN} more"
    return ("dead letter " if len(numbers) == 1 else "dead letters ") + shown


def _back(target: str | None) -> str:
    # Back to the page the buttons were on (with its filter), never anywhere outside the console.
    return console_path(target) or url_for("ops.dead_letters")
