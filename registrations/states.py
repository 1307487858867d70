"""The pipeline's vocabularies: every state a row can be in, spelled once.

Each is a `StrEnum`, so a member *is* the string stored in the database (`StepState.PENDING ==
"pending"`, same hash): rows read back as plain strings compare equal to the members, JSON and
Jinja render them as their value, and no migration was needed to introduce them. Production code
names a state only through these members (`tests/unit/test_vocabulary.py` keeps it so); a
migration spells the states of its own time and never imports them.
"""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    """Where one registration stands in one system (`sync_steps.state`)."""

    PENDING = "pending"  # to run (new, retried after a transient failure, or reopened)
    RUNNING = "running"  # claimed by one delivery (its Celery task id), under a lease
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"  # the system was switched off; a backfill reopens it
    DEAD = "dead"  # dead-lettered: failed for good or out of retries
    # Waits for a person (the address's owner confirming a card found at the till): finished for
    # now, and a decision (or its expiry) reopens it.
    WAITING = "waiting"


# Nothing to run for now: the chain goes past these (a replay or a decision reopens them).
FINISHED_STEP_STATES = frozenset({StepState.SUCCEEDED, StepState.SKIPPED, StepState.DEAD, StepState.WAITING})


class RegistrationStatus(StrEnum):
    """A registration's status, derived from its steps (`registrations.status.derive_status`)."""

    ACCEPTED = "accepted"  # nothing has started
    SYNCING = "syncing"  # something is under way
    SYNCED = "synced"  # every step succeeded or was skipped
    PARTIAL = "partial"  # finished, with a non-master step dead-lettered
    FAILED = "failed"  # the master is dead-lettered: nothing else can follow
    WAITING = "waiting"  # finished but for a step that waits for the address's owner


class DeadLetterStatus(StrEnum):
    """What ops did with a dead letter (`dead_letters.status`)."""

    OPEN = "open"
    REPLAYED = "replayed"
    RESOLVED = "resolved"
    DISCARDED = "discarded"


class ConfirmationKind(StrEnum):
    """What only an address's owner may decide (`confirmations.kind`)."""

    MARKETING = "marketing"  # news by e-mail (double opt-in)
    PROFILE = "profile"  # apply what a registration of an address that is already a member typed
    CARD = "card"  # link a member card made at the till with this address


class ConfirmationState(StrEnum):
    """requested → confirmed | declined | expired; a confirmed consent may be withdrawn."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class Ownership(StrEnum):
    """Whose address a registration typed, as the master step found it (`registrations.ownership`)."""

    OWNER = "owner"  # this registration made the person
    CLAIM = "claim"  # someone already held the address: nothing typed here is written anywhere
    CONFIRMED = "confirmed"  # a claim its owner confirmed


class ReconciliationStatus(StrEnum):
    """How one reconciliation run ended (`reconciliation_runs.status`)."""

    RUNNING = "running"  # under way (or its process died: the heartbeat tells)
    COMPLETED = "completed"  # every person was looked at; failed writes are in the report
    FAILED = "failed"  # stopped by an error before the end (a resumed run finishes the work)
    SKIPPED = "skipped"  # another run held the lock: this one did nothing
    FENCED = "fenced"  # its lock expired and a newer run took over: it stopped writing


class ChangeState(StrEnum):
    """Where one vendor change delivery stands (`changes.state`): each delivery is a step of its own.

    pending → running → applied | ambiguous | reported, or back to pending (a transient failure, a
    replay) and dead when out of retries or refused for good. stale is decided at the door.
    """

    PENDING = "pending"  # queued (new, retried after a transient failure, or replayed)
    RUNNING = "running"  # claimed by one task delivery
    APPLIED = "applied"  # the owner re-read, the mirrors compared, and only their drift written
    STALE = "stale"  # older than a change already seen for the same subject: dropped unread
    AMBIGUOUS = "ambiguous"  # more than one mirror holds the person's address: nothing written
    REPORTED = "reported"  # recorded for ops only (a deleted customer: mirrors are never deleted)
    DEAD = "dead"  # dead-lettered: failed for good or out of retries


# A change in one of these needs nothing more (a replay reopens a dead one).
FINISHED_CHANGE_STATES = frozenset(
    {ChangeState.APPLIED, ChangeState.STALE, ChangeState.AMBIGUOUS, ChangeState.REPORTED, ChangeState.DEAD}
)


class PointMovementState(StrEnum):
    """Where one point movement we originate stands (`point_movements.state`).

    planned → sent → applied | failed; a lost answer makes it unclear, and an unclear movement is
    never sent again until Smaregi's transactions say it did not happen (then: sent once more).
    """

    PLANNED = "planned"  # recorded, not sent yet
    SENT = "sent"  # one delivery is sending it now (or died while it did: its lease tells)
    APPLIED = "applied"  # Smaregi moved the points: its transactionHeadIds are kept
    UNCLEAR = "unclear"  # sent, no answer (timeout, 5xx): check the transactions before anything else
    FAILED = "failed"  # refused for good (an unknown member, a balance that would go below zero)


# Nothing more to do for a movement in one of these.
SETTLED_POINT_STATES = frozenset({PointMovementState.APPLIED, PointMovementState.FAILED})


# Every vocabulary, for the test that keeps each state spelled here only.
VOCABULARIES: tuple[type[StrEnum], ...] = (
    ChangeState,
    StepState,
    RegistrationStatus,
    DeadLetterStatus,
    ConfirmationKind,
    ConfirmationState,
    Ownership,
    PointMovementState,
    ReconciliationStatus,
)
