"""A record the database refuses for a moment (SQLite's busy timeout under many writers) is tried
again with the outcome the vendor call gave, instead of calling the vendor again: a second call is a
second welcome mail, which SMTP cannot take back (`bench ratelimit --vendor shopify` on SQLite sent
2 of 300 welcomes twice this way). An outage longer than the re-records still takes the retry path
(tests/unit/test_step_task.py).

In-process: SQLite, fakes, Celery eager (a retry runs at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from connectors.errors import TransientError
from registrations.sync import Recorded, StepLedger
from tasks import base
from tests.support.world import World


def _locked() -> OperationalError:
    return OperationalError("UPDATE sync_steps ...", {}, Exception("database is locked"))


@pytest.fixture
def refuse_records(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """`refuse_records.append(n)`: the next n records of any step fail as SQLite's busy timeout does
    (after the vendor call, before anything is written). No pauses between the re-records."""
    monkeypatch.setattr(base, "RECORD_PAUSES", tuple(0.0 for _ in base.RECORD_PAUSES))
    real_record = StepLedger.record
    left: list[int] = []

    def flaky_record(self: StepLedger, *args: Any, **kwargs: Any) -> Recorded:
        if left and left[0] > 0:
            left[0] -= 1
            raise _locked()
        return real_record(self, *args, **kwargs)

    monkeypatch.setattr(StepLedger, "record", flaky_record)
    yield left


def test_a_welcome_whose_record_is_refused_once_is_sent_once(world: World, refuse_records: list[int]) -> None:
    registration_id = world.accept()
    for system in ("shopify", "smaregi", "hubspot"):
        world.run(system, registration_id)
    refuse_records.append(1)

    result = world.run("email", registration_id)

    assert result.successful(), result.traceback
    assert len(world.welcomes()) == 1
    step = world.registration(registration_id).step("email")
    assert (step.state, step.attempts) == ("succeeded", 1)
    assert step.external_id == world.welcomes()[0].message_id


def test_every_step_records_what_its_one_call_did(world: World, refuse_records: list[int]) -> None:
    registration_id = world.accept()
    for system in ("shopify", "smaregi", "hubspot", "email"):  # consent starts done
        refuse_records[:] = [len(base.RECORD_PAUSES)]  # refused on every re-record but the last
        world.run(system, registration_id)
        assert world.registration(registration_id).step(system).attempts == 1, system
    assert world.registration(registration_id).status == "synced"
    assert world.shopify.count("create_customer") == 1
    assert world.smaregi.count("create_member") == 1
    assert len(world.welcomes()) == 1


def test_a_retry_whose_bookkeeping_is_refused_once_is_not_left_running(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed call's retry bookkeeping refused by the database (SQLite's busy timeout) used to
    leave the step `running` under this live worker; the very message's retry then found it held
    and stopped, and the registration waited for the 10-minute step lease and the stalled sweep
    (`bench ratelimit --vendor shopify` on SQLite: 299 of 300 synced)."""
    monkeypatch.setattr(base, "RECORD_PAUSES", tuple(0.0 for _ in base.RECORD_PAUSES))
    monkeypatch.setattr("registrations.sync.current_holder", lambda: "vm:1:live-worker")
    real_retry_or_exhaust = StepLedger.retry_or_exhaust
    refusals = [_locked()]

    def flaky(self: StepLedger, *args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return real_retry_or_exhaust(self, *args, **kwargs)

    monkeypatch.setattr(StepLedger, "retry_or_exhaust", flaky)
    registration_id = world.accept()
    world.run("shopify", registration_id)
    world.smaregi.fail_next("create_member", TransientError("timed out", system="smaregi"))

    result = world.run("smaregi", registration_id)

    assert result.successful(), result.traceback
    step = world.registration(registration_id).step("smaregi")
    assert (step.state, step.attempts) == ("succeeded", 2)
    assert len(world.smaregi.members) == 1
