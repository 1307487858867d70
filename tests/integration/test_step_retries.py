"""The base step translates connector errors: retry transient ones, dead-letter the rest, stop on the master.

Real Redis and a real worker; the steps here are test steps whose "vendor" fails on a script.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, ClassVar

from celery import chain
from sqlalchemy import select

from config.settings import RetryPolicy
from config.systems import SYSTEM_NAMES
from connectors.errors import AmbiguousMatch, PermanentError, ThrottledError, TransientError
from registrations.database import Database
from registrations.models import DeadLetter, OutboxMessage, Registration, SyncStep
from registrations.steps import Outcome, Step, Work
from registrations.sync import StepLedger
from tasks.base import StepTask

SYSTEMS = SYSTEM_NAMES
FAST = RetryPolicy(max_attempts=3, base_seconds=0.05, cap_seconds=0.2, budget_seconds=60)


class ScriptedCall(Step):
    """A domain step whose vendor answers from `script` (exceptions to raise, then success)."""

    script: ClassVar[list[Exception]] = []
    calls: ClassVar[int] = 0

    def call(self, work: Work, connectors: Any) -> Outcome:
        type(self).calls += 1
        if type(self).script:
            raise type(self).script.pop(0)
        return Outcome(f"ext-{work.registration_id[:8]}")


class ScriptedStep(StepTask):
    """The real StepTask around a scripted call, with a fast retry policy."""

    abstract = True

    @property
    def ledger(self) -> StepLedger:
        settings = self.runtime.settings
        fast = dataclasses.replace(settings, retry_policies={name: FAST for name in SYSTEMS})
        return StepLedger(self.runtime.database, fast, self.system)

    def run(self, registration_id: str) -> dict[str, Any]:
        return self.run_step(registration_id)


class HubspotCall(ScriptedCall):
    system = "hubspot"


class ShopifyCall(ScriptedCall):
    system = "shopify"


class SmaregiCall(ScriptedCall):
    system = "smaregi"


class HubspotStep(ScriptedStep):
    name = "tests.hubspot_step"
    step_class = HubspotCall


class ShopifyStep(ScriptedStep):
    name = "tests.shopify_step"
    step_class = ShopifyCall


class SmaregiStep(ScriptedStep):
    name = "tests.smaregi_step"
    step_class = SmaregiCall


def _only_pending(database: Database, registration_id: str, systems: set[str]) -> None:
    """Mark every other step finished, so a continuation queues none of the real registry tasks."""
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        for step in registration.steps:
            if step.system not in systems:
                step.state = "skipped"


def new_registration(database: Database, **step_state: Any) -> str:
    with database.session() as session:
        registration = Registration(
            request_fingerprint="f", email="r@example.com", first_name="A", last_name="B"
        )
        registration.steps = [SyncStep(system=system, **step_state) for system in SYSTEMS]
        session.add(registration)
        session.flush()
        return registration.id


def step_of(database: Database, registration_id: str, system: str) -> SyncStep:
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return registration.step(system)


def status_of(database: Database, registration_id: str) -> str:
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return registration.status


def dead_letters(database: Database) -> list[DeadLetter]:
    with database.session() as session:
        return list(session.scalars(select(DeadLetter)))


def wait_for_state(database: Database, registration_id: str, system: str, states: set[str]) -> SyncStep:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        step = step_of(database, registration_id, system)
        if step.state in states:
            return step
        time.sleep(0.05)
    raise AssertionError(f"{system} stayed {step_of(database, registration_id, system).state}")


def start(
    worker_factory: Callable[..., Any], redis_url: str, *scripts: tuple[type[ScriptedStep], list[Exception]]
) -> Any:
    for task_class, script in scripts:
        call_class: Any = task_class.step_class
        call_class.script = list(script)
        call_class.calls = 0
    return worker_factory(redis_url, extra_tasks=(HubspotStep, ShopifyStep, SmaregiStep))


def test_transient_errors_are_retried_until_success(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(
        worker_factory,
        clean_redis,
        (HubspotStep, [TransientError("503 from vendor"), ThrottledError("429", retry_after=0.1)]),
    )
    registration_id = new_registration(database)
    celery.signature(HubspotStep.name, args=(registration_id,)).apply_async()
    step = wait_for_state(database, registration_id, "hubspot", {"succeeded", "dead"})
    assert step.state == "succeeded"
    assert step.attempts == 3 and HubspotCall.calls == 3
    assert step.external_id == f"ext-{registration_id[:8]}" and step.last_error is None
    assert dead_letters(database) == []


def test_retries_run_out_into_a_dead_letter_that_ends_as_a_failure(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(
        worker_factory, clean_redis, (HubspotStep, [TransientError("down")] * 5), (SmaregiStep, [])
    )
    registration_id = new_registration(database)
    _only_pending(database, registration_id, {"hubspot", "smaregi"})
    result = chain(
        celery.signature(HubspotStep.name, args=(registration_id,), immutable=True),
        celery.signature(SmaregiStep.name, args=(registration_id,), immutable=True),
    ).apply_async()
    step = wait_for_state(database, registration_id, "hubspot", {"dead"})
    assert step.attempts == FAST.max_attempts == HubspotCall.calls
    [letter] = dead_letters(database)
    assert (letter.system, letter.status, letter.error_class) == ("hubspot", "open", "TransientError")
    assert letter.message.startswith("retries_exhausted") and letter.args == {
        "registration_id": registration_id
    }
    # The delivery ends as a FAILURE, so the chain's link (the scripted step) is not followed; the
    # rest of the pipeline is queued past it through the outbox and runs as the registry's own task.
    assert wait_for_state(database, registration_id, "smaregi", {"succeeded"}).external_id
    assert SmaregiCall.calls == 0
    with database.session() as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.registration_id == registration_id)
        )
        assert len(list(queued)) == 1
    del result


def test_a_permanent_error_on_the_master_fails_the_registration_and_stops_the_chain(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(
        worker_factory, clean_redis, (ShopifyStep, [PermanentError("401 bad token")]), (SmaregiStep, [])
    )
    registration_id = new_registration(database)
    chain(
        celery.signature(ShopifyStep.name, args=(registration_id,), immutable=True),
        celery.signature(SmaregiStep.name, args=(registration_id,), immutable=True),
    ).apply_async()
    step = wait_for_state(database, registration_id, "shopify", {"dead"})
    assert step.attempts == 1 and ShopifyCall.calls == 1
    assert status_of(database, registration_id) == "failed"
    time.sleep(0.5)
    assert SmaregiCall.calls == 0 and step_of(database, registration_id, "smaregi").state == "pending"
    [letter] = dead_letters(database)
    assert letter.message.startswith("permanent")


def test_an_ambiguous_match_is_dead_lettered_with_its_reason(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(
        worker_factory, clean_redis, (SmaregiStep, [AmbiguousMatch("2 members share the address")])
    )
    registration_id = new_registration(database)
    _only_pending(database, registration_id, {"smaregi"})
    celery.signature(SmaregiStep.name, args=(registration_id,)).apply_async()
    wait_for_state(database, registration_id, "smaregi", {"dead"})
    [letter] = dead_letters(database)
    assert letter.message.startswith("ambiguous_match") and letter.error_class == "AmbiguousMatch"


def test_a_message_that_keeps_killing_workers_runs_out_of_attempts(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(worker_factory, clean_redis, (HubspotStep, []))
    # Three earlier deliveries of this same message claimed the step and never came back (the
    # worker died each time); the broker delivers it once more.
    registration_id = new_registration(
        database, attempts=FAST.max_attempts, state="running", celery_task_id="poison-message"
    )
    celery.signature(HubspotStep.name, args=(registration_id,)).apply_async(task_id="poison-message")
    wait_for_state(database, registration_id, "hubspot", {"dead"})
    assert HubspotCall.calls == 0
    [letter] = dead_letters(database)
    assert letter.message.startswith("worker_lost")


def test_a_finished_step_is_a_no_op_on_redelivery(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(worker_factory, clean_redis, (HubspotStep, []))
    registration_id = new_registration(database)
    for _ in range(3):
        celery.signature(HubspotStep.name, args=(registration_id,)).apply_async()
    wait_for_state(database, registration_id, "hubspot", {"succeeded"})
    time.sleep(0.5)
    assert HubspotCall.calls == 1 and step_of(database, registration_id, "hubspot").attempts == 1


def test_a_step_held_by_another_delivery_is_not_run_twice(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(worker_factory, clean_redis, (HubspotStep, []), (SmaregiStep, []))
    # Another worker holds the hubspot step right now (claimed a moment ago under another message).
    registration_id = new_registration(database, state="running", attempts=1, celery_task_id="other-message")
    chain(
        celery.signature(HubspotStep.name, args=(registration_id,), immutable=True),
        celery.signature(SmaregiStep.name, args=(registration_id,), immutable=True),
    ).apply_async()
    time.sleep(1.0)
    assert HubspotCall.calls == 0 and SmaregiCall.calls == 0  # stopped: the holder's chain goes on
    step = step_of(database, registration_id, "hubspot")
    assert (step.state, step.attempts, step.celery_task_id) == ("running", 1, "other-message")


def test_a_live_holder_on_its_last_attempt_is_not_dead_lettered_by_a_duplicate(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    celery = start(worker_factory, clean_redis, (HubspotStep, []))
    registration_id = new_registration(
        database, state="running", attempts=FAST.max_attempts, celery_task_id="live-holder"
    )
    celery.signature(HubspotStep.name, args=(registration_id,)).apply_async()
    time.sleep(1.0)
    assert step_of(database, registration_id, "hubspot").state == "running"
    assert dead_letters(database) == [] and HubspotCall.calls == 0


def test_vendor_text_never_reaches_the_public_status(
    worker_factory: Callable[..., Any], clean_redis: str, database: Database
) -> None:
    leaky = PermanentError("Property values were not valid: hanako@example.com is INVALID_EMAIL", status=400)
    celery = start(worker_factory, clean_redis, (SmaregiStep, [leaky]))
    registration_id = new_registration(database)
    _only_pending(database, registration_id, {"smaregi"})
    celery.signature(SmaregiStep.name, args=(registration_id,)).apply_async()
    step = wait_for_state(database, registration_id, "smaregi", {"dead"})
    assert step.last_error == "permanent: PermanentError (HTTP 400)"
    [letter] = dead_letters(database)
    assert "INVALID_EMAIL" in letter.message and "hanako@example.com" not in letter.message
