"""Dead letters in one place: writing them, the one query of the open ones, and `DeadLetters`, the
service every way in uses to list, show, replay, discard and resolve them (the CLI's `membersync dlq`,
the ops console, the Celery task `membersync.replay` that Flower applies, and the alerts).

One open row per registration and system, refreshed when the step fails again. A replay reopens
every open dead letter of the registration (one replay runs its whole remaining chain) and queues it
in the outbox in the same transaction: a database bound to a publisher
(`registrations.outbox.publish_after_commit`) publishes it after the commit, else the relay does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from config.observability import scrub_text
from config.systems import SYSTEM_NAMES
from registrations.changes import Changes, reopen_change
from registrations.database import Database
from registrations.models import Change, DeadLetter, Registration, utcnow
from registrations.ops_queries import Page, page_of
from registrations.outbox import published_ids
from registrations.replay import reopen
from registrations.states import DeadLetterStatus, StepState

# The overview counts reasons over at most this many open dead letters (an outage can open many).
REASON_SAMPLE = 20_000
# A reason is an identifier (retries_exhausted, permanent, ...); the rest of a message is detail.
REASON_PREFIX_CHARS = 64


class NotOpen(LookupError):
    """No such dead letter, or it is no longer open (replayed, resolved or discarded)."""

    def __str__(self) -> str:
        return f"no open dead letter {self.args[0] if self.args else '?'}"


class NothingToReplay(NotOpen):
    """No such dead letter or registration, or nothing of it is open."""

    def __str__(self) -> str:
        return f"nothing open to replay for {self.args[0] if self.args else '?'}"


def dead_letter_reason(message: str | None) -> str:
    """The reason a dead letter was written: the text of its message before the first ':'."""
    reason, colon, _ = (message or "").partition(":")
    return reason.strip() if colon else "unknown"


def open_dead_letters(*, registration_id: str | None = None, system: str | None = None) -> Select[DeadLetter]:
    """The open dead letters (of one registration, of one system), oldest first: the one query of
    them, narrowed or counted by its callers."""
    query = select(DeadLetter).where(DeadLetter.status == DeadLetterStatus.OPEN)
    if registration_id is not None:
        query = query.where(DeadLetter.registration_id == registration_id)
    if system is not None:
        query = query.where(DeadLetter.system == system)
    return query.order_by(DeadLetter.id)


def record_dead_letter(
    session: Session,
    *,
    registration_id: str,
    system: str,
    task_name: str,
    error: BaseException,
    reason: str,
    attempts: int,
) -> DeadLetter:
    """Open (or refresh) the dead letter for this registration's step; args are ids only."""
    letter = session.scalar(open_dead_letters(registration_id=registration_id, system=system))
    message = scrub_text(f"{reason}: {error}")[:2000]
    if letter is None:
        letter = DeadLetter(
            registration_id=registration_id,
            system=system,
            task_name=task_name,
            args={"registration_id": registration_id},
            error_class=type(error).__name__,
            message=message,
            attempts=attempts,
        )
        session.add(letter)
    else:
        letter.error_class = type(error).__name__
        letter.message = message
        letter.attempts = attempts
        letter.last_failed_at = utcnow()
    return letter


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a list shows: a system, a reason and a status (any when None)."""

    system: str | None = None
    reason: str | None = None
    status: str | None = DeadLetterStatus.OPEN


def matching(wanted: DeadLetterFilter) -> Select[DeadLetter]:
    """The dead letters `wanted` describes, unordered. The reason is matched on the message's prefix
    `reason:` in SQL, so a list pages in the database."""
    query = select(DeadLetter)
    if wanted.system:
        query = query.where(DeadLetter.system == wanted.system)
    if wanted.status:
        query = query.where(DeadLetter.status == wanted.status)
    if wanted.reason:
        query = query.where(DeadLetter.message.startswith(f"{wanted.reason}:", autoescape=True))
    return query


@dataclass(frozen=True)
class Replayed:
    """What a replay reopened: the registration, its systems (pipeline order), the outbox row that
    carries the chain, the dead letters it closed, and whether the chain reached the broker (False:
    it waits in the outbox for the relay).

    A change's dead letter (a vendor webhook delivery, `registrations/changes.py`) names no
    registration: `change_id` is set, `systems` is the change's source, there is no outbox row, and
    `published` says whether its task reached the broker (False: the change sweep queues it)."""

    registration_id: str | None
    systems: tuple[str, ...]
    outbox_id: int | None
    letter_ids: tuple[int, ...]
    published: bool
    change_id: int | None = None


@dataclass(frozen=True)
class Replays:
    """The replays of a set of dead letters (each registration once) and those that were not open."""

    replayed: list[Replayed]
    not_open: list[int]


class DeadLetters:
    """List, show, replay, discard and resolve dead letters, each in its own short transaction."""

    def __init__(self, database: Database, *, queue_change: Callable[[int], None] | None = None) -> None:
        # Bound to a publisher (the web app's, the worker's, the CLI's), a replay is published after
        # its commit; unbound, the relay publishes it. A replayed change's task is handed to
        # `queue_change` after the commit when given; else the change sweep queues it.
        self.database = database
        self.queue_change = queue_change

    def list(self, wanted: DeadLetterFilter | None = None) -> Sequence[DeadLetter]:
        """Every dead letter `wanted` describes (default: the open ones), oldest first."""
        query = matching(wanted or DeadLetterFilter()).order_by(DeadLetter.id)
        with self.database.session() as session:
            return session.scalars(query).all()

    def page(self, wanted: DeadLetterFilter, *, number: int = 1) -> Page:
        """One page of the dead letters `wanted` describes, newest first."""
        with self.database.session() as session:
            return page_of(session, matching(wanted).order_by(DeadLetter.id.desc()), number)

    def show(self, dead_letter_id: int) -> DeadLetter | None:
        """One dead letter, whatever its status."""
        with self.database.session() as session:
            return session.get(DeadLetter, dead_letter_id)

    def open_registrations(self) -> Sequence[str]:
        """The registrations with at least one open dead letter, in id order."""
        query = (
            open_dead_letters()
            .where(DeadLetter.registration_id.is_not(None))
            .with_only_columns(DeadLetter.registration_id)
            .group_by(DeadLetter.registration_id)
            .order_by(None)
            .order_by(DeadLetter.registration_id)
        )
        with self.database.session() as session:
            return [str(registration_id) for registration_id in session.scalars(query)]

    def open_change_letters(self) -> Sequence[int]:
        """The open dead letters of changes (vendor webhook deliveries), oldest first."""
        query = open_dead_letters().where(DeadLetter.change_id.is_not(None)).with_only_columns(DeadLetter.id)
        with self.database.session() as session:
            return session.scalars(query).all()

    def open_by_system_and_reason(self) -> dict[tuple[str, str], int]:
        """Open dead letters counted by (system, reason), largest first (over the newest
        REASON_SAMPLE: an outage can open many)."""
        query = (
            open_dead_letters()
            .with_only_columns(DeadLetter.system, func.substr(DeadLetter.message, 1, REASON_PREFIX_CHARS))
            .order_by(None)
            .order_by(DeadLetter.id.desc())
            .limit(REASON_SAMPLE)
        )
        with self.database.session() as session:
            counted: Counter[tuple[str, str]] = Counter(
                (str(system), dead_letter_reason(str(prefix))) for system, prefix in session.execute(query)
            )
        return dict(counted.most_common())

    def replay(self, ids: str | int) -> Replayed:
        """Reopen the dead steps named by a dead-letter id or a registration id (every open dead
        letter of that registration), and queue the chain from the first unfinished step. A change's
        dead letter reopens its change instead (`_replay_change`)."""
        change_letter = self._change_letter(ids)
        if change_letter is not None:
            return self._replay_change(change_letter)
        with self.database.session() as session:
            registration_id = _registration_of(session, ids)
            letters = (
                session.scalars(open_dead_letters(registration_id=registration_id)).all()
                if registration_id is not None
                else []
            )
            if not letters:
                raise NothingToReplay(str(ids))
            registration = session.get(Registration, registration_id)
            assert registration is not None  # dead letters cascade with their registration
            # In pipeline order; a registration accepted before a system existed has no step for it.
            state = {step.system: step.state for step in registration.steps}
            systems = tuple(name for name in SYSTEM_NAMES if state.get(name) == StepState.DEAD)
            replayed_at = utcnow().isoformat(timespec="seconds")
            for letter in letters:
                _close(letter, DeadLetterStatus.REPLAYED, f"replayed {replayed_at}")
            outbox_id = reopen(session, registration, systems).id
            letter_ids = tuple(letter.id for letter in letters)
        return Replayed(
            registration.id,
            systems,
            outbox_id,
            letter_ids,
            published=bool(published_ids(self.database, [outbox_id])),
        )

    def replay_letters(self, letter_ids: Iterable[int]) -> Replays:
        """Replay the registrations of the given dead letters, each once, in the order of their first
        open letter; a letter that is not open is reported, an unknown id ignored."""
        with self.database.session() as session:
            letters = session.scalars(
                select(DeadLetter).where(DeadLetter.id.in_(sorted(set(letter_ids)))).order_by(DeadLetter.id)
            ).all()
        not_open = [letter.id for letter in letters if letter.status != DeadLetterStatus.OPEN]
        first_open: dict[str, int] = {}
        for letter in letters:
            if letter.status == DeadLetterStatus.OPEN:
                first_open.setdefault(letter.registration_id or f"change {letter.change_id}", letter.id)
        replayed: list[Replayed] = []
        for letter_id in first_open.values():
            try:
                replayed.append(self.replay(letter_id))
            except NothingToReplay:  # closed since it was read (another operator, the CLI)
                not_open.append(letter_id)
        return Replays(replayed, sorted(not_open))

    def discard(self, dead_letter_id: int, *, note: str | None = None) -> DeadLetter:
        """Close a dead letter without replaying it: a person decided it needs nothing more."""
        return self._close_one(dead_letter_id, DeadLetterStatus.DISCARDED, note)

    def resolve(self, dead_letter_id: int, *, note: str | None = None) -> DeadLetter:
        """Close a dead letter whose work was done outside Membersync (by hand in the vendor's own
        tool): nothing is run; its step stays as it is and the note says what was done."""
        return self._close_one(dead_letter_id, DeadLetterStatus.RESOLVED, note)

    def alert_new(self, tell: Callable[[Sequence[DeadLetter]], None], *, limit: int) -> int:
        """Hand the open dead letters nobody was told of yet (oldest first, at most `limit`) to `tell`
        and mark them told, in one transaction: if `tell` fails nothing is marked (the next run tries
        again), and a run at the same time skips the rows this one holds. Returns how many."""
        query = (
            open_dead_letters()
            .where(DeadLetter.alerted_at.is_(None))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.database.session() as session:
            letters = session.scalars(query).all()
            if letters:
                tell(letters)
                now = utcnow()
                for letter in letters:
                    letter.alerted_at = now
            return len(letters)

    def _change_letter(self, ids: str | int) -> int | None:
        """The id of the open dead letter `ids` names when it is a change's."""
        text = str(ids).strip()
        if not text.isdigit():
            return None
        with self.database.session() as session:
            letter = session.get(DeadLetter, int(text))
            if letter is None or letter.change_id is None or letter.status != DeadLetterStatus.OPEN:
                return None
            return letter.id

    def _replay_change(self, letter_id: int) -> Replayed:
        """Reopen a dead change (pending, attempts from zero) and close its letter, in one
        transaction; then hand its task to the broker when this service can (else the sweep does)."""
        with self.database.session() as session:
            letter = session.get(DeadLetter, letter_id)
            change = session.get(Change, letter.change_id) if letter is not None else None
            if letter is None or change is None or letter.status != DeadLetterStatus.OPEN:
                raise NothingToReplay(str(letter_id))
            _close(letter, DeadLetterStatus.REPLAYED, f"replayed {utcnow().isoformat(timespec='seconds')}")
            reopen_change(change)
            change_id, source = change.id, change.source
        published = False
        if self.queue_change is not None:
            try:
                self.queue_change(change_id)
                Changes(self.database).mark_queued([change_id])
                published = True
            except Exception:  # the broker is down: the change is pending, the sweep queues it
                published = False
        return Replayed(None, (source,), None, (letter_id,), published=published, change_id=change_id)

    def _close_one(self, dead_letter_id: int, status: DeadLetterStatus, note: str | None) -> DeadLetter:
        with self.database.session() as session:
            letter = session.get(DeadLetter, dead_letter_id)
            if letter is None or letter.status != DeadLetterStatus.OPEN:
                raise NotOpen(dead_letter_id)
            _close(letter, status, f"{status}: {note or 'by ops'}")
            session.flush()
            session.expunge(letter)
            return letter


def _registration_of(session: Session, ids: str | int) -> str | None:
    """The registration a replay names: a dead letter's (by its id, only while it is open), or the id
    itself. None when the dead letter is not open."""
    text = str(ids).strip()
    if not text.isdigit():
        return text
    letter = session.get(DeadLetter, int(text))
    if letter is None or letter.status != DeadLetterStatus.OPEN:
        return None
    return letter.registration_id


def _close(letter: DeadLetter, status: DeadLetterStatus, note: str) -> None:
    letter.status = status
    letter.notes = ((letter.notes or "") + f"\n{note}").strip()
