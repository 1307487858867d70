"""The same person twice, a walk-in member, a vendor that refuses a field, a system switched off."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main as cli
from registrations.intake import accept_registration
from registrations.models import DeadLetter, Identity, Registration
from registrations.outbox import publish
from tasks.chains import chain_publisher
from tests.support.pipeline import (
    Pipeline,
    answer_card,
    assert_exactly_once,
    held_by_system,
    person,
    till_member,
    wait_for,
)


def test_twenty_concurrent_registrations_of_one_email_make_one_of_each(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(lambda n: pipeline.register(person(1, phone=None)), range(20)))
    assert len(set(ids)) == 20  # no Idempotency-Key: twenty registrations of one person

    statuses = pipeline.wait_settled(ids)

    assert set(statuses.values()) == {"synced"}, statuses
    held = held_by_system(sandbox)
    for system in ("shopify", "smaregi", "hubspot"):
        assert held[system] == {"member1@example.com": 1}, (system, held[system])
    with pipeline.database.session() as session:
        external = {
            (step.system, step.external_id)
            for registration in session.scalars(select(Registration))
            for step in registration.steps
            if step.system in ("shopify", "smaregi", "hubspot") and step.external_id is not None
        }
    assert len(external) == 3  # every registration points at the same customer, member and contact
    # One owner; the others claimed an address that was already a member's and wrote nothing.
    ownership = Counter(registration.ownership for registration in pipeline.registrations())
    assert ownership == {"owner": 1, "claim": 19}, ownership
    # The address got one welcome and at most one "already a member" notice, never twenty mails.
    mails = [m for m in sandbox.messages() if "member1@example.com" in m["recipients"]]
    assert len(mails) <= 2 and sum("welcome." in m["message_id"] for m in mails) == 1, mails


def test_a_walk_in_member_is_linked_and_keeps_their_number(pipeline: Pipeline, sandbox: Any) -> None:
    walk_in = till_member(sandbox, "member3@example.com", "STORE-000123")
    pipeline.start_worker()

    registration_id = pipeline.register(person(3))
    answer_card(pipeline, sandbox, registration_id, "member3@example.com", "yes")

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    members = sandbox.state("smaregi")["customers"]
    assert [(m["customerId"], m["customerCode"]) for m in members] == [
        (walk_in["customerId"], "STORE-000123")
    ]
    with pipeline.database.session() as session:
        identity = session.scalar(select(Identity).where(Identity.email == "member3@example.com"))
        assert identity is not None
        assert identity.smaregi_customer_code == "STORE-000123"
    # The welcome asked; the number followed the owner's answer, once.
    mails = wait_for(lambda: len(sandbox.messages()) == 2 and sandbox.messages(), what="two mails")
    text = {m["message_id"].split(".", 1)[0]: m["text"] or "" for m in mails}
    assert "STORE-000123" not in text["<welcome"] and "STORE-000123" in text["<member-number"]
    assert_exactly_once(sandbox, {"member3@example.com"})


def test_a_refused_field_is_dead_lettered_at_once_and_the_chain_goes_on(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    # Written past the intake's validation (which would refuse hiragana kana), as an older version
    # of the form might have: Smaregi refuses it, and retrying cannot help.
    with pipeline.database.session() as session:
        acceptance = accept_registration(
            session,
            {
                "email": "kana@example.com",
                "first_name": "花子",
                "last_name": "山田",
                "last_name_kana": "やまだ",
            },
            settings=pipeline.settings,
        )
        registration_id, outbox_id = acceptance.registration.id, acceptance.outbox_id
    assert outbox_id is not None
    publish(chain_publisher(pipeline.celery()), pipeline.database, [outbox_id])

    assert pipeline.wait_settled([registration_id]) == {registration_id: "partial"}
    document = pipeline.ops_status(registration_id)
    assert document["steps"]["smaregi"]["state"] == "dead"
    assert document["steps"]["smaregi"]["attempts"] == 1  # not retried
    assert document["steps"]["hubspot"]["state"] == "succeeded"
    assert document["steps"]["email"]["state"] == "succeeded"  # the customer still hears from us
    with pipeline.database.session() as session:
        (letter,) = session.scalars(select(DeadLetter))
        assert (letter.system, letter.error_class, letter.attempts) == ("smaregi", "PermanentError", 1)
        assert letter.message.startswith("permanent:")
    assert sandbox.state("smaregi")["customers"] == []


def test_a_disabled_system_is_skipped_and_backfill_completes_it(
    pipeline: Pipeline, sandbox: Any, monkeypatch: Any
) -> None:
    pipeline.configure(SYNC_HUBSPOT_ENABLED="false")
    pipeline.start_worker()
    ids = [pipeline.register(person(number)) for number in range(3)]
    assert set(pipeline.wait_settled(ids).values()) == {"synced"}
    assert sandbox.state("hubspot")["contacts"] == []
    assert {
        pipeline.client.get(f"/api/registrations/{i}").get_json()["steps"]["hubspot"]["state"] for i in ids
    } == {"skipped"}

    # HubSpot is switched on: a new worker, and the backfill from the command line.
    pipeline.kill_workers()
    pipeline.configure(SYNC_HUBSPOT_ENABLED="true")
    pipeline.start_worker()
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["backfill", "hubspot", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["reopened"] == 3

    assert set(pipeline.wait_settled(ids).values()) == {"synced"}
    assert_exactly_once(sandbox, {f"member{number}@example.com" for number in range(3)})
    states = {
        pipeline.client.get(f"/api/registrations/{i}").get_json()["steps"]["hubspot"]["state"] for i in ids
    }
    assert states == {"succeeded"}


def test_dlq_replay_from_the_command_line_completes_a_dead_letter(
    pipeline: Pipeline, sandbox: Any, monkeypatch: Any
) -> None:
    pipeline.configure(RETRY_POLICY_HUBSPOT="attempts=2,base=0.05,cap=0.1,budget=60")
    pipeline.start_worker()
    sandbox.faults("hubspot", error_rate=1.0)
    registration_id = pipeline.register(person(5))
    assert pipeline.wait_settled([registration_id]) == {registration_id: "partial"}
    (letter,) = pipeline.open_dead_letters()
    assert (letter.system, letter.attempts) == ("hubspot", 2)
    assert letter.message.startswith("retries_exhausted:")

    sandbox.faults("hubspot")  # HubSpot is back
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["dlq", "replay", str(letter.id), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["replayed"][0]["systems"] == ["hubspot"]

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    assert not pipeline.open_dead_letters()
    assert_exactly_once(sandbox, {"member5@example.com"})
    # Synced after the replay: the loop is closed, the dead letter says so.
    result = CliRunner().invoke(cli, ["dlq", "list", "--status", "resolved", "--json"])
    assert [row["id"] for row in json.loads(result.output)] == [letter.id]
