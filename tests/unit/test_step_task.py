"""StepTask, the domain steps and replay, run in-process: SQLite, fakes, Celery eager, no services.

Celery's eager mode runs a retry at once (no countdown), so a transient failure is followed by the
next attempt within the same call; the attempt counting and dead-lettering are the real ones.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from connectors.errors import PermanentError, RateLimited, TransientError
from registrations.dead_letters import DeadLetters
from registrations.models import Identity, Registration
from registrations.sync import StepLedger
from tasks import base
from tests.support.world import PERSON, World


def test_a_registration_reaches_every_system_once(world: World) -> None:
    registration_id = world.accept()
    world.run_all(registration_id)
    registration = world.registration(registration_id)
    assert registration.status == "synced"
    assert {step.system: step.state for step in registration.steps} == dict.fromkeys(
        ("shopify", "smaregi", "hubspot", "email", "consent"), "succeeded"
    )
    with world.database.session() as session:
        identity = session.scalar(select(Identity))
        assert identity is not None and identity.email == PERSON["email"]
        assert identity.shopify_customer_id == registration.step("shopify").external_id
        code = identity.smaregi_customer_code
    assert code and [message.member_number for message in world.mailer.sent] == [code]
    # Smaregi owns the number; Shopify shows it.
    assert world.shopify.customers[identity.shopify_customer_id].member_number == code


def test_a_redelivered_step_is_a_no_op(world: World) -> None:
    registration_id = world.accept()
    world.run_all(registration_id)
    world.run_all(registration_id)
    assert len(world.shopify.customers) == 1 and len(world.smaregi.members) == 1
    assert len(world.mailer.sent) == 1


def test_a_lost_create_answer_adopts_the_customer_instead_of_making_a_second(world: World) -> None:
    world.shopify.lose_next_answer("create_customer")
    registration_id = world.accept()
    world.run("shopify", registration_id)
    step = world.registration(registration_id).step("shopify")
    assert step.state == "succeeded" and step.attempts == 2
    assert len(world.shopify.customers) == 1
    assert step.external_id == next(iter(world.shopify.customers))


def test_a_lost_smaregi_create_is_found_again_by_its_code(world: World) -> None:
    world.smaregi.lose_next_answer("create_member")
    registration_id = world.accept()
    world.run_all(registration_id)
    assert len(world.smaregi.members) == 1
    assert world.registration(registration_id).status == "synced"


def test_two_registrations_of_one_person_share_every_object(world: World) -> None:
    first, second = world.accept(), world.accept(first_name="Hanako")
    world.run_all(first)
    world.run_all(second)
    assert len(world.shopify.customers) == len(world.smaregi.members) == len(world.hubspot.contacts) == 1
    assert world.registration(second).step("smaregi").external_id == (
        world.registration(first).step("smaregi").external_id
    )


def test_a_permanent_failure_dead_letters_that_step_and_the_chain_goes_on(world: World) -> None:
    world.hubspot.fail_next("upsert_contact", PermanentError("HTTP 400: bad property", system="hubspot"))
    registration_id = world.accept()
    world.run("shopify", registration_id)
    world.run("smaregi", registration_id)
    result = world.run("hubspot", registration_id)
    # A FAILURE for Flower, naming the dead letter and how to re-run it...
    assert result.state == "FAILURE"
    [letter] = world.dead_letters()
    assert f"#{letter.id}" in str(result.result) and "membersync.replay" in str(result.result)
    # ...and the rest of the pipeline queued past it (the chain itself ended with the failure).
    assert world.published == [(registration_id, ["email"])]
    world.run("email", registration_id)
    registration = world.registration(registration_id)
    assert registration.step("hubspot").state == "dead"
    assert registration.step("email").state == "succeeded"
    assert registration.status == "partial"
    [letter] = world.dead_letters()
    assert (letter.system, letter.status, letter.attempts) == ("hubspot", "open", 1)


def test_the_master_dead_letters_as_a_failure_and_the_registration_fails(world: World) -> None:
    world.shopify.fail_next("create_customer", PermanentError("HTTP 401", system="shopify"))
    registration_id = world.accept()
    result = world.run("shopify", registration_id)
    assert result.state == "FAILURE" and "dead-lettered" in str(result.result)
    assert world.registration(registration_id).status == "failed"
    assert [letter.system for letter in world.dead_letters()] == ["shopify"]
    assert world.published == []  # nothing follows the master


def test_applying_a_dead_step_again_fails_with_the_replay_hint(world: World) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    registration_id = world.accept()
    world.run("shopify", registration_id)
    world.run("smaregi", registration_id)
    [letter] = world.dead_letters()
    again = world.run("smaregi", registration_id)  # what Flower's apply of the step task does
    assert again.state == "FAILURE"
    assert f"#{letter.id}" in str(again.result) and "membersync.replay" in str(again.result)
    assert world.smaregi.count("create_member") == 1


def test_replaying_nothing_is_a_short_failure(world: World) -> None:
    result = world.celery.tasks["membersync.replay"].apply(args=("no-such-registration",))
    assert result.state == "FAILURE"
    assert str(result.result) == "nothing open to replay for no-such-registration"


def test_the_replay_task_reopens_and_publishes(world: World) -> None:
    world.hubspot.fail_next("upsert_contact", PermanentError("HTTP 400", system="hubspot"))
    registration_id = world.accept()
    world.run_all(registration_id)
    [letter] = world.dead_letters()
    result = world.celery.tasks["membersync.replay"].apply(args=(str(letter.id),))
    assert result.state == "SUCCESS"
    assert result.result == {"registration_id": registration_id, "systems": ["hubspot"]}


def test_transient_failures_retry_until_the_policy_runs_out(world: World) -> None:
    policy = world.settings.retry_policies["hubspot"]
    for _ in range(policy.max_attempts):
        world.hubspot.fail_next("upsert_contact", TransientError("HTTP 503", system="hubspot", status=503))
    registration_id = world.accept()
    world.run("hubspot", registration_id)
    step = world.registration(registration_id).step("hubspot")
    assert step.state == "dead" and step.attempts == policy.max_attempts
    assert step.last_error == "retries_exhausted: TransientError (HTTP 503)"
    assert world.hubspot.contacts == {}


def test_one_transient_failure_is_retried_to_success(world: World) -> None:
    world.hubspot.fail_next("upsert_contact", TransientError("timed out", system="hubspot"))
    registration_id = world.accept()
    world.run("hubspot", registration_id)
    step = world.registration(registration_id).step("hubspot")
    assert (step.state, step.attempts, step.last_error) == ("succeeded", 2, None)


def test_our_own_rate_limit_defers_without_using_an_attempt(world: World) -> None:
    for _ in range(20):  # more deferrals than the policy has attempts
        world.hubspot.fail_next("upsert_contact", RateLimited("budget", system="hubspot", retry_after=0.01))
    registration_id = world.accept()
    world.run("hubspot", registration_id)
    step = world.registration(registration_id).step("hubspot")
    assert (step.state, step.attempts) == ("succeeded", 1)


def test_a_database_outage_while_recording_is_retried_like_a_vendor_outage(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Longer than the step's own re-records of the outcome (tests/unit/test_record_retry.py).
    monkeypatch.setattr(base, "RECORD_PAUSES", tuple(0.0 for _ in base.RECORD_PAUSES))
    real_record = StepLedger.record
    failures = iter(
        [OperationalError("UPDATE", {}, Exception("database is locked"))] * (len(base.RECORD_PAUSES) + 1)
    )

    def flaky_record(self: StepLedger, *args: Any, **kwargs: Any) -> bool:
        error = next(failures, None)
        if error is not None:
            raise error
        return real_record(self, *args, **kwargs)

    monkeypatch.setattr(StepLedger, "record", flaky_record)
    registration_id = world.accept()
    world.run("shopify", registration_id)
    step = world.registration(registration_id).step("shopify")
    assert (step.state, step.attempts) == ("succeeded", 2)
    assert len(world.shopify.customers) == 1  # the second attempt adopted what the first created


def test_a_step_that_keeps_killing_workers_is_dead_lettered(world: World) -> None:
    registration_id = world.accept()
    with world.database.session() as session:
        step = session.get(Registration, registration_id).step("smaregi")  # type: ignore[union-attr]
        step.state, step.attempts, step.celery_task_id = "running", 10, "the-dead-worker"
    world.run("smaregi", registration_id, task_id="the-dead-worker")  # a redelivery keeps its id
    [letter] = world.dead_letters()
    assert letter.system == "smaregi" and "worker_lost" in letter.message
    assert world.smaregi.members == {}


def test_a_step_held_by_another_live_delivery_is_left_to_it(world: World) -> None:
    registration_id = world.accept()
    with world.database.session() as session:
        step = session.get(Registration, registration_id).step("hubspot")  # type: ignore[union-attr]
        step.state, step.attempts, step.celery_task_id = "running", 1, "another-delivery"
    result = world.run("hubspot", registration_id)
    assert result.state == "IGNORED"
    assert world.hubspot.calls == []


def test_a_disabled_system_is_skipped(world: World, tmp_path: Path) -> None:
    registration_id = world.accept()
    world.celery.membersync.settings = Settings.from_env(
        environ={
            "MEMBERSYNC_ENV": "test",
            "DATABASE_URL": world.settings.database_url,
            "SYNC_HUBSPOT_ENABLED": "false",
        }
    )
    world.run("hubspot", registration_id)
    assert world.registration(registration_id).step("hubspot").state == "skipped"
    assert world.hubspot.calls == []


def test_replay_reopens_the_dead_step_and_publishes_the_rest_of_the_chain(world: World) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    registration_id = world.accept()
    world.run_all(registration_id)
    [letter] = world.dead_letters()
    world.published.clear()
    replayed = DeadLetters(world.publishing).replay(letter.id)
    assert replayed.systems == ("smaregi",)
    assert world.published == [(registration_id, ["smaregi"])]
    step = world.registration(registration_id).step("smaregi")
    assert (step.state, step.attempts) == ("pending", 0)
    world.run("smaregi", registration_id)
    # The welcome went out without the number, so the email step is reopened to send it.
    assert world.registration(registration_id).status == "syncing"
    assert world.published[-1] == (registration_id, ["email"])
    world.run("email", registration_id)
    assert world.registration(registration_id).status == "synced"
    # Synced after the replay: the dead letter closes the loop by itself, saying what did it.
    closed = [(letter.status, letter.resolved_by) for letter in world.dead_letters()]
    assert closed == [("resolved", "replay")]


def test_no_database_transaction_is_held_during_a_vendor_call(world: World) -> None:
    """While a step waits on its vendor, the intake writes to the same SQLite file at once."""
    inside, release = threading.Event(), threading.Event()
    real_create = world.shopify.create_customer

    def slow_create(**fields: Any) -> Any:
        inside.set()
        release.wait(10)
        return real_create(**fields)

    world.shopify.create_customer = slow_create  # type: ignore[method-assign]
    registration_id = world.accept()
    worker = threading.Thread(target=world.run, args=("shopify", registration_id))
    worker.start()
    try:
        assert inside.wait(5)
        started = time.monotonic()
        world.accept(email="taro@example.com")
        assert time.monotonic() - started < 1.0  # SQLite's writer lock is free
    finally:
        release.set()
        worker.join(10)
    assert world.registration(registration_id).step("shopify").state == "succeeded"
