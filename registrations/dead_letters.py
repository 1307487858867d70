"""Dead letters in one place: writing them, the one query of the open ones, and `DeadLetters`, the
service every way in uses to list, show, replay, discard and resolve them (the CLI's `membersync dlq`,
the ops console, the Celery task `membersync.replay` that Flower applies, and the alerts).

One open row per registration and system, refreshed when the step fails again. A replay reopens
every open dead letter of the registration (one replay runs its whole remaining chain) and queues it
in the outbox in the same transaction: a database bound to a publisher
(`registrations.outbox.publish_after_commit`) publishes it after the commit, else the relay does.

The loop closes here too: a dead letter becomes `resolved` when its registration reaches synced
(or its change succeeds) after it, whatever got it there (`settle_registration`, `settle_change`,
called where the status is recorded), saying by what; a replay that fails again opens a new dead
letter linked to the one replayed (`previous_id`). Every replay, discard and resolve a person does
is audited with who and from where (`registrations.audit`), in the same transaction.
"""

from __future__ import annotations

import builtins
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from config.observability import scrub_text
from config.settings import Settings
from config.systems import SYSTEM_NAMES
from connectors.errors import RateLimited
from registrations.audit import CONSOLE, Actor, add_entry
from registrations.changes import Changes, reopen_change
from registrations.database import Database
from registrations.models import Change, DeadLetter, Registration, utcnow
from registrations.ops_queries import Page, page_of
from registrations.outbox import published_ids
from registrations.replay import reopen
from registrations.states import DeadLetterStatus, RegistrationStatus, StepState

# The overview counts reasons over at most this many open dead letters (an outage can open many).
REASON_SAMPLE = 20_000
# A reason is an identifier (retries_exhausted, permanent, ...); the rest of a message is detail.
REASON_PREFIX_CHARS = 64
# A list filter beside the statuses: open dead letters of a replay that failed again.
FAILED_AGAIN = "failed_again"
# A paced replay uses at most this share of the slowest vendor budget, leaving the rest to new
# registrations; a registration's replay costs about this many Shopify cost points.
REPLAY_BUDGET_SHARE = 0.5
SHOPIFY_POINTS_PER_REPLAY = 10.0


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
    elapsed_seconds: float | None = None,
) -> DeadLetter:
    """Open (or refresh) the dead letter for this registration's step; args are ids only. A new one
    after a replay of this step links to the dead letter replayed (`previous_id`)."""
    letter = session.scalar(open_dead_letters(registration_id=registration_id, system=system))
    message = scrub_text(f"{reason}: {failure_text(reason, error, elapsed_seconds)}")[:2000]
    if letter is None:
        letter = DeadLetter(
            registration_id=registration_id,
            system=system,
            task_name=task_name,
            args={"registration_id": registration_id},
            error_class=type(error).__name__,
            message=message,
            attempts=attempts,
            previous_id=_replayed_before(session, DeadLetter.registration_id == registration_id, system),
        )
        session.add(letter)
    else:
        letter.error_class = type(error).__name__
        letter.message = message
        letter.attempts = attempts
        letter.last_failed_at = utcnow()
    return letter


def record_change_dead_letter(
    session: Session, change: Change, *, message: str, error: BaseException, task_name: str
) -> DeadLetter:
    """Open (or refresh) a change's dead letter; a new one after a replay links to the one replayed."""
    letter = session.scalar(open_dead_letters().where(DeadLetter.change_id == change.id))
    if letter is None:
        letter = DeadLetter(
            change_id=change.id,
            system=change.source,
            task_name=task_name,
            args={"change_id": change.id},
            error_class=type(error).__name__,
            message=message,
            attempts=change.attempts,
            previous_id=_replayed_before(session, DeadLetter.change_id == change.id, change.source),
        )
        session.add(letter)
    else:
        letter.error_class = type(error).__name__
        letter.message = message
        letter.attempts = change.attempts
        letter.last_failed_at = utcnow()
    return letter


def _replayed_before(session: Session, owner: object, system: str) -> int | None:
    """The newest replayed dead letter of this step (or change): the one a new failure follows."""
    replayed: int | None = session.scalar(
        select(DeadLetter.id)
        .where(owner, DeadLetter.system == system, DeadLetter.status == DeadLetterStatus.REPLAYED)  # type: ignore[arg-type]
        .order_by(DeadLetter.id.desc())
        .limit(1)
    )
    return replayed


def settle_registration(session: Session, registration: Registration, *, by: str) -> list[int]:
    """When the registration is synced, resolve its dead letters still open or replayed: the work
    they stood for is done. `by` says what got it there when no replay did ("a later smaregi step
    run"); a replayed one keeps the replay that closed it. Returns the ids resolved."""
    if registration.status != RegistrationStatus.SYNCED:
        return []
    return _settle(session, DeadLetter.registration_id == registration.id, by)


def settle_change(session: Session, change_id: int, *, by: str) -> list[int]:
    """A change that succeeded resolves its open or replayed dead letters."""
    return _settle(session, DeadLetter.change_id == change_id, by)


def _settle(session: Session, owner: object, by: str) -> list[int]:
    letters = session.scalars(
        select(DeadLetter).where(
            owner,  # type: ignore[arg-type]
            DeadLetter.status.in_([DeadLetterStatus.OPEN, DeadLetterStatus.REPLAYED]),
        )
    ).all()
    for letter in letters:
        cause = (
            letter.resolved_by if letter.status == DeadLetterStatus.REPLAYED and letter.resolved_by else by
        )
        _close(letter, DeadLetterStatus.RESOLVED, f"resolved: synced after {cause}")
        letter.resolved_by = cause[:128]
    return [letter.id for letter in letters]


def failure_text(reason: str, error: BaseException, elapsed_seconds: float | None) -> str:
    """What a dead letter says went wrong. Out of retries, it says for how long it was retried; a step
    that ended waiting for our own rate limit says so, not "budget spent" (which reads like a bill)."""
    last = (
        f"the last attempt waited for its turn within the {error.system or 'vendor'} rate limit"
        if isinstance(error, RateLimited)
        else str(error)
    )
    if reason != "retries_exhausted" or elapsed_seconds is None:
        return last
    minutes = max(1, round(elapsed_seconds / 60))
    return f"retried for {minutes} minute{'s' if minutes != 1 else ''} without success ({last})"


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a list shows: a system, a reason and a status (any when None); the status
    may also be FAILED_AGAIN (open, after a replay that failed again)."""

    system: str | None = None
    reason: str | None = None
    status: str | None = DeadLetterStatus.OPEN


def matching(wanted: DeadLetterFilter) -> Select[DeadLetter]:
    """The dead letters `wanted` describes, unordered. The reason is matched on the message's prefix
    `reason:` in SQL, so a list pages in the database."""
    query = select(DeadLetter)
    if wanted.system:
        query = query.where(DeadLetter.system == wanted.system)
    if wanted.status == FAILED_AGAIN:
        query = query.where(DeadLetter.status == DeadLetterStatus.OPEN, DeadLetter.previous_id.is_not(None))
    elif wanted.status:
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


@dataclass(frozen=True)
class Progress:
    """How far a paced replay is: targets done of the total, and those with nothing open any more."""

    done: int
    total: int
    replayed: int
    not_open: int


class Pacer:
    """Spaces calls `per_second` apart from the first: call `wait()` before each."""

    def __init__(
        self,
        per_second: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.sleep = sleep
        self.clock = clock
        self.count = 0
        self.started: float | None = None

    def wait(self) -> None:
        if self.started is None:
            self.started = self.clock()
        delay = self.started + self.count / self.per_second - self.clock()
        if delay > 0:
            self.sleep(delay)
        self.count += 1


def replay_rate(settings: Settings) -> float:
    """Registrations a bulk replay starts per second: a share of the slowest vendor budget, so the
    replayed steps are not deferred past their time budget and dead-lettered again."""
    per_second = min(
        settings.smaregi_write_budget,
        settings.hubspot_rate_limit_per_10s / 10.0,
        settings.shopify_restore_rate / SHOPIFY_POINTS_PER_REPLAY,
    )
    return max(0.1, per_second * REPLAY_BUDGET_SHARE)


class DeadLetters:
    """List, show, replay, discard and resolve dead letters, each in its own short transaction."""

    def __init__(
        self,
        database: Database,
        *,
        queue_change: Callable[[int], None] | None = None,
        actor: Actor | None = None,
    ) -> None:
        # Bound to a publisher (the web app's, the worker's, the CLI's), a replay is published after
        # its commit; unbound, the relay publishes it. A replayed change's task is handed to
        # `queue_change` after the commit when given; else the change sweep queues it. With an
        # actor, every replay, discard and resolve is audited with who did it and from where.
        self.database = database
        self.queue_change = queue_change
        self.actor = actor

    def matching_ids(self, wanted: DeadLetterFilter) -> list[int]:
        """The ids of every dead letter `wanted` describes (all pages), oldest first."""
        query = matching(wanted).with_only_columns(DeadLetter.id).order_by(DeadLetter.id)
        with self.database.session() as session:
            return list(session.scalars(query))

    def export(self, wanted: DeadLetterFilter, *, batch: int = 1000) -> Iterator[DeadLetter]:
        """Every dead letter `wanted` describes, oldest first, read in batches (for a CSV export)."""
        after = 0
        while True:
            query = matching(wanted).where(DeadLetter.id > after).order_by(DeadLetter.id).limit(batch)
            with self.database.session() as session:
                rows = session.scalars(query).all()
            if not rows:
                return
            yield from rows
            after = rows[-1].id

    def successor(self, dead_letter_id: int) -> int | None:
        """The dead letter a replay of this one failed again as, if any."""
        with self.database.session() as session:
            later: int | None = session.scalar(
                select(DeadLetter.id).where(DeadLetter.previous_id == dead_letter_id).order_by(DeadLetter.id)
            )
            return later

    def replay_paced(
        self,
        targets: Sequence[str | int],
        *,
        per_second: float,
        progress: Callable[[Progress], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Replays:
        """Replay each target (a dead-letter or registration id) at most `per_second` a second, telling
        `progress` after each; a target with nothing open any more is counted, not raised."""
        replayed: list[Replayed] = []
        not_open: list[int] = []
        missed = 0
        pacer = Pacer(per_second, sleep=sleep, clock=clock)
        for index, target in enumerate(targets):
            pacer.wait()
            try:
                replayed.append(self.replay(target))
            except NothingToReplay:  # closed since it was listed (another operator, a later success)
                missed += 1
                if str(target).isdigit():
                    not_open.append(int(target))
            if progress is not None:
                progress(Progress(index + 1, len(targets), len(replayed), missed))
        return Replays(replayed, not_open)

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
            for letter in letters:
                self._replayed(session, letter, systems)
            outbox_id = reopen(session, registration, systems).id
            letter_ids = tuple(letter.id for letter in letters)
        return Replayed(
            registration.id,
            systems,
            outbox_id,
            letter_ids,
            published=bool(published_ids(self.database, [outbox_id])),
        )

    def replay_targets(self, letter_ids: Iterable[int]) -> tuple[Sequence[int], Sequence[int]]:
        """What replaying the given dead letters takes: the first open letter of each registration (or
        change), in id order, and the given letters that are not open. An unknown id is ignored."""
        wanted = sorted(set(letter_ids))
        letters: builtins.list[tuple[int, str | None, int | None, str]] = []
        with self.database.session() as session:
            for start in range(0, len(wanted), 1000):  # bounded IN lists, however many were selected
                query = select(
                    DeadLetter.id, DeadLetter.registration_id, DeadLetter.change_id, DeadLetter.status
                ).where(DeadLetter.id.in_(wanted[start : start + 1000]))
                letters.extend(tuple(row) for row in session.execute(query))  # type: ignore[misc]
        letters.sort()
        not_open = [letter_id for letter_id, _, _, status in letters if status != DeadLetterStatus.OPEN]
        first_open: dict[str, int] = {}
        for letter_id, registration_id, change_id, status in letters:
            if status == DeadLetterStatus.OPEN:
                first_open.setdefault(registration_id or f"change {change_id}", letter_id)
        return list(first_open.values()), not_open

    def replay_letters(self, letter_ids: Iterable[int]) -> Replays:
        """Replay the registrations of the given dead letters, each once, in the order of their first
        open letter; a letter that is not open is reported, an unknown id ignored."""
        targets, closed = self.replay_targets(letter_ids)
        not_open = [*closed]
        replayed: list[Replayed] = []
        for letter_id in targets:
            try:
                replayed.append(self.replay(letter_id))
            except NothingToReplay:  # closed since it was read (another operator, the CLI)
                not_open.append(letter_id)
        return Replays(replayed, sorted(not_open))

    def discard(self, dead_letter_id: int, *, note: str | None = None) -> DeadLetter:
        """Close a dead letter without replaying it: a person decided it needs nothing more."""
        return self._close_one(dead_letter_id, DeadLetterStatus.DISCARDED, note, "discard")

    def resolve(self, dead_letter_id: int, *, note: str | None = None) -> DeadLetter:
        """Close a dead letter whose work was done outside Membersync (by hand in the vendor's own
        tool): nothing is run; its step stays as it is and the note says what was done."""
        return self._close_one(dead_letter_id, DeadLetterStatus.RESOLVED, note, "resolve")

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
            self._replayed(session, letter, (change.source,))
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

    def _replayed(self, session: Session, letter: DeadLetter, systems: tuple[str, ...]) -> None:
        """Mark one dead letter replayed (by whom, from where), audited; `resolved_by` holds the
        replay, kept when the registration then reaches synced."""
        by = f"replay from {self.actor.via} by {self.actor.name}" if self.actor else "replay"
        replayed_at = utcnow().isoformat(timespec="seconds")
        _close(
            letter,
            DeadLetterStatus.REPLAYED,
            f"replayed {replayed_at}"
            + (f" from {self.actor.via} by {self.actor.name}" if self.actor else ""),
        )
        letter.resolved_by = by[:128]
        if self.actor is not None:
            add_entry(
                session,
                self.actor,
                "replay",
                dead_letter_id=letter.id,
                registration_id=letter.registration_id,
                outcome=f"replayed: {', '.join(systems) or 'nothing'}",
            )

    def _close_one(
        self, dead_letter_id: int, status: DeadLetterStatus, note: str | None, action: str
    ) -> DeadLetter:
        with self.database.session() as session:
            letter = session.get(DeadLetter, dead_letter_id)
            if letter is None or letter.status != DeadLetterStatus.OPEN:
                raise NotOpen(dead_letter_id)
            # "(ops: alice)" from the console, "(cli: alice)" or "(flower: alice)" from elsewhere.
            where = (
                "ops" if self.actor and self.actor.via == CONSOLE else (self.actor.via if self.actor else "")
            )
            who = f" ({where}: {self.actor.name})" if self.actor else ""
            _close(letter, status, f"{status}: {note or 'by ops'}{who}")
            if status == DeadLetterStatus.RESOLVED:
                letter.resolved_by = f"by hand{who}"[:128]
            if self.actor is not None:
                add_entry(
                    session,
                    self.actor,
                    action,
                    dead_letter_id=letter.id,
                    registration_id=letter.registration_id,
                    outcome=status,
                    note=note,
                )
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
    letter.closed_at = utcnow()
    letter.notes = ((letter.notes or "") + f"\n{note}").strip()
