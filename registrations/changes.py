"""Vendor change deliveries as durable steps: received once, queued, claimed, retried, dead-lettered.

A webhook (Shopify's `customers/*` topics today) tells us that something changed in the system that
owns it. What it carries is recorded as a row of `changes` with ids and times only (the vendor's
delivery id, the subject's id, when it was triggered): the task that processes it re-reads the
subject through the vendor's API, so no personal data from a webhook body is stored, queued or
logged. Each delivery then runs like a registration's step (`registrations/sync.py`): a short
compare-and-set claim, the vendor calls with no transaction open, and a short record; a transient
failure goes back to pending with a backoff, a permanent one or the last attempt becomes a dead
letter (`registrations/dead_letters.py`) that ops replay, resolve or discard like a step's.

At the door (`Changes.receive`):
- a delivery id seen before is processed once (the unique `delivery_id`); only a change still
  waiting for the broker is queued again (the sender retried because we could not queue it);
- a delivery older than one already seen for the same subject is recorded as stale and dropped
  (vendors retry with the original payload, hours later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from config.observability import scrub_text
from registrations.database import Database
from registrations.models import Change, utcnow
from registrations.states import ChangeState

# A pending change not handed to the broker for this long is queued again by the sweep.
REQUEUE_AFTER_SECONDS = 120
# A running change whose worker vanished (killed mid-call) may be claimed again after this.
CHANGE_LEASE_SECONDS = 600
ERROR_CHARS = 2000


@dataclass(frozen=True)
class Delivery:
    """What a webhook delivery says, ids and times only."""

    source: str  # the system that owns the change: shopify | smaregi
    topic: str
    delivery_id: str
    subject: str  # the vendor's id of what changed
    triggered_at: datetime | None = None
    changed_at: datetime | None = None  # the object's own updated_at in the delivery


@dataclass(frozen=True)
class Received:
    """What the door decided: the change's id, why, and whether its task is to be queued now."""

    change_id: int
    verdict: str  # one of VERDICTS
    queue: bool


NEW, DUPLICATE, STALE_DELIVERY = "new", "duplicate", "stale delivery"
VERDICTS = (NEW, DUPLICATE, STALE_DELIVERY)


@dataclass(frozen=True)
class Claimed:
    """A claimed change as the task needs it (detached from any session)."""

    id: int
    source: str
    topic: str
    subject: str
    attempts: int
    received_at: datetime


class Changes:
    """The changes over one database; every method is its own short transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- the door -------------------------------------------------------------------------------

    def receive(self, delivery: Delivery) -> Received:
        """Record a delivery once; decide whether it is new, a duplicate or stale."""
        try:
            with self.database.session() as session:
                known = session.scalar(select(Change).where(Change.delivery_id == delivery.delivery_id))
                if known is not None:
                    return Received(known.id, DUPLICATE, queue=_waits_for_broker(known))
                newest = session.scalar(
                    select(func.max(func.coalesce(Change.changed_at, Change.triggered_at))).where(
                        Change.source == delivery.source,
                        Change.subject == delivery.subject,
                        Change.state != ChangeState.STALE,
                    )
                )
                moment = delivery.changed_at or delivery.triggered_at
                stale = newest is not None and moment is not None and _aware(moment) < _aware(newest)
                change = Change(
                    source=delivery.source,
                    topic=delivery.topic,
                    delivery_id=delivery.delivery_id,
                    subject=delivery.subject,
                    triggered_at=delivery.triggered_at,
                    changed_at=delivery.changed_at,
                    state=ChangeState.STALE if stale else ChangeState.PENDING,
                    outcome="older than a change already received for this subject" if stale else None,
                    finished_at=utcnow() if stale else None,
                )
                session.add(change)
                session.flush()
                return Received(change.id, STALE_DELIVERY if stale else NEW, queue=not stale)
        except IntegrityError:
            # The same delivery arrived twice at once: the other request recorded it.
            with self.database.session() as session:
                known = session.scalar(select(Change).where(Change.delivery_id == delivery.delivery_id))
                if known is None:
                    raise
                return Received(known.id, DUPLICATE, queue=False)

    def mark_queued(self, change_ids: Sequence[int]) -> None:
        """The broker took these changes' tasks (the sweep leaves them alone for a while)."""
        if not change_ids:
            return
        with self.database.session() as session:
            session.execute(
                update(Change)
                .where(Change.id.in_(list(change_ids)), Change.state == ChangeState.PENDING)
                .values(queued_at=utcnow())
            )

    def waiting_for_broker(self, *, limit: int = 500) -> list[int]:
        """Pending changes not queued for REQUEUE_AFTER_SECONDS (the broker was down, a replay from a
        process without one), and running ones whose lease ran out: the sweep queues them again."""
        now = utcnow()
        queued_before = now - timedelta(seconds=REQUEUE_AFTER_SECONDS)
        claimed_before = now - timedelta(seconds=CHANGE_LEASE_SECONDS)
        query = (
            select(Change.id)
            .where(
                or_(
                    (Change.state == ChangeState.PENDING)
                    & or_(Change.queued_at.is_(None), Change.queued_at < queued_before)
                    & (Change.received_at < queued_before),
                    (Change.state == ChangeState.RUNNING) & (Change.queued_at < claimed_before),
                )
            )
            .order_by(Change.id)
            .limit(limit)
        )
        with self.database.session() as session:
            return list(session.scalars(query))

    # --- the step ---------------------------------------------------------------------------------

    def claim(self, change_id: int) -> Claimed | None:
        """pending → running, one attempt more (compare-and-set); None when there is nothing to run
        (finished, or running under another delivery's lease)."""
        now = utcnow()
        lease_over = now - timedelta(seconds=CHANGE_LEASE_SECONDS)
        with self.database.session() as session:
            claimed = session.execute(
                update(Change)
                .where(
                    Change.id == change_id,
                    or_(
                        Change.state == ChangeState.PENDING,
                        (Change.state == ChangeState.RUNNING) & (Change.queued_at < lease_over),
                    ),
                )
                .values(state=ChangeState.RUNNING, attempts=Change.attempts + 1, queued_at=now)
            )
            if not getattr(claimed, "rowcount", 0):
                return None
            change = session.get(Change, change_id)
            assert change is not None
            return Claimed(
                change.id, change.source, change.topic, change.subject, change.attempts, change.received_at
            )

    def finish(self, change_id: int, state: ChangeState, outcome: str) -> None:
        """Record what processing found and did (ids and field names only)."""
        with self.database.session() as session:
            change = session.get(Change, change_id)
            if change is None or change.state != ChangeState.RUNNING:
                return  # replayed or finished by another delivery meanwhile: theirs stands
            change.state = state
            change.outcome = outcome[:ERROR_CHARS]
            change.error = None
            change.finished_at = utcnow()
            # Imported here: registrations.dead_letters imports this module.
            from registrations.dead_letters import settle_change

            settle_change(session, change_id, by=f"a later run of the change ({state})")

    def retry(self, change_id: int, error: BaseException) -> None:
        """A transient failure: back to pending (the task retries it with a backoff)."""
        with self.database.session() as session:
            change = session.get(Change, change_id)
            if change is not None and change.state == ChangeState.RUNNING:
                change.state = ChangeState.PENDING
                change.error = _message("transient", error)

    def dead_letter(self, change_id: int, error: BaseException, *, reason: str, task_name: str) -> None:
        """Failed for good or out of retries: dead, with an open dead letter ops can replay."""
        with self.database.session() as session:
            change = session.get(Change, change_id)
            if change is None:
                return
            message = _message(reason, error)
            change.state = ChangeState.DEAD
            change.error = message
            change.finished_at = utcnow()
            # Imported here: registrations.dead_letters imports this module.
            from registrations.dead_letters import record_change_dead_letter

            record_change_dead_letter(session, change, message=message, error=error, task_name=task_name)

    def get(self, change_id: int) -> Change | None:
        """One change, detached."""
        with self.database.session() as session:
            return session.get(Change, change_id)


def reopen_change(change: Change) -> None:
    """A replay: the change runs again from its first attempt (queued by the caller or the sweep)."""
    change.state = ChangeState.PENDING
    change.attempts = 0
    change.error = None
    change.outcome = None
    change.finished_at = None
    change.queued_at = None


def describe_change(change: Change) -> str:
    """One line for ops: source, topic and subject (vendor ids, no personal data)."""
    return f"{change.source} {change.topic} {change.subject}"


def _waits_for_broker(change: Change) -> bool:
    return change.state == ChangeState.PENDING and change.queued_at is None


def _message(reason: str, error: BaseException) -> str:
    return scrub_text(f"{reason}: {type(error).__name__}: {error}")[:ERROR_CHARS]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
