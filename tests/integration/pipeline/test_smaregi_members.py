"""The Smaregi step with a real worker against the emulator, which (like Smaregi) has no e-mail filter:
people are matched in the member directory, and an unclear create is settled by its code."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from connectors.smaregi import member_code
from registrations.models import DeadLetter, DirectoryMember, Identity
from tests.support.pipeline import (
    Pipeline,
    answer_card,
    assert_exactly_once,
    mails_to,
    person,
    till_member,
    wait_for,
)


def _smaregi_calls(sandbox: Any) -> dict[str, int]:
    return {name: count for name, count in sandbox.state("smaregi")["requests"].items() if "member" in name}


def test_a_member_made_at_the_register_two_seconds_earlier_is_linked(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    # The directory is current: one registration has gone through, so it was loaded.
    warm_up = pipeline.register(person(1))
    assert pipeline.wait_settled([warm_up]) == {warm_up: "synced"}

    walk_in = till_member(sandbox, "member2@example.com", "STORE-000123")
    time.sleep(2)
    registration_id = pipeline.register(person(2))
    answer_card(pipeline, sandbox, registration_id, "member2@example.com", "yes")

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    held = [m for m in sandbox.state("smaregi")["customers"] if m["mailAddress"] == "member2@example.com"]
    assert [(m["customerId"], m["customerCode"]) for m in held] == [(walk_in["customerId"], "STORE-000123")]
    with pipeline.database.session() as session:
        identity = session.scalar(select(Identity).where(Identity.email == "member2@example.com"))
        assert identity is not None and identity.smaregi_customer_code == "STORE-000123"
    messages = wait_for(
        lambda: (
            len(mails_to(sandbox, "member2@example.com")) == 2 and mails_to(sandbox, "member2@example.com")
        ),
        what="the welcome and the member number",
    )
    [number] = [m for m in messages if m["message_id"].startswith("<member-number.")]
    assert "STORE-000123" in (number["text"] or "")  # sent once its owner said it is theirs
    step = pipeline.ops_status(registration_id)["steps"]["smaregi"]
    assert step["external_id"] == walk_in["customerId"]
    assert_exactly_once(sandbox, {"member1@example.com", "member2@example.com"})
    # Never an e-mail in a URL: the emulator saw only documented list parameters.
    assert "mail_address" not in str(sandbox.state("smaregi"))


def test_two_members_with_the_email_are_a_dead_letter_naming_both_codes(
    pipeline: Pipeline, sandbox: Any
) -> None:
    till_member(sandbox, "member3@example.com", "STORE-1")
    till_member(sandbox, "Member3@Example.com", "STORE-2")
    pipeline.start_worker()

    registration_id = pipeline.register(person(3))

    assert pipeline.wait_settled([registration_id]) == {registration_id: "partial"}
    with pipeline.database.session() as session:
        (letter,) = session.scalars(select(DeadLetter))
        assert letter.system == "smaregi" and letter.attempts == 1
        assert "ambiguous_match" in letter.message
        assert "STORE-1" in letter.message and "STORE-2" in letter.message
        assert "member3@" not in letter.message.lower()
    assert len(sandbox.state("smaregi")["customers"]) == 2  # nothing created beside them


def test_an_unclear_create_makes_exactly_one_member(pipeline: Pipeline, sandbox: Any) -> None:
    pipeline.start_worker()
    warm_up = pipeline.register(person(10))  # loads the directory, so the faults hit creates
    assert pipeline.wait_settled([warm_up]) == {warm_up: "synced"}
    sandbox.faults("smaregi", timeout_after_commit_rate=1.0)

    registration_id = pipeline.register(person(11))
    deadline = time.monotonic() + 30
    while not any(m["mailAddress"] == "member11@example.com" for m in sandbox.state("smaregi")["customers"]):
        assert time.monotonic() < deadline, "the create never reached the emulator"
        time.sleep(0.2)

    # Every create's answer stays lost (cleared earlier, a held answer could still arrive within the
    # worker's read timeout); reads are answered, so the step settles the unclear create by its code.
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    sandbox.faults("smaregi")
    note = pipeline.ops_status(registration_id)["steps"]["smaregi"]["note"] or ""
    assert note.startswith("adopted our own member"), note  # not created a second time
    held = [m for m in sandbox.state("smaregi")["customers"] if m["mailAddress"] == "member11@example.com"]
    key = pipeline.settings.member_code_secret
    assert [m["customerCode"] for m in held] == [member_code("member11@example.com", key=key)]
    with pipeline.database.session() as session:
        row = session.get(DirectoryMember, held[0]["customerId"])
        assert row is not None and row.email == "member11@example.com"


def test_server_errors_and_lost_answers_together_leave_one_member_per_person(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    warm_up = pipeline.register(person(20))
    assert pipeline.wait_settled([warm_up]) == {warm_up: "synced"}
    sandbox.faults("smaregi", error_rate=0.3, timeout_after_commit_rate=0.2, seed=7)
    ids = [pipeline.register(person(number)) for number in range(21, 27)]
    time.sleep(3)
    sandbox.faults("smaregi", error_rate=0.3, seed=8)  # held answers go; 5xx go on a while longer

    statuses = pipeline.wait_settled(ids, timeout=180)

    assert set(statuses.values()) == {"synced"}, pipeline.describe_unsettled(ids)
    assert_exactly_once(sandbox, {f"member{number}@example.com" for number in range(20, 27)})
