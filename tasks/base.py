"""The base class of every pipeline step: database session, idempotent skip, retry translation.

A step runs in three short transactions: claim (count the attempt, so a message that keeps killing
workers still runs out of attempts), sync (the connector call and its result, together), and on
failure the bookkeeping (retry or dead letter). Connector errors are translated here, once:
transient → Celery retry with backoff; permanent or exhausted → dead letter.
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Reject
from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import Session

from config.celery import is_rabbitmq
from config.settings import RetryPolicy
from connectors.errors import PermanentError, RateLimited, ThrottledError, TransientError
from connectors.ratelimit import one_step
from tasks.dead_letters import record_dead_letter
from tasks.locks import LockBusy, email_lock
from tasks.models import Registration, SyncStep, utcnow
from tasks.pipeline import derive_status
from tasks.retry import deferral_delay, retries_exhausted, retry_delay
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# The step whose failure stops the chain: nothing else can be synced without the customer master.
MASTER_SYSTEM = "shopify"


def public_error(error: BaseException) -> str:
    """What a step shows on the public status API: the kind of failure, never vendor text.

    Vendor messages can echo what we sent (an address in a validation message, a query string in a
    URL); the full, scrubbed text is kept in the dead letter for ops.
    """
    status = getattr(error, "status", None)
    return f"{type(error).__name__}" + (f" (HTTP {status})" if status else "")


class StepDeadLettered(Exception):
    """The master step was dead-lettered: the chain stops here (visible as a failure in Flower)."""


class StepTask(Task):
    """A step of the pipeline for one system; subclasses set `system` and implement `sync`."""

    abstract = True
    system: str = ""
    # Steps that find-or-create in their system hold the per-email lock while they do.
    locks_email: bool = False
    acks_late = True
    reject_on_worker_lost = True
    # Celery's own retry count is off (retry(max_retries=None) means "the task's default", 3): the
    # step's policy in the database decides, counting attempts across redeliveries and replays.
    max_retries = None

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.membersync
        return runtime

    def policy(self) -> RetryPolicy:
        """This system's retry policy from settings."""
        return self.runtime.settings.retry_policies[self.system]

    def run_step(self, registration_id: str) -> dict[str, Any]:
        """Run the step once for `registration_id`; a finished step returns at once."""
        claimed = self._claim(registration_id)
        if isinstance(claimed, dict):
            return claimed
        try:
            # The lock covers the commit too: the next holder must see what this one recorded.
            with one_step(), self._person_lock(claimed), self.runtime.database.session() as session:
                registration, step = self._load(session, registration_id)
                self.sync(session, registration, step)
                if step.state == "running":
                    step.state = "succeeded"
                step.last_error = None
                registration.status = derive_status(registration.steps)
                return {"registration_id": registration_id, "state": step.state}
        except PermanentError as error:
            return self._dead_letter(registration_id, error, getattr(error, "reason", "permanent"))
        except TransientError as error:
            return self._retry_or_dead_letter(registration_id, error)

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        """Bring `registration` into this task's system and record the outcome on `step`."""
        raise NotImplementedError

    def _person_lock(self, email: str) -> AbstractContextManager[None]:
        if not self.locks_email:
            return nullcontext()
        settings = self.runtime.settings
        return email_lock(
            self.runtime.redis, email, timeout=settings.lock_timeout_seconds, wait=settings.lock_wait_seconds
        )

    def _load(self, session: Session, registration_id: str) -> tuple[Registration, SyncStep]:
        registration = session.get(Registration, registration_id)
        assert registration is not None  # checked by _claim; registrations are never deleted mid-run
        return registration, registration.step(self.system)

    def _claim(self, registration_id: str) -> dict[str, Any] | str:
        """Count the attempt and mark the step running (giving the email to lock on), or a result
        when there is nothing to do."""
        with self.runtime.database.session() as session:
            registration = session.get(Registration, registration_id)
            if registration is None:
                return {"registration_id": registration_id, "state": "missing"}
            step = registration.step(self.system)
            if step.state in {"succeeded", "skipped", "dead"}:
                return {"registration_id": registration_id, "state": step.state}
            if not self.runtime.settings.enabled_systems()[self.system]:
                step.state = "skipped"
                registration.status = derive_status(registration.steps)
                return {"registration_id": registration_id, "state": step.state}
            if not self._free(step):
                # Another delivery holds this step right now (a duplicate publish): its chain goes
                # on from here, so this one stops rather than running later steps too early.
                raise Ignore()
            # A step left running with its attempts used up means every earlier attempt ended with
            # no bookkeeping: a worker died mid-step. A message that keeps killing workers must
            # still run out of attempts.
            worker_lost = step.state == "running" and step.attempts >= self.policy().max_attempts
            if not worker_lost and not self._take(session, step):
                raise Ignore()  # lost the compare-and-set to another delivery a moment ago
            registration.status = derive_status(registration.steps)
            email = registration.email
        if worker_lost:
            return self._dead_letter(
                registration_id, RuntimeError("attempts exhausted without an outcome"), "worker_lost"
            )
        return email

    def _free(self, step: SyncStep) -> bool:
        """Whether this delivery may take the step (the same rule as `_take`, read first)."""
        lease_expired = utcnow() - timedelta(seconds=self.runtime.settings.step_lease_seconds)
        return (
            step.state == "pending"
            or step.celery_task_id == self.request.id
            or (step.updated_at is not None and step.updated_at < lease_expired)
        )

    def _take(self, session: Session, step: SyncStep) -> bool:
        """Compare-and-set claim, so two deliveries never run one step at once.

        A step is free when pending, when running under this same message (a redelivery after a
        lost worker keeps its task id), or when its holder's lease ran out (a worker died for good).
        """
        lease_expired = utcnow() - timedelta(seconds=self.runtime.settings.step_lease_seconds)
        claimed = session.execute(
            update(SyncStep)
            .where(
                SyncStep.id == step.id,
                or_(
                    SyncStep.state == "pending",
                    and_(SyncStep.state == "running", SyncStep.celery_task_id == self.request.id),
                    and_(SyncStep.state == "running", SyncStep.updated_at < lease_expired),
                ),
            )
            .values(
                state="running",
                attempts=SyncStep.attempts + 1,
                celery_task_id=self.request.id,
                # The retry budget runs from the first attempt (a replay starts a new one).
                first_attempt_at=func.coalesce(SyncStep.first_attempt_at, utcnow()),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        session.refresh(step)
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def _retry_or_dead_letter(self, registration_id: str, error: TransientError) -> dict[str, Any]:
        policy = self.policy()
        # Our own rate limit or another worker's lock: nothing was tried, so no attempt is used up
        # (only the time budget still counts).
        deferred = isinstance(error, RateLimited | LockBusy)
        with self.runtime.database.session() as session:
            registration, step = self._load(session, registration_id)
            if deferred:
                step.attempts = max(0, step.attempts - 1)
            elapsed = (utcnow() - (step.first_attempt_at or registration.created_at)).total_seconds()
            if retries_exhausted(policy, step.attempts if not deferred else 0, elapsed):
                attempts = step.attempts
                exhausted = True
            else:
                exhausted = False
                step.state = "pending"
                if not deferred:
                    step.last_error = public_error(error)
                attempts = step.attempts
        if exhausted:
            return self._dead_letter(registration_id, error, "retries_exhausted")
        retry_after = error.retry_after if isinstance(error, ThrottledError) else None
        if deferred:
            countdown = deferral_delay(retry_after)
        else:
            countdown = retry_delay(policy, attempts, retry_after=retry_after)
        if is_rabbitmq(self.app.conf.broker_url or ""):
            # Native delayed delivery (quorum queues) counts whole seconds and refuses less than one
            # (celery turns 0.4 s into 0 and kombu raises).
            countdown = float(max(1, math.ceil(countdown)))
        log.info(
            "step %s of %s retries in %.1fs (attempt %d)", self.system, registration_id, countdown, attempts
        )
        raise self.retry(countdown=countdown, exc=error)

    def _dead_letter(self, registration_id: str, error: BaseException, reason: str) -> dict[str, Any]:
        with self.runtime.database.session() as session:
            registration, step = self._load(session, registration_id)
            step.state = "dead"
            step.last_error = f"{reason}: {public_error(error)}"
            record_dead_letter(
                session,
                registration_id=registration_id,
                system=self.system,
                task_name=self.name,
                error=error,
                reason=reason,
                attempts=step.attempts,
            )
            registration.status = derive_status(registration.steps)
        log.warning("step %s of %s dead-lettered: %s", self.system, registration_id, reason)
        if self.system == MASTER_SYSTEM:
            # Rejected without requeue: the chain stops here, Flower shows it, and on RabbitMQ the
            # message itself lands in the dead-letter exchange beside our own dead_letters row.
            raise Reject(
                StepDeadLettered(f"{self.system} step of {registration_id} dead-lettered: {reason}"),
                requeue=False,
            )
        # Not the master: the chain goes on (the customer still gets the welcome email).
        return {"registration_id": registration_id, "state": "dead", "reason": reason}
