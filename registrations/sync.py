"""A step's bookkeeping in short transactions, so no transaction is open while a vendor is called.

    claim    count the attempt and mark the step running (compare-and-set), or say why not
    read     the registrant and what is known of the person, detached from the session
    (call)   the vendor, with no database session or connection held
    record   the outcome, guarded by the claim: only the delivery that holds the step writes it

and, when the call failed, `retry_or_exhaust` and `dead_letter`. SQLite has one writer at a time and
PostgreSQL a bounded pool: holding either across a vendor call made the intake wait behind a slow
vendor, so every method here opens its own short transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from config.settings import RetryPolicy, Settings
from config.systems import MASTER
from registrations import confirmations
from registrations.database import Database
from registrations.dead_letters import open_dead_letters, record_dead_letter, settle_registration
from registrations.identities import find_identity, find_known, learn
from registrations.leases import Leases, current_holder
from registrations.models import DeadLetter, OutboxMessage, Registration, SyncStep, utcnow
from registrations.points import plan_signup_bonus
from registrations.replay import reopen
from registrations.retry import retries_exhausted
from registrations.states import (
    FINISHED_STEP_STATES,
    DeadLetterStatus,
    Ownership,
    RegistrationStatus,
    StepState,
)
from registrations.status import derive_status, status_of
from registrations.steps.base import Outcome, Registrant, Work


@dataclass(frozen=True)
class Seen:
    """What the claim read of the registration and its step, for `read`: nothing here changes while
    the step is held (the registrant is immutable, and only this registration's own steps, running one
    after another, set its ownership and member-number mark)."""

    registrant: Registrant
    previous_external_id: str | None
    member_number_mailed: bool
    ownership: str | None


@dataclass(frozen=True)
class Claimed:
    """This delivery holds the step; `email` is whom to lock for."""

    email: str
    # The registration as the claim read it (None: `read` reads it). Not part of equality: two claims
    # of the same person are the same claim.
    seen: Seen | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Finished:
    """Nothing to run: the step is finished, skipped, missing, or held by another delivery."""

    state: str


@dataclass(frozen=True)
class WorkerLost:
    """The step sat running with its attempts used up: earlier deliveries died mid-step."""

    attempts: int


@dataclass(frozen=True)
class RetryDecision:
    """What became of a failed attempt: retried (after `attempts` attempts) or exhausted."""

    exhausted: bool
    attempts: int


@dataclass(frozen=True)
class Recorded:
    """What `StepLedger.record` did: whether this delivery still held the step, and the outbox row of
    a step that this success reopened (published after the record's commit by the worker's database;
    the relay covers a failed publish)."""

    held: bool
    outbox_id: int | None = None
    # The sign-up bonus this success planned (registrations.points), to apply after the commit.
    point_movement_id: str | None = None
    # Seconds from acceptance to synced, when the registration is synced with this record (a metric).
    synced_after: float | None = None

    def __bool__(self) -> bool:
        # Truthy when held, as the bool `record` used to return.
        return self.held


# The member number comes from the Smaregi step and reaches the registrant through the email step:
# either one's success may leave a number that no email has carried yet.
NUMBER_SOURCE, NUMBER_MAIL = "smaregi", "email"
NUMBER_MAIL_SYSTEMS = frozenset({NUMBER_SOURCE, NUMBER_MAIL})


def queue_member_number_mail(
    session: Session, registration: Registration, settings: Settings
) -> OutboxMessage | None:
    """Reopen the email step (and queue it in the outbox) when the member number exists but the email
    that went out did not carry it; None when nothing is owed.

    Owed: the welcome went out (email step succeeded), Smaregi has given the number (its step
    succeeded and the identity holds the code), no email has carried it yet, and email is switched
    on. The reopened step sees its earlier success and sends the member-number email; replay,
    backfill and reconciliation all reach this through the Smaregi step's record, in the caller's
    transaction.
    """
    if registration.member_number_mailed_at is not None or not settings.enabled_systems()[NUMBER_MAIL]:
        return None
    if registration.ownership == Ownership.CLAIM:
        return None  # the number is the address owner's: a stranger's registration never mails it
    states = {step.system: step.state for step in registration.steps}
    if states.get(NUMBER_SOURCE) != StepState.SUCCEEDED or states.get(NUMBER_MAIL) != StepState.SUCCEEDED:
        return None
    if registration.step(NUMBER_MAIL).external_id is None:
        return None  # this registration mailed nothing (the address had its welcome already)
    identity = find_identity(session, registration.email)
    if identity is None or not identity.smaregi_customer_code:
        return None  # no number to send: reopening would only loop
    return reopen(session, registration, [NUMBER_MAIL])


def public_error(error: BaseException) -> str:
    """What a step shows on the public status API: the kind of failure, never vendor text.

    Vendor messages can echo what we sent (an address in a validation message, a query string in a
    URL); the full, scrubbed text is kept in the dead letter for ops.
    """
    status = getattr(error, "status", None)
    return f"{type(error).__name__}" + (f" (HTTP {status})" if status else "")


# The registrant's fields and the registration columns they are read from by the claim.
_REGISTRANT_FIELDS = tuple(spec.name for spec in fields(Registrant))


# The claim's two statements, built once (building a statement costs more CPU than SQLite takes to
# run it): plain table statements with bound parameters, so no ORM machinery runs per claim.
_STEPS = cast(Table, SyncStep.__table__)
_REGISTRATIONS = cast(Table, Registration.__table__)
_DEAD_LETTERS = cast(Table, DeadLetter.__table__)
# The moment of the claim or record, typed as the columns it is written to (the project's time-zone
# aware DateTime), wherever it appears.
_NOW = bindparam("now", type_=_STEPS.c.updated_at.type)
_TAKE_PENDING = (
    update(_STEPS)
    .where(
        _STEPS.c.registration_id == bindparam("of_registration"),
        _STEPS.c.system == bindparam("of_system"),
        _STEPS.c.state == StepState.PENDING,
    )
    .values(
        state=StepState.RUNNING,
        attempts=_STEPS.c.attempts + 1,
        celery_task_id=bindparam("delivery"),
        holder=bindparam("new_holder"),
        first_attempt_at=func.coalesce(_STEPS.c.first_attempt_at, _NOW),
        updated_at=_NOW,
    )
    .returning(_STEPS.c.external_id)
)
# With this step running, the registration is `syncing`, or `failed` when the master is dead
# (`derive_status`); `updated_at` is touched only when the status changes, as the ORM's flush does.
_MASTER_DEAD = exists().where(
    _STEPS.c.registration_id == bindparam("of_registration"),
    _STEPS.c.system == MASTER.name,
    _STEPS.c.state == StepState.DEAD,
)
_CLAIMED_STATUS = case((_MASTER_DEAD, RegistrationStatus.FAILED), else_=RegistrationStatus.SYNCING)
_MARK_SYNCING = (
    update(_REGISTRATIONS)
    .where(_REGISTRATIONS.c.id == bindparam("of_registration"))
    .values(
        status=_CLAIMED_STATUS,
        updated_at=case(
            (_REGISTRATIONS.c.status != _CLAIMED_STATUS, _NOW), else_=_REGISTRATIONS.c.updated_at
        ),
    )
    # What `read` needs of the registration, so that it reads only what may change meanwhile.
    .returning(
        *(_REGISTRATIONS.c[name] for name in _REGISTRANT_FIELDS),
        _REGISTRATIONS.c.ownership,
        _REGISTRATIONS.c.member_number_mailed_at,
    )
)


def _held_by(no_holder: bool) -> ColumnElement[bool]:
    """The step as its claim left it: running under this delivery (`delivery`) in this process
    (`of_holder`; no holder outside a worker). The same message redelivered to another process after
    this one's lease lapsed keeps the task id: the holder tells the two claims apart."""
    return and_(
        _STEPS.c.registration_id == bindparam("of_registration"),
        _STEPS.c.system == bindparam("of_system"),
        _STEPS.c.state == StepState.RUNNING,
        _STEPS.c.celery_task_id == bindparam("delivery"),
        _STEPS.c.holder.is_(None) if no_holder else _STEPS.c.holder == bindparam("of_holder"),
    )


# The record's statements, built once: the step's outcome, written only while this delivery holds
# it (keyed by whether the process has no holder), then the registration and its steps' states.
_RECORD_STEP = {
    no_holder: update(_STEPS)
    .where(_held_by(no_holder))
    .values(
        state=bindparam("new_state"),
        external_id=bindparam("new_external_id"),
        note=bindparam("new_note"),
        last_error=None,
        updated_at=_NOW,
    )
    for no_holder in (True, False)
}
# The registration, locked (PostgreSQL), then its steps' states in a statement of their own: a join
# that waited for the lock would still read the steps as they were when it began (READ COMMITTED
# re-reads only the locked row), and miss what the other recording step just committed.
_LOCK_REGISTRATION = (
    select(
        _REGISTRATIONS.c.email,
        _REGISTRATIONS.c.status,
        _REGISTRATIONS.c.created_at,
        _REGISTRATIONS.c.ownership,
        _REGISTRATIONS.c.member_number_mailed_at,
    )
    .where(_REGISTRATIONS.c.id == bindparam("of_registration"))
    .with_for_update()
)
_STEP_STATES = select(_STEPS.c.system, _STEPS.c.state).where(
    _STEPS.c.registration_id == bindparam("of_registration")
)
# The registration's columns a record changes (the parameters name them), by id.
_CHANGE_REGISTRATION = update(_REGISTRATIONS).where(_REGISTRATIONS.c.id == bindparam("of_registration"))
# Whether the registration has dead letters a sync settles (`settle_registration`).
_UNSETTLED = select(
    exists().where(
        _DEAD_LETTERS.c.registration_id == bindparam("of_registration"),
        _DEAD_LETTERS.c.status.in_([DeadLetterStatus.OPEN, DeadLetterStatus.REPLAYED]),
    )
)
# The registration with its steps for the ORM fallback, read once `_LOCK_REGISTRATION` holds the lock.
_LOCKED_REGISTRATION = (
    select(Registration)
    .options(joinedload(Registration.steps))
    .where(Registration.id == bindparam("of_registration"))
    .with_for_update(of=Registration)
)


class StepLedger:
    """The database side of one system's step."""

    def __init__(
        self, database: Database, settings: Settings, system: str, *, leases: Leases | None = None
    ) -> None:
        self.database = database
        self.settings = settings
        self.system = system
        # The worker leases (registrations/leases.py): a running step whose holder's lease is gone
        # is free at once. Without them only the step lease (STEP_LEASE_SECONDS) frees it.
        self.leases = leases

    @property
    def policy(self) -> RetryPolicy:
        return self.settings.retry_policies[self.system]

    def claim(self, registration_id: str, delivery_id: str) -> Claimed | Finished | WorkerLost:
        """Take the step for this delivery (counting the attempt), or say why there is nothing to do."""
        with self.database.session() as session:
            if self.settings.enabled_systems()[self.system]:
                claimed = self._claim_pending(session, registration_id, delivery_id)
                if claimed is not None:
                    return claimed
            registration = session.get(Registration, registration_id)
            if registration is None:
                return Finished("missing")
            try:
                step = registration.step(self.system)
            except KeyError:
                # Accepted before this system existed: its step starts now.
                step = SyncStep(system=self.system, state=StepState.PENDING)
                registration.steps.append(step)
                session.flush()
            if step.state in FINISHED_STEP_STATES:
                return Finished(step.state)
            if not self.settings.enabled_systems()[self.system]:
                step.state = StepState.SKIPPED
                registration.status = derive_status(registration.steps)
                settle_registration(session, registration, by=f"{self.system} being switched off")
                return Finished(StepState.SKIPPED)
            if not self._free(step, delivery_id):
                # Another delivery holds this step right now (a duplicate publish): its chain goes
                # on from here, so this one stops rather than running later steps too early.
                return Finished("held")
            # A step left running with its attempts used up means every earlier attempt ended with
            # no bookkeeping: a worker died mid-step. A message that keeps killing workers must
            # still run out of attempts.
            if step.state == StepState.RUNNING and step.attempts >= self.policy.max_attempts:
                return WorkerLost(step.attempts)
            if not self._take(session, step, delivery_id):
                return Finished("held")  # lost the compare-and-set to another delivery a moment ago
            registration.status = derive_status(registration.steps)
            return Claimed(registration.email)

    def _claim_pending(self, session: Session, registration_id: str, delivery_id: str) -> Claimed | None:
        """The common claim in two statements: a pending step taken by one compare-and-set
        `UPDATE … RETURNING`, and the registration's status set in the same transaction; None (and
        nothing written) when the step is not pending, so that `claim` reads it and decides, in the
        same transaction.

        A pending step is free to any delivery and never a lost worker's (`_free`, `claim`), and
        with this step running the registration's status is `syncing`, or `failed` when the master
        is dead (`derive_status`): so nothing needs reading first.
        """
        now = utcnow()
        taken = session.execute(
            _TAKE_PENDING,
            {
                "of_registration": registration_id,
                "of_system": self.system,
                "delivery": delivery_id,
                "new_holder": current_holder(),
                "now": now,
            },
        ).first()
        if taken is None:
            return None
        row = session.execute(_MARK_SYNCING, {"of_registration": registration_id, "now": now}).one()
        registrant = Registrant(**{name: row._mapping[name] for name in _REGISTRANT_FIELDS})
        seen = Seen(
            registrant=registrant,
            previous_external_id=taken.external_id,
            member_number_mailed=row.member_number_mailed_at is not None,
            ownership=row.ownership,
        )
        return Claimed(registrant.email, seen)

    def read(self, registration_id: str, claimed: Claimed | None = None) -> Work:
        """The registrant and what is known of them (read under the person's lock, if the step locks).

        Given the claim's `Seen`, only what may have changed since is read: the person's identity
        (another registration of the address records it under the same lock) and the confirmations
        (the owner answers whenever they like), in one transaction of two SELECTs.
        """
        seen = claimed.seen if claimed is not None else None
        with self.database.session() as session:
            if seen is None:  # a claim that read nothing (a step taken over, or read on its own)
                registration = session.get(Registration, registration_id)
                assert registration is not None  # registrations are never deleted mid-run
                seen = Seen(
                    registrant=Registrant.of(registration),
                    previous_external_id=registration.step(self.system).external_id,
                    member_number_mailed=registration.member_number_mailed_at is not None,
                    ownership=registration.ownership,
                )
            standing = confirmations.standing(session, registration_id)
            return Work(
                registration_id=registration_id,
                registrant=seen.registrant,
                known=find_known(session, seen.registrant.email),
                previous_external_id=seen.previous_external_id,
                member_number_mailed=seen.member_number_mailed,
                ownership=seen.ownership,
                requests=standing.requests,
                card=standing.card,
                marketing=standing.marketing,
            )

    def record(self, registration_id: str, delivery_id: str, outcome: Outcome) -> Recorded:
        """Mark the step succeeded with the outcome; not `held` when this delivery no longer holds it.

        The identity row is written here, after the vendor answered, in the same transaction as the
        step: a crash in between leaves a running step whose retry finds the same object again. A
        step reopened by this success is queued in the same transaction (`Recorded.outbox_id`).
        """
        with self.database.session() as session:
            holder = current_holder()
            held = session.execute(
                _RECORD_STEP[holder is None],
                {
                    "of_registration": registration_id,
                    "of_system": self.system,
                    "delivery": delivery_id,
                    "of_holder": holder,
                    "new_state": StepState.WAITING if outcome.waiting else StepState.SUCCEEDED,
                    "new_external_id": outcome.external_id,
                    "new_note": outcome.note,
                    "now": utcnow(),
                },
            )
            if not held.rowcount:  # type: ignore[attr-defined]
                return Recorded(held=False)  # nothing was written: another delivery took the step over
            # Locked (PostgreSQL) so that the Smaregi and email steps of one registration, recording
            # at the same moment, decide about the member-number email one after the other; the
            # states are read after the lock is held (so with this step's and the other's).
            head = session.execute(_LOCK_REGISTRATION, {"of_registration": registration_id}).one()
            states = {
                row.system: row.state
                for row in session.execute(_STEP_STATES, {"of_registration": registration_id})
            }
            now = utcnow()
            learned: dict[str, object] = dict(outcome.learned)
            if outcome.welcomed:
                learned["welcomed_at"] = now
            if outcome.notified:
                learned["notified_at"] = now
            if learned:
                learn(session, head.email, learned)
            status = status_of(states)
            synced_after = None
            if status == RegistrationStatus.SYNCED:
                synced_after = max(0.0, (now - head.created_at).total_seconds())
            if self._decides_more(session, registration_id, outcome, head, states, status):
                return self._record_on_registration(session, registration_id, outcome, synced_after)
            # The common ending, as plain statements: the registration's own columns that changed.
            changes: dict[str, object] = {}
            if status != head.status:
                changes["status"] = status
            if outcome.ownership is not None and outcome.ownership != head.ownership:
                changes["ownership"] = outcome.ownership
            if outcome.member_number_mailed and head.member_number_mailed_at is None:
                changes["member_number_mailed_at"] = now
            if changes:
                session.execute(
                    _CHANGE_REGISTRATION, {**changes, "updated_at": now, "of_registration": registration_id}
                )
            return Recorded(held=True, synced_after=synced_after)

    def _decides_more(
        self,
        session: Session,
        registration_id: str,
        outcome: Outcome,
        head: Row[Any],
        states: Mapping[str, str],
        status: str,
    ) -> bool:
        """Whether recording `outcome` may do more than set the step and the registration's columns:
        ask the owner, settle dead letters, owe the member-number email, plan the sign-up bonus. A
        cautious test on what `record` read (each case is decided in full on the registration)."""
        if outcome.request is not None:
            return True
        if status == RegistrationStatus.SYNCED and session.scalar(
            _UNSETTLED, {"of_registration": registration_id}
        ):
            return True
        ownership = outcome.ownership or head.ownership
        mailed = head.member_number_mailed_at is not None or outcome.member_number_mailed
        if (
            self.system in NUMBER_MAIL_SYSTEMS
            and not mailed
            and ownership != Ownership.CLAIM
            and states.get(NUMBER_SOURCE) == states.get(NUMBER_MAIL) == StepState.SUCCEEDED
        ):
            return True
        return (
            self.system == NUMBER_SOURCE
            and outcome.external_id is not None
            and not outcome.waiting
            and self.settings.signup_bonus_points > 0
            and ownership == Ownership.OWNER
        )

    def _record_on_registration(
        self, session: Session, registration_id: str, outcome: Outcome, synced_after: float | None
    ) -> Recorded:
        """The rest of `record` on the registration itself, for the outcomes `_decides_more` picks."""
        registration = (
            session.execute(_LOCKED_REGISTRATION, {"of_registration": registration_id}).unique().scalar_one()
        )
        if outcome.ownership is not None:
            registration.ownership = outcome.ownership
        if outcome.request is not None:
            kind, subject = outcome.request
            confirmations.request(session, registration, kind, settings=self.settings, subject=subject)
        if outcome.member_number_mailed and registration.member_number_mailed_at is None:
            registration.member_number_mailed_at = utcnow()
        registration.status = derive_status(registration.steps)
        # Synced now: its dead letters' work is done, by the replay or by this later run.
        settle_registration(session, registration, by=f"a later {self.system} step run")
        follow_up = None
        if self.system in NUMBER_MAIL_SYSTEMS:
            follow_up = queue_member_number_mail(session, registration, self.settings)
        bonus = None
        if self.system == NUMBER_SOURCE and outcome.external_id is not None and not outcome.waiting:
            # In this transaction: the member is recorded with its bonus planned, or neither.
            bonus = plan_signup_bonus(
                session, registration, outcome.external_id, self.settings.signup_bonus_points
            )
        return Recorded(
            held=True,
            outbox_id=follow_up.id if follow_up is not None else None,
            point_movement_id=bonus,
            synced_after=synced_after,
        )

    def holds(self, registration_id: str, delivery_id: str) -> bool:
        """Whether this delivery (in this process) holds the step right now: the claim `record`
        requires, read."""
        with self.database.session() as session:
            holder = current_holder()
            held = session.scalar(
                select(_STEPS.c.id).where(_held_by(holder is None)),
                {
                    "of_registration": registration_id,
                    "of_system": self.system,
                    "delivery": delivery_id,
                    "of_holder": holder,
                },
            )
            return held is not None

    def queue_left_behind(self, registration_id: str, systems: Collection[str]) -> int | None:
        """An outbox row for the registration's unfinished steps when one of `systems` is pending;
        None when none is.

        `systems` are the later steps that the delivering chain does not carry: such a step was
        reopened after that chain was built (a replay's Smaregi success reopens the email step for
        the member number). The chain queued with the reopening starts at the first unfinished
        step, and when another delivery holds that step right then, the queued chain stops there
        (`Finished("held")`) while the holder's own chain ends without the reopened step: without
        this row it would wait for the stalled sweep (15 minutes). Published after the commit by
        the worker's database, or by the relay.
        """
        with self.database.session() as session:
            registration = session.get(Registration, registration_id)
            if registration is None:
                return None
            left = [
                step.system
                for step in registration.steps
                if step.system in systems and step.state == StepState.PENDING
            ]
            if not left:
                return None
            message = OutboxMessage(registration_id=registration_id)
            session.add(message)
            session.flush()
            return message.id

    def retry_or_exhaust(
        self, registration_id: str, error: BaseException, *, deferred: bool
    ) -> RetryDecision:
        """Put the step back to pending for a retry, or say the policy is used up.

        A deferred step (our own rate limit, another worker's lock) tried nothing, so it gives its
        attempt back; only the time budget counts for it.
        """
        with self.database.session() as session:
            registration, step = self._load(session, registration_id)
            if deferred:
                step.attempts = max(0, step.attempts - 1)
            elapsed = (utcnow() - (step.first_attempt_at or registration.created_at)).total_seconds()
            if retries_exhausted(self.policy, 0 if deferred else step.attempts, elapsed):
                return RetryDecision(exhausted=True, attempts=step.attempts)
            step.state = StepState.PENDING
            if not deferred:
                step.last_error = public_error(error)
            return RetryDecision(exhausted=False, attempts=step.attempts)

    def dead_letter(self, registration_id: str, error: BaseException, reason: str, task_name: str) -> int:
        """Mark the step dead and open (or refresh) its dead letter; returns the dead letter's id."""
        with self.database.session() as session:
            registration, step = self._load(session, registration_id)
            step.state = StepState.DEAD
            step.last_error = f"{reason}: {public_error(error)}"
            elapsed = (utcnow() - (step.first_attempt_at or registration.created_at)).total_seconds()
            letter = record_dead_letter(
                session,
                registration_id=registration_id,
                system=self.system,
                task_name=task_name,
                error=error,
                reason=reason,
                attempts=step.attempts,
                elapsed_seconds=elapsed,
            )
            registration.status = derive_status(registration.steps)
            session.flush()
            return letter.id

    def open_dead_letter_id(self, registration_id: str) -> int | None:
        """The id of this step's open dead letter, if any."""
        with self.database.session() as session:
            letter_id: int | None = session.scalar(
                open_dead_letters(registration_id=registration_id, system=self.system).with_only_columns(
                    DeadLetter.id
                )
            )
            return letter_id

    def _load(self, session: Session, registration_id: str) -> tuple[Registration, SyncStep]:
        registration = session.get(Registration, registration_id)
        assert registration is not None  # registrations are never deleted mid-run
        return registration, registration.step(self.system)

    def _lease_expired(self) -> datetime:
        """Before this, a running step's holder is taken to be dead (its lease ran out)."""
        return utcnow() - timedelta(seconds=self.settings.step_lease_seconds)

    def _dead_holder(self, step: SyncStep) -> str | None:
        """The running step's holder when that worker process is dead (its lease is gone), else None."""
        if step.state != StepState.RUNNING or not step.holder or self.leases is None:
            return None
        if step.holder == current_holder():
            return None
        return step.holder if self.leases.is_dead(step.holder) else None

    def _free(self, step: SyncStep, delivery_id: str) -> bool:
        """Whether this delivery may take the step (the same rule as `_take`, read first).

        The same message again (a redelivery keeps its task id) takes it only from a holder that is
        gone: a live holder is still running it, and a step must never run twice at once.
        """
        if step.state == StepState.PENDING:
            return True
        if step.updated_at is not None and step.updated_at < self._lease_expired():
            return True
        if step.holder is None:  # claimed outside a worker: only the step lease frees it
            return step.celery_task_id == delivery_id
        # A live holder (this process's other threads included) is running it and carries the
        # chain on; a dead one's step is free, to its own redelivered message or to a new one.
        return self._dead_holder(step) is not None

    def _take(self, session: Session, step: SyncStep, delivery_id: str) -> bool:
        """Compare-and-set claim, so two deliveries never run one step at once.

        A step is free when pending, when running under this same message (a redelivery after a
        lost worker keeps its task id), when its holder's worker lease is gone (the holder read a
        moment ago, so a second taker loses the set), or when its step lease ran out.
        """
        lease_expired = self._lease_expired()
        taken_over = [and_(SyncStep.state == StepState.RUNNING, SyncStep.updated_at < lease_expired)]
        if step.state == StepState.RUNNING:
            # Exactly the claim read a moment ago: if another delivery took it since, this loses.
            same_claim = and_(
                SyncStep.state == StepState.RUNNING,
                SyncStep.celery_task_id == step.celery_task_id,
                SyncStep.holder == step.holder if step.holder else SyncStep.holder.is_(None),
            )
            taken_over.append(same_claim)
        claimed = session.execute(
            update(SyncStep)
            .where(SyncStep.id == step.id, or_(SyncStep.state == StepState.PENDING, *taken_over))
            .values(
                state=StepState.RUNNING,
                attempts=SyncStep.attempts + 1,
                celery_task_id=delivery_id,
                holder=current_holder(),
                # The retry budget runs from the first attempt (a replay starts a new one).
                first_attempt_at=func.coalesce(SyncStep.first_attempt_at, utcnow()),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        session.refresh(step)
        return bool(claimed.rowcount)  # type: ignore[attr-defined]
