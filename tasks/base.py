"""The Celery task around every pipeline step: claim → call → record, and retry translation.

The domain does the work (`registrations.steps`) and the bookkeeping (`registrations.sync`, each a
short transaction); this class strings them together for one delivery and turns failures into
Celery's terms, once: transient → retry with backoff; permanent or exhausted → dead letter.
Database operational errors (a locked SQLite file, a dropped connection) are transient too.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, NoReturn, TypeVar

import redis
from celery import Task
from celery.exceptions import Ignore
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from config import metrics
from config.celery import is_rabbitmq
from config.logs import log_context
from config.systems import SYSTEM_NAMES, SYSTEMS
from config.systems import system as system_named
from connectors.errors import PermanentError, RateLimited, ThrottledError, TransientError
from connectors.ratelimit import one_step
from registrations.hints import dead_letter_summary
from registrations.locks import LockBusy
from registrations.outbox import queue_remaining
from registrations.retry import deferral_delay, retry_delay
from registrations.states import StepState
from registrations.steps.base import Outcome, Step
from registrations.sync import Claimed, Finished, Recorded, StepLedger, WorkerLost
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

# tasks/points.py's task, by name (this module is imported by every task module).
POINTS_APPLY_TASK = "membersync.points.apply"

# How a delivery that found nothing to do is counted.
_FINISHED_OUTCOME = {StepState.SKIPPED: StepState.SKIPPED, "held": "held", "missing": "missing"}

# What a database says when it is unavailable for now (locked, restarting, connection dropped), as
# opposed to a statement that can never succeed.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
# Pauses before recording a step's outcome again when the database refused the record (see
# StepTask._record): three attempts, each with its own wait (SQLite's 10 s busy timeout), so the
# person's lock (LOCK_TIMEOUT_SECONDS, 60 s) still outlasts the call and every record attempt.
RECORD_PAUSES: tuple[float, ...] = (0.5, 1.5)
# What redis-py raises while Redis is unreachable (restarting, a dropped connection).
TRANSIENT_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class StepDeadLettered(Exception):
    """The step is dead-lettered: this delivery ends as a FAILURE (Flower's failed view lists it),
    whose message names the dead letter, the reason and how to re-run it."""


class DatabaseUnavailable(TransientError):
    """The database refused or dropped the step's short transaction; retried like a vendor outage."""


class RedisUnavailable(TransientError):
    """Redis (the person lock, the rate limits) was unreachable mid-step; retried like a vendor outage."""


class StepTask(Task):
    """A step of the pipeline for one system; subclasses set `step_class`."""

    abstract = True
    step_class: ClassVar[type[Step]] = Step
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own retry count is off (retry(max_retries=None) means "the task's default", 3): the
    # step's policy in the database decides, counting attempts across redeliveries and replays.
    max_retries = None
    # An expected ending, logged without a traceback (the message says everything ops need).
    throws = (StepDeadLettered,)

    @property
    def system(self) -> str:
        return self.step_class.system

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.membersync
        return runtime

    @property
    def ledger(self) -> StepLedger:
        return StepLedger(
            self.runtime.database, self.runtime.settings, self.system, leases=self.runtime.leases
        )

    def run_step(self, registration_id: str) -> dict[str, Any]:
        """Run the step once for `registration_id`; a finished step returns at once."""
        with log_context(registration_id=registration_id, system=self.system):
            return self._run_step(registration_id)

    def _run_step(self, registration_id: str) -> dict[str, Any]:
        delivery = str(self.request.id)
        ledger = self.ledger
        recorded: Recorded | None = None
        try:
            claimed = ledger.claim(registration_id, delivery)
            if isinstance(claimed, Finished):
                if claimed.state == "held":
                    raise Ignore()  # another delivery holds the step and carries the chain on
                if claimed.state == StepState.DEAD:
                    self._already_dead(registration_id)
                metrics.STEP_OUTCOMES.labels(
                    self.system, _FINISHED_OUTCOME.get(claimed.state, "already_done")
                ).inc()
                return {"registration_id": registration_id, "state": claimed.state}
            if isinstance(claimed, WorkerLost):
                error = RuntimeError("attempts exhausted without an outcome")
                return self._dead_letter(registration_id, error, "worker_lost")
            step = self.step_class(self.runtime.settings, self.runtime.database)
            with one_step(), self._person_lock(step, claimed):
                # The lock covers the read and the record too: the next holder sees what this one
                # recorded, and never acts on an identity older than its own call.
                work = ledger.read(registration_id, claimed)
                outcome = step.call(work, self.runtime.connectors)
                recorded = self._record(ledger, registration_id, delivery, outcome)
                if not recorded.held:
                    log.info(
                        "step %s of %s was taken over; its holder records it", self.system, registration_id
                    )
                    raise Ignore()
            # A finished step this success reopened (the member number's email) was queued in the
            # outbox with the record and published after its commit (or is left to the relay).
            if recorded.outbox_id is None:
                self._queue_left_behind(registration_id)
            if recorded.point_movement_id is not None:
                self._apply_points(recorded.point_movement_id)
            self._count_success(recorded)
            # Flower shows the result: a step that waits for the address's owner says so.
            state = StepState.WAITING if outcome.waiting else StepState.SUCCEEDED
            return {"registration_id": registration_id, "state": state}
        except PermanentError as error:
            return self._dead_letter(registration_id, error, getattr(error, "reason", "permanent"))
        except TransientError as error:
            return self._retry_or_dead_letter(registration_id, error)
        except TRANSIENT_DATABASE_ERRORS as error:
            return self._retry_or_dead_letter(registration_id, _database_error(error))
        except TRANSIENT_REDIS_ERRORS as error:
            return self._redis_unavailable(registration_id, delivery, recorded, error)

    def _record(self, ledger: StepLedger, registration_id: str, delivery: str, outcome: Outcome) -> Recorded:
        """Record what the vendor call did, trying again while the database refuses for a moment.

        The call has happened by now. A transient database error here (SQLite's busy timeout under
        many writers, a dropped connection) used to send the step round the retry path, which calls
        the vendor again: harmless for a create that finds its own object again, but a second welcome
        mail, since SMTP cannot take a message back (found by `bench ratelimit --vendor shopify` on
        SQLite: 2 of 300 welcomes sent twice, each after a record that waited out the busy timeout).
        So the outcome is kept and recorded again, still under the person's lock; only an outage that
        outlasts RECORD_PAUSES takes the retry path. A failed record rolled back, so trying it again
        writes exactly what the first would have.
        """
        return self._patiently(
            registration_id,
            "recording its outcome",
            lambda: ledger.record(registration_id, delivery, outcome),
        )

    def _patiently(self, registration_id: str, doing: str, write: Callable[[], T]) -> T:
        """`write` (one short transaction of the step's bookkeeping), tried again after each of
        RECORD_PAUSES while the database refuses it for a moment; the last refusal is raised."""
        for pause in (*RECORD_PAUSES, None):
            try:
                return write()
            except TRANSIENT_DATABASE_ERRORS as error:
                if pause is None:
                    raise
                log.warning(
                    "step %s of %s: %s failed (%s); trying again in %.1fs",
                    self.system,
                    registration_id,
                    doing,
                    _database_error(error),
                    pause,
                )
                time.sleep(pause)
        raise AssertionError("unreachable")  # the last pause is None: the loop returns or raises

    def _redis_unavailable(
        self, registration_id: str, delivery: str, recorded: Recorded | None, error: Exception
    ) -> dict[str, Any]:
        """Redis (the person lock, the rate limits) went away mid-step, e.g. restarting: transient.

        Left unhandled, the step stayed `running` under this live process, and its redelivered
        message was dropped as held, until the step lease (10 minutes) ran out. A step whose outcome
        is recorded is done (only the lock's release failed); a step this delivery holds goes back
        to pending and is retried like a vendor outage; a step it never took (Redis failed during the
        claim, which rolled back) is retried as a message, with nothing changed.
        """
        failure = RedisUnavailable(f"redis: {type(error).__name__}")
        if recorded is not None and recorded.held:
            log.warning("step %s of %s: redis unavailable after its record", self.system, registration_id)
            return {"registration_id": registration_id, "state": StepState.SUCCEEDED}
        try:
            held = self.ledger.holds(registration_id, delivery)
        except TRANSIENT_DATABASE_ERRORS as db_error:
            self._retry_without_database(registration_id, _database_error(db_error))
        if not held:
            self._retry_without_database(registration_id, failure)
        return self._retry_or_dead_letter(registration_id, failure)

    def _queue_left_behind(self, registration_id: str) -> None:
        """Queue the later steps reopened after this delivery's chain was built, when they are
        pending (`StepLedger.queue_left_behind`): the chain queued with their reopening may have
        stopped at this very step, held by this delivery.

        Judged only for a delivery that is part of a chain (Celery's `request.chain`: the steps
        still to come, empty for the last); chains are built from every unfinished step, so an
        ordinary chain carries every later step and nothing is read. A delivery outside a chain (a
        one-step chain, a task sent by hand) carries nothing on.
        """
        coming = self.request.chain
        if coming is None:
            return
        names = {system.task_name: system.name for system in SYSTEMS}
        carried = {
            names[entry["task"]]
            for entry in coming
            if isinstance(entry, Mapping) and entry.get("task") in names
        }
        later = SYSTEM_NAMES[SYSTEM_NAMES.index(self.system) + 1 :]
        uncovered = set(later) - carried
        if not uncovered:
            return
        try:
            outbox_id = self.ledger.queue_left_behind(registration_id, uncovered)
        except TRANSIENT_DATABASE_ERRORS:
            log.warning("could not queue the reopened steps of %s; the stalled sweep will", registration_id)
            return
        if outbox_id is not None:
            log.info("queued the steps of %s reopened after its chain was built", registration_id)

    def _apply_points(self, movement_id: str) -> None:
        """Queue the sign-up bonus this success planned: a task of its own, so this step's retries
        never send points. A failed publish is left to the points sweep (beat)."""
        try:
            self.app.tasks[POINTS_APPLY_TASK].apply_async(args=(movement_id,))
        except Exception as error:  # brokers raise many kinds; the sweep finds the planned movement
            log.warning(
                "point movement %s not queued (%s): left to the sweep", movement_id, type(error).__name__
            )

    def _count_success(self, recorded: Recorded) -> None:
        metrics.STEP_OUTCOMES.labels(self.system, StepState.SUCCEEDED).inc()
        if recorded.synced_after is not None:
            metrics.TIME_TO_SYNCED.observe(recorded.synced_after)

    def _person_lock(self, step: Step, claimed: Claimed) -> AbstractContextManager[None]:
        return self.runtime.locks.hold(claimed.email) if step.locks_email else nullcontext()

    def _retry_or_dead_letter(self, registration_id: str, error: TransientError) -> dict[str, Any]:
        # Our own rate limit or another worker's lock: nothing was tried, so no attempt is used up.
        deferred = isinstance(error, RateLimited | LockBusy)
        try:
            # Patiently: given up, the step would stay running under this live process, and this
            # very message's retry would find it held and stop (`_retry_without_database`).
            decision = self._patiently(
                registration_id,
                "putting it back for a retry",
                lambda: self.ledger.retry_or_exhaust(registration_id, error, deferred=deferred),
            )
        except TRANSIENT_DATABASE_ERRORS as db_error:
            self._retry_without_database(registration_id, _database_error(db_error))
        if decision.exhausted:
            return self._dead_letter(registration_id, error, "retries_exhausted")
        retry_after = error.retry_after if isinstance(error, ThrottledError) else None
        if deferred:
            countdown = deferral_delay(retry_after)
            metrics.STEP_OUTCOMES.labels(self.system, "deferred").inc()
        else:
            countdown = retry_delay(self.ledger.policy, decision.attempts, retry_after=retry_after)
            metrics.STEP_OUTCOMES.labels(self.system, "retried").inc()
            metrics.STEP_RETRIES.labels(self.system).inc()
        log.info(
            "step %s of %s retries in %.1fs (attempt %d)",
            self.system,
            registration_id,
            countdown,
            decision.attempts,
        )
        raise self.retry(countdown=self._broker_countdown(countdown), exc=error)

    def _retry_without_database(self, registration_id: str, error: TransientError) -> NoReturn:
        """The database is unreachable even for bookkeeping: back off on Celery's own count.

        The step stays as the database last saw it; the stalled sweep picks it up if this message is
        lost too, and the next attempt that reaches the database counts from there.
        """
        ceiling = min(
            self.ledger.policy.cap_seconds, self.ledger.policy.base_seconds * 2**self.request.retries
        )
        countdown = random.uniform(ceiling / 2, ceiling)
        log.warning(
            "step %s of %s: database unavailable, retrying in %.1fs", self.system, registration_id, countdown
        )
        raise self.retry(countdown=self._broker_countdown(countdown), exc=error)

    def _broker_countdown(self, countdown: float) -> float:
        if is_rabbitmq(self.app.conf.broker_url or ""):
            # Native delayed delivery (quorum queues) counts whole seconds and refuses less than one
            # (celery turns 0.4 s into 0 and kombu raises).
            return float(max(1, math.ceil(countdown)))
        return countdown

    def _dead_letter(self, registration_id: str, error: BaseException, reason: str) -> NoReturn:
        """Record the dead letter and end this delivery as a FAILURE that says how to re-run it.

        A failure ends the Celery chain, so for a step other than the master the rest of the
        pipeline is queued here (the customer still gets the welcome email); the master's failure
        stops the registration: nothing can be synced without the customer master.
        """
        try:
            letter_id = self._patiently(
                registration_id,
                "recording its dead letter",
                lambda: self.ledger.dead_letter(registration_id, error, reason, self.name),
            )
            metrics.STEP_OUTCOMES.labels(self.system, StepState.DEAD).inc()
            metrics.DEAD_LETTERS.labels(self.system, reason).inc()
        except TRANSIENT_DATABASE_ERRORS as db_error:
            self._retry_without_database(registration_id, _database_error(db_error))
        log.warning("step %s of %s dead-lettered as #%s: %s", self.system, registration_id, letter_id, reason)
        if not system_named(self.system).master:
            self._carry_on(registration_id)
        raise StepDeadLettered(dead_letter_summary(self.system, registration_id, letter_id, reason))

    def _carry_on(self, registration_id: str) -> None:
        """Queue the registration's remaining steps past this failed one (published after the commit;
        the relay covers a broker that is down)."""
        try:
            queue_remaining(self.runtime.database, registration_id)
        except TRANSIENT_DATABASE_ERRORS:
            # The stalled sweep finds the pending steps and queues them.
            log.warning("could not queue the rest of %s; the stalled sweep will", registration_id)

    def _already_dead(self, registration_id: str) -> NoReturn:
        """Applying a step that is dead-lettered does nothing: say so, and how to re-run it."""
        letter_id = self.ledger.open_dead_letter_id(registration_id)
        if letter_id is None:
            raise StepDeadLettered(
                f"{self.system} step of registration {registration_id} is dead and its dead letter is "
                f"closed; replay the registration with `membersync dlq replay {registration_id}`"
            )
        raise StepDeadLettered(dead_letter_summary(self.system, registration_id, letter_id, "already dead"))


def _database_error(error: DBAPIError) -> DatabaseUnavailable:
    # The class name only: a driver's message can quote the statement's parameters.
    return DatabaseUnavailable(
        f"database: {type(error.orig).__name__ if error.orig else type(error).__name__}"
    )
