"""The pipeline's durable state: registrations, their per-system steps, identities, outbox, dead letters.

The database, not the broker, is the source of truth: a task carries ids only and reads these rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import DateTime as _DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from registrations.states import (
    ChangeState,
    ConfirmationState,
    DeadLetterStatus,
    PointMovementState,
    ReconciliationStatus,
    RegistrationStatus,
    StepState,
)


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp we store is UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class DateTime(TypeDecorator[datetime]):
    """A UTC timestamp that comes back timezone-aware from SQLite too (it stores no offset)."""

    impl = _DateTime(timezone=True)
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__()

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Registration(Base):
    """One accepted sign-up; personal data lives here and nowhere in the broker."""

    __tablename__ = "registrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # SHA-256 of the normalised body, so a reused Idempotency-Key with another body is a 409.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254), index=True)
    first_name: Mapped[str] = mapped_column(String(85))
    last_name: Mapped[str] = mapped_column(String(85))
    first_name_kana: Mapped[str | None] = mapped_column(String(85))
    last_name_kana: Mapped[str | None] = mapped_column(String(85))
    phone: Mapped[str | None] = mapped_column(String(20))
    birth_date: Mapped[date | None] = mapped_column(Date)
    postal_code: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(String(255))
    gender: Mapped[str | None] = mapped_column(String(16))
    accepts_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str] = mapped_column(String(2), default="ja")
    source: Mapped[str] = mapped_column(String(16), default="api")
    status: Mapped[str] = mapped_column(String(16), default=RegistrationStatus.ACCEPTED, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # When the member number reached the registrant by mail (in the welcome, or in a follow-up once
    # Smaregi gave it): NULL means they still wait for it.
    member_number_mailed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Whose address this is, as the master step found it: "owner" (this registration made the person),
    # "claim" (someone already held the address: nothing typed here is written anywhere until the
    # owner confirms), "confirmed" (a claim its owner confirmed). NULL until the master step ran.
    ownership: Mapped[str | None] = mapped_column(String(16))

    steps: Mapped[list[SyncStep]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="SyncStep.id"
    )

    def step(self, system: str) -> SyncStep:
        """This registration's step for `system`."""
        for step in self.steps:
            if step.system == system:
                return step
        raise KeyError(system)


class SyncStep(Base):
    """The state of one registration in one external system."""

    __tablename__ = "sync_steps"
    __table_args__ = (
        UniqueConstraint("registration_id", "system", name="uq_sync_steps_registration_system"),
        # The worker-lease sweep looks up running steps by holder every few seconds.
        Index("ix_sync_steps_state_holder", "state", "holder"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registration_id: Mapped[str] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    system: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=StepState.PENDING)
    external_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Why the step succeeded differently from the plain path (e.g. created without a phone another
    # customer holds): for ops, never personal data.
    note: Mapped[str | None] = mapped_column(Text)
    celery_task_id: Mapped[str | None] = mapped_column(String(64))
    # The worker process whose claim this is (host:pid:random, registrations/leases.py): once its
    # lease is gone, the running step is free at once. NULL when claimed outside a worker.
    holder: Mapped[str | None] = mapped_column(String(128))
    # When the current run of this step began (the retry budget counts from here); a replay clears it.
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    registration: Mapped[Registration] = relationship(back_populates="steps")


class Identity(Base):
    """One person across the systems; looked up before any API is asked."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    shopify_customer_id: Mapped[str | None] = mapped_column(String(64))
    smaregi_customer_id: Mapped[str | None] = mapped_column(String(32))
    smaregi_customer_code: Mapped[str | None] = mapped_column(String(20))
    hubspot_contact_id: Mapped[str | None] = mapped_column(String(32))
    # The address's welcome email went out (once ever), and the last "already a member" notice (at
    # most one a day): a stranger typing the address cannot make us mail its owner more than that.
    welcomed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class DirectoryMember(Base):
    """One Smaregi member as far as matching needs it: the member directory.

    Smaregi documents no search by e-mail, so we keep our own index of what it told us (full and
    incremental pulls, its webhook, our own writes) and look people up here. No names, no phones.
    """

    __tablename__ = "smaregi_directory"

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_code: Mapped[str] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # normalised (lower case)
    upd_date_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SyncCursor(Base):
    """How far a pull from a vendor has got (the directory's incremental pull, reconciliation)."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The vendor's own time of the newest change seen; the next pull starts a little before it.
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    full_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    """A registration whose remaining chain is to be published, written in the same transaction as
    the rows that made it so (acceptance, replay, backfill, a stalled chain)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registration_id: Mapped[str] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Change(Base):
    """One vendor webhook delivery (a change to a person in the system that owns it), processed as a
    step: queued, retried, dead-lettered, replayable (`registrations/changes.py`).

    Ids and times only: the vendor's object is re-read through its API when the change is processed,
    so no personal data from a webhook body is ever stored or queued.
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # shopify | smaregi
    topic: Mapped[str] = mapped_column(String(64))  # e.g. customers/update
    # The vendor's delivery id (X-Shopify-Webhook-Id): a delivery seen twice is processed once.
    delivery_id: Mapped[str] = mapped_column(String(128), unique=True)
    # The vendor's id of what changed (gid://shopify/Customer/123).
    subject: Mapped[str] = mapped_column(String(128), index=True)
    triggered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The object's own updated_at in the delivery: how a late retry is told from a newer change.
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the task was last handed to the broker or claimed by a worker (the sweep queues again a
    # pending change left behind, and a running one whose worker vanished).
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(16), default=ChangeState.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # What processing found and did (ids and field names only): "wrote smaregi: last_name".
    outcome: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """A step that ran out of retries or failed for good; ops replay, resolve or discard it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # A registration's step, or (change_id) a vendor change delivery: exactly one of the two is set.
    registration_id: Mapped[str | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), index=True
    )
    change_id: Mapped[int | None] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(16))
    task_name: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_class: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=DeadLetterStatus.OPEN, index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    # When ops were told about this dead letter (the batched alert); NULL = not yet.
    alerted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # A replay that failed again opens a new dead letter linked to the one replayed (NULL: a first
    # failure); what closed this one ("replay from console by alice", "a later smaregi step run") and when.
    previous_id: Mapped[int | None] = mapped_column(
        ForeignKey("dead_letters.id", ondelete="SET NULL", name="fk_dead_letters_previous_id"), index=True
    )
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Confirmation(Base):
    """Something only the address's owner may decide, asked through a signed link sent to the address.

    marketing: the consent record (特定電子メール法): when it was asked for, from where (form or
    API), which text was shown (`text_version`), when confirmed, when withdrawn. profile: apply what a
    registration of an address that already belongs to a member typed. card: link the member card
    made at the till with this address (`subject` is its Smaregi customer id).
    """

    __tablename__ = "confirmations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    registration_id: Mapped[str] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=ConfirmationState.REQUESTED, index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # canonical
    source: Mapped[str] = mapped_column(String(16))  # form / api
    text_version: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PointMovement(Base):
    """A point movement Membersync originates in Smaregi (a sign-up bonus), sent exactly once.

    Smaregi's point/add has no idempotency key: this row is the key. `registrations.points`
    sends it once, keeps what Smaregi answered (`transaction_head_ids`, `balance_after`), and after a
    lost answer (`unclear`) reads the member's transactions before anything is sent again. One
    registration gets at most one movement per reason (the unique constraint), and the row outlives
    its registration (SET NULL): it records what happened in Smaregi.
    """

    __tablename__ = "point_movements"
    __table_args__ = (
        UniqueConstraint("reason", "registration_id", name="uq_point_movements_reason_registration"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reason: Mapped[str] = mapped_column(String(32))  # e.g. signup_bonus
    registration_id: Mapped[str | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[str] = mapped_column(String(32), index=True)  # Smaregi's customerId
    points: Mapped[int] = mapped_column(Integer)  # negative subtracts
    state: Mapped[str] = mapped_column(String(16), default=PointMovementState.PLANNED, index=True)
    # How many times it was sent (the claim compares it: one sender per attempt).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the first send
    # The last change of state: a movement `sent` for longer than its lease lost its sender.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transaction_head_ids: Mapped[list[str] | None] = mapped_column(JSON)
    balance_after: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)  # why it failed or is unclear (no personal data)


class ReconciliationRun(Base):
    """One nightly (or manual) reconciliation and what it found."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=ReconciliationStatus.RUNNING)
    # Outcome -> how many people (the report's counts, kept apart for the console and /metrics).
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # The fencing token this run took with its lock: a write goes out only while it is the newest.
    fence: Mapped[int | None] = mapped_column(Integer)
    systems: Mapped[list[str] | None] = mapped_column(JSON)  # the systems this run reconciled
    phase: Mapped[str | None] = mapped_column(String(16))  # reading, writing, done
    # What it found and did: counts per outcome, example vendor ids (never personal data), duration,
    # API calls per system, failed writes.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OpsAuditEntry(Base):
    """One thing a person did in the ops console: a login (or a refused one), a replay, a discard.

    No foreign keys: the trail must outlive the dead letters and registrations it names.
    """

    __tablename__ = "ops_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # The ops username (for a refused login, the name that was typed).
    operator: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))  # login, login_refused, logout, replay, discard
    dead_letter_id: Mapped[int | None] = mapped_column(Integer, index=True)
    registration_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # What came of it (e.g. "replayed: smaregi, hubspot", "not open"), and the note ops gave.
    outcome: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str | None] = mapped_column(String(64))
    # Where it was done: console, cli or flower (NULL on rows older than the column: the console).
    via: Mapped[str | None] = mapped_column(String(16))
