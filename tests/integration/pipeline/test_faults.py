"""Whatever the vendors do wrong, every registration ends synced (after a replay of what was
dead-lettered), and no system ever holds two objects for one person."""

from __future__ import annotations

from typing import Any

import pytest

from registrations.dead_letters import DeadLetters
from tests.support.pipeline import Pipeline, assert_exactly_once, person
from tests.support.services import BROKERS

VENDORS = ("shopify", "smaregi", "hubspot")
FAULT_KINDS = {
    "errors": {"error_rate": 0.3},
    "throttling": {"throttle_rate": 0.15},
    "timeouts_after_commit": {"timeout_after_commit_rate": 0.2},
    "all_together": {"error_rate": 0.1, "throttle_rate": 0.05, "timeout_after_commit_rate": 0.03},
}


def run_with_faults(pipeline: Pipeline, sandbox: Any, faults: dict[str, float], count: int) -> None:
    for offset, vendor in enumerate(VENDORS):
        sandbox.faults(vendor, **faults, seed=1000 + offset)
    pipeline.start_worker()
    ids = [pipeline.register(person(number)) for number in range(count)]
    statuses = pipeline.wait_settled(ids, timeout=90)

    if set(statuses.values()) != {"synced"}:
        # Whatever ran out of retries is in the dead letters with a reason, and a replay finishes it.
        letters = pipeline.open_dead_letters()
        assert letters and all(letter.message for letter in letters), statuses
        for vendor in VENDORS:
            sandbox.faults(vendor)  # the vendor recovered
        celery = pipeline.celery()
        letters = DeadLetters(celery.membersync.database)  # publishes each replay after its commit
        for registration_id in letters.open_registrations():
            letters.replay(registration_id)
        statuses = pipeline.wait_settled(ids, timeout=60)
    assert set(statuses.values()) == {"synced"}, statuses
    assert not pipeline.open_dead_letters()
    assert_exactly_once(sandbox, {f"member{number}@example.com" for number in range(count)})


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_each_fault_kind_ends_synced_without_duplicates(pipeline: Pipeline, sandbox: Any, kind: str) -> None:
    run_with_faults(pipeline, sandbox, FAULT_KINDS[kind], count=20)


@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_fifty_registrations_under_every_fault_at_once(pipeline: Pipeline, sandbox: Any) -> None:
    run_with_faults(pipeline, sandbox, FAULT_KINDS["all_together"], count=50)
