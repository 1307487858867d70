"""Transactional outbox: publish after commit, and a relay for whatever stayed unpublished.

Whatever needs a chain (an acceptance, a replay, a backfill, a confirmation's decision, a step's
follow-up, the rest of a chain past a failed step, a stalled chain) only writes an outbox row in its
own transaction. `publish_after_commit` binds a database to a publisher: every transaction of the
bound database that wrote outbox rows publishes them right after its commit, and a rolled-back one
publishes nothing. One error policy, here only: a failure to publish is logged (ids and the error's
class, never personal data) and the row stays for the relay (beat schedule and worker start), so an
accepted registration never depends on the broker being up.

This module knows no broker: it is handed a `Publisher` (the tasks layer's, which builds the Celery
chain), so the domain stays free of Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import and_, or_, select, update

from config.settings import Settings
from registrations.database import Database, KnownChain
from registrations.models import OutboxMessage, Registration, SyncStep, utcnow
from registrations.states import StepState
from registrations.status import remaining_systems

log = logging.getLogger(__name__)

RELAY_BATCH = 500


class Publisher(Protocol):
    """Sends the chain of `systems`' steps for one registration to the broker (ids only)."""

    def __call__(self, registration_id: str, systems: Sequence[str]) -> None: ...


def publish(
    publisher: Publisher,
    database: Database,
    outbox_ids: Iterable[int],
    known: Mapping[int, KnownChain] | None = None,
) -> int:
    """Publish the given outbox rows; returns how many went out. Failures stay for the relay.

    A row in `known` (its chain stated by its writer, `registrations.database.note_chain`) is sent
    from those ids and then marked in one statement; any other row is read back, with its steps, under
    a row lock.
    """
    published = 0
    known = known or {}
    for outbox_id in outbox_ids:
        if outbox_id in known:
            published += _publish_known(publisher, database, outbox_id, *known[outbox_id])
            continue
        with database.session() as session:
            message = session.get(OutboxMessage, outbox_id, with_for_update=True)
            if message is None or message.published_at is not None:
                continue
            registration = session.get(Registration, message.registration_id)
            if registration is None:
                continue
            systems = remaining_systems(registration.steps)
            try:
                if systems:
                    publisher(registration.id, systems)
            except Exception as error:  # brokers raise many kinds; every one means "not published"
                message.publish_attempts += 1
                message.last_error = f"{type(error).__name__}: {error}"[:500]
                log.warning("outbox %s not published yet: %s", outbox_id, type(error).__name__)
                continue
            message.published_at = utcnow()
            message.publish_attempts += 1
            message.last_error = None
            published += 1
    return published


def _publish_known(
    publisher: Publisher, database: Database, outbox_id: int, registration_id: str, systems: Sequence[str]
) -> int:
    """Send a chain its writer stated, then record the outcome on its row (one UPDATE, no ORM).

    The relay only takes rows older than OUTBOX_RELAY_AFTER_SECONDS, so it does not race this; if it
    ever did, the chain would go twice, which is safe (a finished step is a no-op)."""
    error: str | None = None
    try:
        if systems:
            publisher(registration_id, systems)
    except Exception as failure:  # brokers raise many kinds; every one means "not published"
        error = f"{type(failure).__name__}: {failure}"[:500]
        log.warning("outbox %s not published yet: %s", outbox_id, type(failure).__name__)
    values: dict[str, object] = {"publish_attempts": OutboxMessage.publish_attempts + 1, "last_error": error}
    if error is None:
        values["published_at"] = utcnow()
    with database.engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, OutboxMessage.published_at.is_(None))
            .values(values)
        )
    return 0 if error else 1


def publish_claimed(
    publisher: Publisher, database: Database, outbox_id: int, registration_id: str, systems: Sequence[str]
) -> bool:
    """Send a chain whose outbox row its writer committed as published (claimed: the web intake,
    `accept_registration(caller_publishes=True)`), right after that commit; returns whether it went.

    The claim spares the request a second transaction when the broker takes the chain, the usual
    case. When it does not, the row is un-marked (published_at NULL, the error recorded) and the
    relay sends it after OUTBOX_RELAY_AFTER_SECONDS, as with any unpublished row; the caller carries
    on either way. Only a process that dies between its commit and this call, or a database that also
    fails the un-marking, leaves a claimed row unsent: its steps stay pending, and the stalled-chain
    sweep (`resume_stalled`, STALLED_AFTER_SECONDS) queues them again.
    """
    try:
        if systems:
            publisher(registration_id, systems)
        return True
    except Exception as failure:  # brokers raise many kinds; every one means "not published"
        error = f"{type(failure).__name__}: {failure}"[:500]
        log.warning("outbox %s not published yet: %s", outbox_id, type(failure).__name__)
    try:
        with database.engine.begin() as connection:
            connection.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id)
                .values(published_at=None, last_error=error)
            )
    except Exception as failure:  # the commit stands; the stalled-chain sweep queues it again
        log.warning(
            "outbox %s not published and not left to the relay (%s); the stalled-chain sweep will",
            outbox_id,
            type(failure).__name__,
        )
    return False


class _PublishAfterCommit:
    """The `after_commit` of a database bound to a publisher (`publish_after_commit`)."""

    def __init__(self, database: Database, publisher: Publisher) -> None:
        self.database = database
        self.publisher = publisher

    def __call__(self, outbox_ids: list[int], known: Mapping[int, KnownChain]) -> None:
        try:
            publish(self.publisher, self.database, outbox_ids, known)
        except Exception as error:  # the commit stands; the relay publishes what is left
            log.warning(
                "outbox %s not published after commit (%s); the relay will",
                ", ".join(map(str, outbox_ids)),
                type(error).__name__,
            )


def publish_after_commit(database: Database, publisher: Publisher) -> Database:
    """`database`, whose transactions publish the outbox rows they wrote right after their commit.

    A failure leaves the row to the relay: a broker error is recorded on the row by `publish`, and
    anything else (the database failing while the row is marked) is logged here. Either way the
    transaction that wrote the row has committed, so its caller carries on as if it had been sent.
    """
    return database.with_after_commit(_PublishAfterCommit(database, publisher))


def bound_publisher(database: Database) -> Publisher | None:
    """The publisher `database` was bound to by `publish_after_commit` (None: it publishes nothing),
    for a writer that publishes its own rows (`publish_claimed`)."""
    after_commit = database.after_commit
    return after_commit.publisher if isinstance(after_commit, _PublishAfterCommit) else None


def published_ids(database: Database, outbox_ids: Iterable[int]) -> list[int]:
    """Those of `outbox_ids` that have reached the broker (by now: the relay may have sent one since)."""
    wanted = list(outbox_ids)
    if not wanted:
        return []
    with database.session() as session:
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.id.in_(wanted), OutboxMessage.published_at.is_not(None))
                .order_by(OutboxMessage.id)
            )
        )


def unpublished_ids(database: Database, *, older_than_seconds: float) -> list[int]:
    """Outbox rows still unpublished and older than the given age."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with database.session() as session:
        rows = session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.published_at.is_(None), OutboxMessage.created_at <= cutoff)
            .order_by(OutboxMessage.id)
            .limit(RELAY_BATCH)
        )
        return list(rows)


def relay(publisher: Publisher, database: Database, *, older_than_seconds: float) -> int:
    """Re-publish what stayed unpublished; returns how many went out."""
    return publish(publisher, database, unpublished_ids(database, older_than_seconds=older_than_seconds))


def relay_and_resume(publisher: Publisher, database: Database, settings: Settings) -> int:
    """One run of the relay (beat, worker start): publish the rows left unpublished for longer than
    OUTBOX_RELAY_AFTER_SECONDS (younger ones are being published by their writer), then queue again
    the chains that stalled after publishing. Returns how many went out."""
    published = relay(publisher, database, older_than_seconds=settings.outbox_relay_after_seconds)
    return published + resume_stalled(publish_after_commit(database, publisher), settings)


def stalled_registration_ids(
    database: Database, *, older_than_seconds: float, lease_seconds: float
) -> list[str]:
    """Registrations whose chain was lost: a step pending and untouched for longer than the
    threshold, or running under a holder whose lease ran out (its worker died).

    A published chain can still be lost after its row was marked published: a Redis restart without
    persistence, or a worker killed while it held messages that Redis only redelivers after the
    visibility timeout (hours). The database knows what never finished.
    """
    now = utcnow()
    stalled = now - timedelta(seconds=older_than_seconds)
    lease_expired = now - timedelta(seconds=lease_seconds)
    with database.session() as session:
        rows = session.scalars(
            select(SyncStep.registration_id)
            .where(
                or_(
                    and_(SyncStep.state == StepState.PENDING, SyncStep.updated_at <= stalled),
                    and_(SyncStep.state == StepState.RUNNING, SyncStep.updated_at <= lease_expired),
                )
            )
            .group_by(SyncStep.registration_id)
            .limit(RELAY_BATCH)
        )
        return list(rows)


def resume_stalled(database: Database, settings: Settings) -> int:
    """Queue the remaining chain of every stalled registration again (steps are idempotent); each
    row is published after its commit when `database` publishes (the worker's does). Returns how
    many went out."""
    outbox_ids = []
    for registration_id in stalled_registration_ids(
        database,
        older_than_seconds=settings.stalled_after_seconds,
        lease_seconds=settings.step_lease_seconds,
    ):
        with database.session() as session:
            message = OutboxMessage(registration_id=registration_id)
            session.add(message)
            # Touch the pending steps so the next sweep waits a full threshold before trying again
            # (a running step's timestamp is its holder's lease: never touched here).
            for step in session.scalars(
                select(SyncStep).where(
                    SyncStep.registration_id == registration_id, SyncStep.state == StepState.PENDING
                )
            ):
                step.updated_at = utcnow()
            session.flush()
            outbox_ids.append(message.id)
    if outbox_ids:
        log.info("resuming %d stalled registration(s)", len(outbox_ids))
    return len(published_ids(database, outbox_ids))


def queue_remaining(database: Database, registration_id: str) -> int | None:
    """An outbox row for the registration's unfinished steps (None when nothing is left to run).

    A failed step ends its Celery chain; this carries the rest of the pipeline on past it, durably:
    published after the commit when `database` publishes, or by the relay if the broker is down.
    """
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        if registration is None or not remaining_systems(registration.steps):
            return None
        message = OutboxMessage(registration_id=registration_id)
        session.add(message)
        session.flush()
        return message.id
