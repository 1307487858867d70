"""The sign-up bonus in the in-process pipeline: planned with the Smaregi member of the registration that
made the person, applied once by its own task, never for a claim, and not at all when switched off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import ConfigError, Settings
from registrations.models import PointMovement
from registrations.points import SIGNUP_BONUS
from registrations.states import PointMovementState
from tests.support.world import World

BONUS = "150"
SCOPES = "pos.customers:read pos.customers:write pos.transactions:read"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path, SIGNUP_BONUS_POINTS=BONUS, SMAREGI_SCOPES=SCOPES)
    yield made
    made.database.dispose()


def movements(world: World) -> list[PointMovement]:
    with world.database.session() as session:
        rows = list(session.scalars(select(PointMovement)))
        session.expunge_all()
        return rows


def test_the_new_member_gets_the_bonus_once_even_when_the_step_runs_again(world: World) -> None:
    registration_id = world.accept()
    world.run_all(registration_id)
    world.run("smaregi", registration_id)  # a redelivery of a finished step

    [movement] = movements(world)
    member = world.smaregi.members[movement.customer_id]
    assert (movement.reason, movement.registration_id, movement.points) == (
        SIGNUP_BONUS,
        registration_id,
        150,
    )
    assert movement.state == PointMovementState.APPLIED and movement.balance_after == 150
    assert member.point == BONUS and world.smaregi.count("add_points") == 1
    assert movement.transaction_head_ids == [world.smaregi.point_log[0].transaction_head_id]


def test_a_lost_answer_is_applied_exactly_once_by_the_tasks_retry(world: World) -> None:
    world.smaregi.lose_next_answer("add_points")
    registration_id = world.accept()
    world.run_all(registration_id)

    [movement] = movements(world)
    assert movement.state == PointMovementState.APPLIED  # the retry found the transaction it made
    assert world.smaregi.count("add_points") == 1 and len(world.smaregi.point_log) == 1
    assert world.smaregi.members[movement.customer_id].point == BONUS
    assert world.registration(registration_id).status == "synced"  # the step was never retried for it


def test_a_second_registration_of_the_address_is_a_claim_and_gets_nothing(world: World) -> None:
    first = world.accept()
    world.run_all(first)
    second = world.accept(first_name="Someone")
    world.run_all(second)

    assert [m.registration_id for m in movements(world)] == [first]
    assert world.smaregi.count("add_points") == 1


def test_switched_off_by_default_no_movement_is_planned(tmp_path: Path) -> None:
    world = World(tmp_path)
    registration_id = world.accept()
    world.run_all(registration_id)

    assert movements(world) == [] and world.smaregi.count("add_points") == 0
    assert world.settings.signup_bonus_points == 0
    world.database.dispose()


def test_the_bonus_needs_the_transactions_scope_to_settle_a_lost_answer() -> None:
    with pytest.raises(ConfigError, match=r"pos\.transactions:read"):
        Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "SIGNUP_BONUS_POINTS": "100"})
    with pytest.raises(ConfigError, match="SIGNUP_BONUS_POINTS"):
        Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "SIGNUP_BONUS_POINTS": "-1"})
