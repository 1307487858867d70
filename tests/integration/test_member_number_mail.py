"""Over sockets, with a real worker: a registration whose Smaregi step was dead-lettered gets a welcome
without the member number, then, after the replay, exactly one email with the number Smaregi holds;
nothing more on a second replay or a redelivery. A welcome that carried the number gets no follow-up.

Runs on SQLite and on PostgreSQL (TEST_DATABASE_URL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registrations.database import Database
from registrations.dead_letters import DeadLetters, NothingToReplay
from registrations.models import Registration
from tests.support.pipeline import Pipeline, person

# Settled for the registration, and the email step too (the follow-up reopens it after the replay).
DONE_STATES = frozenset({"succeeded", "skipped", "dead"})


@pytest.fixture
def pipeline(database: Database, clean_redis: str, sandbox: Any, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(database, clean_redis, sandbox, tmp_path)
    yield running
    running.stop()


def mails_to(sandbox: Any, address: str) -> list[dict[str, Any]]:
    """The messages caught for `address`, oldest first."""
    return [message for message in reversed(sandbox.messages()) if address in message["recipients"]]


def wait_for(condition: Any, pipeline: Pipeline, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not after {timeout}s\n{pipeline.worker_log_tail()}")
        time.sleep(0.2)


def mailed_at(pipeline: Pipeline, registration_id: str) -> Any:
    with pipeline.database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return registration.member_number_mailed_at


def email_step_done(pipeline: Pipeline, registration_id: str) -> bool:
    with pipeline.database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return registration.step("email").state in DONE_STATES


def smaregi_code(sandbox: Any, address: str) -> str:
    [member] = [m for m in sandbox.state("smaregi")["customers"] if m.get("mailAddress") == address]
    code: str = member["customerCode"]
    return code


def test_a_replayed_smaregi_step_mails_the_number_once(pipeline: Pipeline, sandbox: Any) -> None:
    late, early = person(1, locale="ja"), person(2, locale="en")
    sandbox.faults("smaregi", error_rate=1.0, seed=7)  # Smaregi down until its step is dead-lettered
    pipeline.start_worker()
    late_id = pipeline.register(late)
    assert pipeline.wait_settled([late_id]) == {late_id: "partial"}
    wait_for(lambda: email_step_done(pipeline, late_id), pipeline, "the welcome")
    [welcome] = mails_to(sandbox, late["email"])
    assert welcome["message_id"].startswith(f"<welcome.{late_id}@")
    assert "準備ができ次第" in welcome["text"]  # the welcome says the number follows
    assert [part for part in welcome["parts"] if part.get("content_type") == "image/png"] == []
    assert mailed_at(pipeline, late_id) is None

    sandbox.faults("smaregi")  # Smaregi is back; ops replay what was dead-lettered
    letters = DeadLetters(pipeline.celery().membersync.database)  # publishes after each commit
    letters.replay(late_id)
    wait_for(lambda: mailed_at(pipeline, late_id) is not None, pipeline, "the member-number email")
    assert pipeline.wait_settled([late_id]) == {late_id: "synced"}

    code = smaregi_code(sandbox, late["email"])
    first, number_mail = mails_to(sandbox, late["email"])
    assert first["message_id"] == welcome["message_id"]
    assert number_mail["message_id"] == f"<member-number.{late_id}@{welcome['message_id'].split('@')[1]}"
    assert f"会員番号: {code}" in number_mail["text"]
    assert [part["content_type"] for part in number_mail["parts"]].count("image/png") == 1

    # A second replay finds nothing open; a redelivered email task finds its step finished.
    with pytest.raises(NothingToReplay):
        letters.replay(late_id)
    pipeline.celery().send_task("membersync.mail.send_welcome", args=(late_id,))
    # The person whose welcome could carry the number: one email, no follow-up.
    early_id = pipeline.register(early)
    assert pipeline.wait_settled([early_id]) == {early_id: "synced"}
    wait_for(lambda: mailed_at(pipeline, early_id) is not None, pipeline, "the welcome with the number")
    time.sleep(2)  # time for anything wrongly queued to arrive
    [only] = mails_to(sandbox, early["email"])
    assert only["message_id"].startswith(f"<welcome.{early_id}@")
    assert smaregi_code(sandbox, early["email"]) in only["text"]
    assert len(mails_to(sandbox, late["email"])) == 2
