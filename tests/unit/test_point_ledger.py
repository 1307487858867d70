"""The point ledger's decisions against the in-process Smaregi fake: planned → sent once → applied; a
lost answer → unclear → the member's transactions are read → applied (found) or sent again (absent,
once the list had time to show it); never a second movement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import NotFoundError, PermanentError, ThrottledError, TransientError
from connectors.fakes import FakeSmaregi
from connectors.smaregi.points import PointTransaction
from registrations.database import Database
from registrations.models import Base
from registrations.points import SIGNUP_BONUS, PointLedger
from registrations.states import PointMovementState

BONUS = 100


class Clock:
    """One clock for the ledger and the fake Smaregi: tests move it on."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_database(path: Path) -> Database:
    database = Database(f"sqlite:///{path}")
    Base.metadata.create_all(database.engine)
    return database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    made = make_database(tmp_path / "points.db")
    yield made
    made.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smaregi(clock: Clock) -> FakeSmaregi:
    fake = FakeSmaregi(clock=clock)
    fake.add_member("0000000000000001", "hanako@example.com", last_name="山田", first_name="花子")
    return fake


@pytest.fixture
def ledger(database: Database, clock: Clock) -> PointLedger:
    return PointLedger(database, clock=clock, settle_seconds=3, send_lease_seconds=60)


def balance(smaregi: FakeSmaregi) -> int:
    return int(smaregi.members["1"].point or "0")


def test_a_planned_movement_is_sent_once_and_keeps_what_smaregi_answered(
    ledger: PointLedger, smaregi: FakeSmaregi
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)

    applied = ledger.apply(movement_id, smaregi)
    again = ledger.apply(movement_id, smaregi)

    assert applied is not None and applied.state == PointMovementState.APPLIED and applied.settled
    assert applied.transaction_head_ids == (smaregi.point_log[0].transaction_head_id,)
    assert applied.balance_after == BONUS and applied.attempts == 1 and applied.sent_at is not None
    assert again == applied and smaregi.count("add_points") == 1 and balance(smaregi) == BONUS
    assert ledger.applied_total("1") == BONUS and ledger.unsettled() == []
    assert ledger.apply("no-such-movement", smaregi) is None


def test_planning_is_idempotent_per_reason_and_registration(ledger: PointLedger, database: Database) -> None:
    from registrations.models import Registration

    with database.session() as session:
        registration = Registration(
            request_fingerprint="f", email="a@example.com", first_name="A", last_name="B"
        )
        session.add(registration)
        session.flush()
        registration_id = registration.id
    first = ledger.plan(SIGNUP_BONUS, registration_id, "1", BONUS)
    assert ledger.plan(SIGNUP_BONUS, registration_id, "1", 500) == first  # the first plan stands
    goodwill = ledger.plan("goodwill", registration_id, "1", 5)
    assert goodwill != first
    with pytest.raises(ValueError):
        ledger.plan("nothing", None, "1", 0)
    assert {m.id for m in ledger.unsettled()} == {first, goodwill}


def test_a_lost_answer_is_settled_by_the_transaction_it_made_without_sending_again(
    ledger: PointLedger, smaregi: FakeSmaregi
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.lose_next_answer("add_points")

    unclear = ledger.apply(movement_id, smaregi)
    assert (
        unclear is not None
        and unclear.state == PointMovementState.UNCLEAR
        and "timed out" in (unclear.error or "")
    )
    assert ledger.unsettled()[0].id == movement_id

    applied = ledger.apply(movement_id, smaregi)  # found at once: no need to wait for the list

    assert applied is not None and applied.state == PointMovementState.APPLIED and applied.error is None
    assert applied.transaction_head_ids == (smaregi.point_log[0].transaction_head_id,)
    assert smaregi.count("add_points") == 1 and balance(smaregi) == BONUS and len(smaregi.point_log) == 1


def test_a_send_that_never_arrived_is_sent_again_only_once_its_absence_can_be_trusted(
    ledger: PointLedger, smaregi: FakeSmaregi, clock: Clock
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.fail_next("add_points", TransientError("connection reset", system="smaregi"))

    assert (
        unclear := ledger.apply(movement_id, smaregi)
    ) is not None and unclear.state == PointMovementState.UNCLEAR
    too_early = ledger.apply(movement_id, smaregi)
    assert too_early is not None and too_early.state == PointMovementState.UNCLEAR
    assert smaregi.count("add_points") == 1 and smaregi.count("point_transactions") == 1

    clock.advance(3)
    applied = ledger.apply(movement_id, smaregi)

    assert applied is not None and applied.state == PointMovementState.APPLIED and applied.attempts == 2
    assert applied.sent_at == unclear.sent_at  # the window starts at the first send
    assert smaregi.count("add_points") == 2 and balance(smaregi) == BONUS and len(smaregi.point_log) == 1


def test_a_movement_in_flight_is_left_to_its_sender_until_its_lease_runs_out(
    ledger: PointLedger, smaregi: FakeSmaregi, clock: Clock, database: Database
) -> None:
    from sqlalchemy import update

    from registrations.models import PointMovement

    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    # A delivery claimed it and died during the call, after Smaregi had moved the points.
    smaregi.add_points("1", BONUS)
    with database.session() as session:
        session.execute(
            update(PointMovement)
            .where(PointMovement.id == movement_id)
            .values(state=PointMovementState.SENT, attempts=1, sent_at=clock(), updated_at=clock())
        )

    clock.advance(59)
    in_flight = ledger.apply(movement_id, smaregi)
    assert in_flight is not None and in_flight.state == PointMovementState.SENT
    clock.advance(2)
    applied = ledger.apply(movement_id, smaregi)

    assert applied is not None and applied.state == PointMovementState.APPLIED
    assert smaregi.count("add_points") == 1 and balance(smaregi) == BONUS


def test_a_transaction_already_claimed_by_another_movement_is_not_taken_twice(
    ledger: PointLedger, smaregi: FakeSmaregi, clock: Clock
) -> None:
    first = ledger.plan("goodwill", None, "1", BONUS)
    assert (done := ledger.apply(first, smaregi)) is not None and done.state == PointMovementState.APPLIED
    second = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.fail_next("add_points", TransientError("reset before sending", system="smaregi"))
    assert (
        unclear := ledger.apply(second, smaregi)
    ) is not None and unclear.state == PointMovementState.UNCLEAR

    clock.advance(5)
    applied = ledger.apply(second, smaregi)

    # The first movement's transaction lies in the window, same amount: it is the first's, not ours.
    assert applied is not None and applied.state == PointMovementState.APPLIED
    assert set(applied.transaction_head_ids).isdisjoint(done.transaction_head_ids)
    assert balance(smaregi) == 2 * BONUS and ledger.applied_total("1") == 2 * BONUS


def test_a_transaction_of_another_amount_or_direction_is_not_ours(
    ledger: PointLedger, smaregi: FakeSmaregi, clock: Clock
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.fail_next("add_points", TransientError("reset before sending", system="smaregi"))
    ledger.apply(movement_id, smaregi)
    smaregi.add_points("1", BONUS + 1)  # the till, meanwhile
    smaregi.add_points("1", -BONUS - 1)
    clock.advance(5)

    applied = ledger.apply(movement_id, smaregi)

    assert applied is not None and applied.state == PointMovementState.APPLIED
    assert smaregi.point_log[-1].transaction_head_id in applied.transaction_head_ids
    assert balance(smaregi) == BONUS


def test_an_unreadable_amount_counts_as_ours_so_doubt_never_sends_twice(
    ledger: PointLedger, smaregi: FakeSmaregi, clock: Clock
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.fail_next("add_points", TransientError("reset before sending", system="smaregi"))
    ledger.apply(movement_id, smaregi)
    smaregi.point_log.append(PointTransaction("77", "6", "1", None, clock()))
    clock.advance(5)

    applied = ledger.apply(movement_id, smaregi)

    assert applied is not None and applied.transaction_head_ids == ("77",)
    assert smaregi.count("add_points") == 1


@pytest.mark.parametrize(
    ("refusal", "state"),
    [
        (PermanentError("HTTP 400", system="smaregi", status=400), PointMovementState.FAILED),
        (NotFoundError("HTTP 404", system="smaregi", status=404), PointMovementState.FAILED),
        (ThrottledError("HTTP 429", system="smaregi", status=429), PointMovementState.PLANNED),
    ],
)
def test_a_refusal_is_an_answer_nothing_moved(
    ledger: PointLedger, smaregi: FakeSmaregi, refusal: Exception, state: PointMovementState
) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    smaregi.fail_next("add_points", refusal)

    movement = ledger.apply(movement_id, smaregi)

    assert movement is not None and movement.state == state and movement.error
    assert smaregi.count("point_transactions") == 0 and balance(smaregi) == 0
    assert movement.settled == (state == PointMovementState.FAILED)


def test_two_deliveries_never_both_send(ledger: PointLedger, smaregi: FakeSmaregi) -> None:
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    stale = ledger.get(movement_id)
    assert stale is not None
    assert ledger.apply(movement_id, smaregi) is not None

    # A second delivery that read the row before the first one claimed it loses the claim, and
    # sees what the first one did.
    seen = ledger._send(stale, smaregi)
    assert seen is not None and seen.state == PointMovementState.APPLIED
    assert smaregi.count("add_points") == 1


# What can happen to one send: answered, answer lost after the write, or failed before it.
OUTCOMES = st.sampled_from(["answered", "lost", "failed", "throttled"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=6),
    waits=st.lists(st.sampled_from([0.0, 1.0, 3.0, 61.0]), min_size=1, max_size=8),
)
def test_whatever_happens_the_points_move_at_most_once_and_finally_once(
    tmp_path_factory: pytest.TempPathFactory, outcomes: list[str], waits: list[float]
) -> None:
    clock = Clock()
    database = make_database(tmp_path_factory.mktemp("points") / "points.db")
    smaregi = FakeSmaregi(clock=clock)
    smaregi.add_member("0000000000000001", "hanako@example.com")
    ledger = PointLedger(database, clock=clock, settle_seconds=3, send_lease_seconds=60)
    movement_id = ledger.plan(SIGNUP_BONUS, None, "1", BONUS)
    for outcome in outcomes:
        if outcome == "lost":
            smaregi.lose_next_answer("add_points")
        elif outcome == "failed":
            smaregi.fail_next("add_points", TransientError("reset", system="smaregi"))
        elif outcome == "throttled":
            smaregi.fail_next("add_points", ThrottledError("429", system="smaregi", status=429))
        else:
            break  # the next send is answered; later faults never come into play

    for wait in waits * 3:
        ledger.apply(movement_id, smaregi)
        assert balance(smaregi) in (0, BONUS)  # never twice, at any moment
        clock.advance(wait)
    for _ in range(len(outcomes) + 2):  # then time passes and the task keeps retrying
        clock.advance(5)
        ledger.apply(movement_id, smaregi)

    final = ledger.get(movement_id)
    assert final is not None and final.state == PointMovementState.APPLIED
    assert balance(smaregi) == BONUS and len(smaregi.point_log) == 1
    assert final.transaction_head_ids == (smaregi.point_log[0].transaction_head_id,)
    database.dispose()
