"""The claim of a pending step (`StepLedger.claim`'s two-statement path): the step taken with its
attempt counted, the registration's status as `derive_status` would set it, and a second delivery
refused; a step that is not pending is still decided by the read-first path.

In-process: SQLite, fakes.
"""

from __future__ import annotations

from sqlalchemy import update

from registrations.models import SyncStep
from registrations.status import derive_status
from registrations.sync import Claimed, Finished, StepLedger
from tests.support.world import World


def _ledger(world: World, system: str) -> StepLedger:
    return StepLedger(world.database, world.settings, system)


def test_a_pending_step_is_taken_once_and_the_registration_is_syncing(world: World) -> None:
    registration_id = world.accept()
    before = world.registration(registration_id)

    first = _ledger(world, "smaregi").claim(registration_id, "delivery-1")
    second = _ledger(world, "smaregi").claim(registration_id, "delivery-2")

    assert first == Claimed(before.email)
    assert second == Finished("held")
    after = world.registration(registration_id)
    step = after.step("smaregi")
    assert (step.state, step.attempts, step.celery_task_id) == ("running", 1, "delivery-1")
    assert step.first_attempt_at is not None
    assert after.status == derive_status(after.steps) == "syncing"
    assert after.updated_at > before.updated_at


def test_a_claim_after_a_dead_master_leaves_the_registration_failed(world: World) -> None:
    registration_id = world.accept()
    with world.database.session() as session:
        session.execute(
            update(SyncStep)
            .where(SyncStep.registration_id == registration_id, SyncStep.system == "shopify")
            .values(state="dead")
        )

    claimed = _ledger(world, "email").claim(registration_id, "delivery-1")

    assert isinstance(claimed, Claimed)
    after = world.registration(registration_id)
    assert after.step("email").state == "running"
    assert after.status == derive_status(after.steps) == "failed"


def test_a_finished_step_is_not_taken(world: World) -> None:
    registration_id = world.accept()
    world.run("shopify", registration_id)

    assert _ledger(world, "shopify").claim(registration_id, "again") == Finished("succeeded")
    assert world.registration(registration_id).step("shopify").attempts == 1
