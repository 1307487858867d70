"""The ledger of points Membersync originates in Smaregi (a sign-up bonus): each movement exactly once.

Smaregi's `point/add` is relative and has no idempotency key, so sending it twice moves the points
twice. A `point_movements` row is the key instead:

    planned ──claim──▶ sent ──answer──▶ applied (transactionHeadIds kept) | failed (refused)
                        │
                        └─ no answer (timeout, 5xx, dropped connection) ──▶ unclear

An unclear movement is never sent again blindly. Every movement is a Smaregi transaction (取引区分 6
ポイント加算, 7 ポイント減算), so the member's point transactions since just before the first send are
read: one of the same direction and amount that no other movement of ours has claimed → applied, with
its transactionHeadId; none → it did not happen, and it is sent once more. A movement left `sent`
longer than its lease (its worker died mid-call) is treated the same way.

Every change of state is a conditional update on (state, attempts): of two deliveries working on one
movement, exactly one wins each claim, so one movement is in flight at most once at a time.

Residual risk, by construction: two movements of the same member, direction and amount inside one
check window (one of ours, one made at the till by hand) cannot be told apart; the check then takes
the till's for ours and our points are not sent (never twice, possibly once short; reconciliation
compares `applied_total` with the balance). We originate at most one sign-up bonus per registration
(the unique constraint), so we look for at most one. Whether Smaregi lists a transaction the instant
point/add answers is UNCONFIRMED: "not found" is trusted only `settle_seconds` after the last send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.errors import ConnectorError, PermanentError, ThrottledError
from connectors.interfaces import SmaregiApi
from connectors.smaregi.points import PointTransaction, movement_division
from registrations.database import Database
from registrations.models import PointMovement, Registration, utcnow
from registrations.states import SETTLED_POINT_STATES, Ownership, PointMovementState

log = logging.getLogger(__name__)

SIGNUP_BONUS = "signup_bonus"
# Transactions are looked for from this long before the first send: our clock and Smaregi's differ.
CLOCK_MARGIN = timedelta(minutes=2)
# "No matching transaction" is trusted only this long after the last send (the list may lag).
DEFAULT_SETTLE_SECONDS = 3.0
# A movement `sent` for longer than this lost its sender (above any connect + read timeout).
DEFAULT_SEND_LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class Movement:
    """A detached copy of one `point_movements` row."""

    id: str
    reason: str
    registration_id: str | None
    customer_id: str
    points: int
    state: str
    attempts: int
    requested_at: datetime
    sent_at: datetime | None
    updated_at: datetime
    settled_at: datetime | None
    transaction_head_ids: tuple[str, ...]
    balance_after: int | None
    error: str | None

    @classmethod
    def of(cls, row: PointMovement) -> Movement:
        return cls(
            id=row.id,
            reason=row.reason,
            registration_id=row.registration_id,
            customer_id=row.customer_id,
            points=row.points,
            state=row.state,
            attempts=row.attempts,
            requested_at=row.requested_at,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
            settled_at=row.settled_at,
            transaction_head_ids=tuple(row.transaction_head_ids or ()),
            balance_after=row.balance_after,
            error=row.error,
        )

    @property
    def settled(self) -> bool:
        """Applied or failed: nothing more will be done."""
        return self.state in SETTLED_POINT_STATES


class PointLedger:
    """Plans point movements and applies each exactly once (see the module's docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        send_lease_seconds: float = DEFAULT_SEND_LEASE_SECONDS,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settle = timedelta(seconds=settle_seconds)
        self.send_lease = timedelta(seconds=send_lease_seconds)

    # --- planning -------------------------------------------------------------------------------

    def plan(self, reason: str, registration_id: str | None, customer_id: str, points: int) -> str:
        """The id of the movement of `points` for this reason and registration; planned once.

        Idempotent: a second plan for the same reason and registration returns the first one's id
        (whatever it was asked to move), so a step that runs again never plans a second bonus.
        """
        with self.database.session() as session:
            return plan_in(session, reason, registration_id, customer_id, points, now=self.clock())

    # --- applying ---------------------------------------------------------------------------------

    def get(self, movement_id: str) -> Movement | None:
        with self.database.session() as session:
            row = session.get(PointMovement, movement_id)
            return Movement.of(row) if row is not None else None

    def apply(self, movement_id: str, smaregi: SmaregiApi) -> Movement | None:
        """Bring the movement as far as it can go now; its state afterwards (None: no such movement).

        Not settled afterwards (sent by another delivery, unclear, or too early to trust that a
        lost movement did not happen): call again later. Errors reading the transactions propagate.
        """
        movement = self.get(movement_id)
        if movement is None or movement.settled:
            return movement
        now = self.clock()
        if movement.state == PointMovementState.PLANNED:
            return self._send(movement, smaregi)
        if movement.state == PointMovementState.SENT and now - movement.updated_at < self.send_lease:
            return movement  # another delivery is sending it right now
        # Unclear, or sent by a delivery that died: did Smaregi move the points?
        found = self._find(movement, smaregi)
        if found is not None:
            return self._settle(
                movement,
                PointMovementState.APPLIED,
                transaction_head_ids=[found.transaction_head_id],
                error=None,
            )
        if self.clock() - movement.updated_at < self.settle:
            return movement  # too early to trust that it is not there
        log.info("point movement %s: no transaction found after an unclear send; sending again", movement.id)
        return self._send(movement, smaregi)

    def _send(self, movement: Movement, smaregi: SmaregiApi) -> Movement | None:
        """Claim the movement (one sender per attempt), send it once, record what came of it."""
        now = self.clock()
        with self.database.session() as session:
            claimed = session.execute(
                update(PointMovement)
                .where(
                    PointMovement.id == movement.id,
                    PointMovement.state == movement.state,
                    PointMovement.attempts == movement.attempts,
                )
                .values(
                    state=PointMovementState.SENT,
                    attempts=movement.attempts + 1,
                    sent_at=func.coalesce(PointMovement.sent_at, now),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            won = bool(claimed.rowcount)  # type: ignore[attr-defined]
        if not won:
            return self.get(movement.id)  # another delivery claimed it first: it carries on
        sent = _claimed(movement, now)
        try:
            result = smaregi.add_points(movement.customer_id, movement.points)
        except ThrottledError as error:
            # Refused before anything was done (Smaregi's 429 or our own budget): as it was before
            # (a movement whose sender died stays one to check).
            before = (
                PointMovementState.PLANNED
                if movement.state == PointMovementState.PLANNED
                else (PointMovementState.UNCLEAR)
            )
            return self._settle(sent, before, error=_reason(error), settled=False)
        except PermanentError as error:
            # A refusal is an answer: nothing moved (an unknown member, a balance below zero).
            return self._settle(sent, PointMovementState.FAILED, error=_reason(error))
        except ConnectorError as error:
            return self._settle(sent, PointMovementState.UNCLEAR, error=_reason(error), settled=False)
        return self._settle(
            sent,
            PointMovementState.APPLIED,
            transaction_head_ids=list(result.transaction_head_ids),
            balance_after=result.point,
            error=None,
        )

    def _find(self, movement: Movement, smaregi: SmaregiApi) -> PointTransaction | None:
        """A transaction of the member that can be this movement: same direction and amount, since
        just before the first send, and not already the transaction of another movement of ours."""
        since = (movement.sent_at or movement.requested_at) - CLOCK_MARGIN
        candidates = smaregi.point_transactions(
            movement.customer_id, since=since, division=movement_division(movement.points)
        )
        taken = self._claimed_transactions(movement)
        for transaction in candidates:
            if transaction.transaction_head_id in taken:
                continue
            # An unreadable amount may be ours: taking it can leave us one short, never twice over.
            if transaction.point is None or transaction.point == abs(movement.points):
                return transaction
        return None

    def _claimed_transactions(self, movement: Movement) -> set[str]:
        with self.database.session() as session:
            rows = session.scalars(
                select(PointMovement.transaction_head_ids).where(
                    PointMovement.customer_id == movement.customer_id, PointMovement.id != movement.id
                )
            )
            return {str(head_id) for ids in rows if ids for head_id in ids}

    def _settle(
        self,
        movement: Movement,
        state: PointMovementState,
        *,
        error: str | None,
        transaction_head_ids: list[str] | None = None,
        balance_after: int | None = None,
        settled: bool = True,
    ) -> Movement | None:
        """Record the outcome, only if the movement is still as this delivery last saw it."""
        now = self.clock()
        values: dict[str, object] = {"state": state, "updated_at": now, "error": error}
        if settled:
            values["settled_at"] = now
        if transaction_head_ids is not None:
            values["transaction_head_ids"] = transaction_head_ids
        if balance_after is not None:
            values["balance_after"] = balance_after
        with self.database.session() as session:
            session.execute(
                update(PointMovement)
                .where(
                    PointMovement.id == movement.id,
                    PointMovement.state == movement.state,
                    PointMovement.attempts == movement.attempts,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return self.get(movement.id)

    # --- for reconciliation, ops and the sweep ----------------------------------------------------

    def unsettled(self, *, older_than_seconds: float = 0.0) -> list[Movement]:
        """Movements not applied nor failed (planned, sent, unclear), untouched for that long."""
        cutoff = self.clock() - timedelta(seconds=older_than_seconds)
        with self.database.session() as session:
            rows = session.scalars(
                select(PointMovement)
                .where(
                    PointMovement.state.not_in(list(SETTLED_POINT_STATES)),
                    PointMovement.updated_at <= cutoff,
                )
                .order_by(PointMovement.requested_at)
            )
            return [Movement.of(row) for row in rows]

    def applied_total(self, customer_id: str) -> int:
        """The points our applied movements moved for this member (reconciliation compares it)."""
        with self.database.session() as session:
            total = session.scalar(
                select(func.coalesce(func.sum(PointMovement.points), 0)).where(
                    PointMovement.customer_id == customer_id,
                    PointMovement.state == PointMovementState.APPLIED,
                )
            )
            return int(total or 0)


def _claimed(movement: Movement, now: datetime) -> Movement:
    """The movement as the claim left it: sent, one more attempt."""
    return Movement(
        **{
            **movement.__dict__,
            "state": PointMovementState.SENT,
            "attempts": movement.attempts + 1,
            "sent_at": movement.sent_at or now,
            "updated_at": now,
        }
    )


def plan_in(
    session: Session,
    reason: str,
    registration_id: str | None,
    customer_id: str,
    points: int,
    *,
    now: datetime | None = None,
) -> str:
    """`PointLedger.plan` inside the caller's transaction (a savepoint guards the insert)."""
    movement_division(points)  # refuses a movement of zero points
    if registration_id is not None:
        existing = session.scalar(
            select(PointMovement.id).where(
                PointMovement.reason == reason, PointMovement.registration_id == registration_id
            )
        )
        if existing is not None:
            return existing
    stamp = now or utcnow()
    row = PointMovement(
        reason=reason,
        registration_id=registration_id,
        customer_id=customer_id,
        points=points,
        state=PointMovementState.PLANNED,
        attempts=0,
        requested_at=stamp,
        updated_at=stamp,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Planned at the same moment by another transaction: theirs is the one.
        existing = session.scalar(
            select(PointMovement.id).where(
                PointMovement.reason == reason, PointMovement.registration_id == registration_id
            )
        )
        if existing is None:
            raise
        return existing
    return row.id


def plan_signup_bonus(
    session: Session, registration: Registration, customer_id: str, points: int
) -> str | None:
    """The sign-up bonus of this registration's new member, planned in the caller's transaction.

    Only for the registration that made the person (ownership owner), never for a claim or a
    confirmed claim (the address was somebody's already), and only once the Smaregi step has a
    member of theirs (created, adopted as our own, or a card its owner confirmed). None when the
    bonus is off (0 points) or not owed.
    """
    if points <= 0 or registration.ownership != Ownership.OWNER:
        return None
    return plan_in(session, SIGNUP_BONUS, registration.id, customer_id, points)


def _reason(error: BaseException) -> str:
    """An error for the movement's row: the connector's message (no personal data), shortened."""
    return f"{type(error).__name__}: {error}"[:500]
