"""A replay whose Smaregi success reopens the email step (the member number the welcome could not
carry) gets that step run at once, even when the chain queued with the reopening stops at a step
another delivery holds.

Found by the chaos suite (issue 17): after `dlq replay --all`, two registrations waited for the
15-minute stalled sweep. The replay's chain was [smaregi, hubspot]; Smaregi's success reopened the
email step and queued [hubspot, email]; that chain's HubSpot delivery met the replay's HubSpot
delivery holding the step and stopped there (a held step's chain is the holder's to carry on), and
the holder's chain ended with HubSpot. Nobody ran the email step.

In-process (SQLite, fakes, Celery eager); the "held" moment is played inside the holder's HubSpot
call, as a concurrent delivery would meet it, and the holder runs as the last task of its chain.
"""

from __future__ import annotations

from typing import Any

from connectors.errors import PermanentError
from registrations.dead_letters import DeadLetters
from tests.support.world import World

HUBSPOT_TASK = "membersync.hubspot.upsert_contact"


def run_in_chain(
    world: World, system_task: str, registration_id: str, *, delivery: str, coming: list[Any]
) -> Any:
    """Deliver a step task as part of a chain: `coming` is Celery's request.chain (empty: the last)."""
    task = world.celery.tasks[system_task]
    task.push_request(id=delivery, chain=coming, retries=0)
    try:
        return task.run_step(registration_id)
    finally:
        task.pop_request()


def test_a_reopened_email_step_is_queued_when_its_chain_stopped_at_a_held_step(world: World) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    world.hubspot.fail_next("upsert_contact", PermanentError("HTTP 403: plan", system="hubspot"))
    registration_id = world.accept()
    world.run_all(registration_id)
    world.published.clear()
    before = world.registration(registration_id)
    assert {step.system: step.state for step in before.steps} == {
        "shopify": "succeeded",
        "smaregi": "dead",
        "hubspot": "dead",
        "email": "succeeded",
        "consent": "succeeded",
    }
    assert [message.member_number for message in world.welcomes()] == [None]

    DeadLetters(world.publishing).replay(registration_id)
    assert world.published.pop(0) == (registration_id, ["smaregi", "hubspot"])  # the replay's chain
    hubspot_entry = {"task": HUBSPOT_TASK, "args": [registration_id], "immutable": True}
    run_in_chain(
        world,
        "membersync.smaregi.upsert_member",
        registration_id,
        delivery="replay-1",
        coming=[hubspot_entry],
    )
    # Smaregi's success reopened the email step and queued the chain from the first unfinished step.
    assert world.published.pop(0) == (registration_id, ["hubspot", "email"])
    assert world.registration(registration_id).step("email").state == "pending"

    # The replay's HubSpot delivery holds the step when the follow-up chain's HubSpot arrives: that
    # one finds it held and its chain ends there, so the follow-up's email task never comes.
    real_upsert = world.hubspot.upsert_contact
    held: list[Any] = []

    def upsert_while_the_follow_up_arrives(**arguments: Any) -> Any:
        held.append(world.run("hubspot", registration_id, task_id="follow-up-1").state)
        return real_upsert(**arguments)

    world.hubspot.upsert_contact = upsert_while_the_follow_up_arrives  # type: ignore[method-assign]
    result = run_in_chain(world, HUBSPOT_TASK, registration_id, delivery="replay-2", coming=[])
    assert result["state"] == "succeeded"
    assert held == ["IGNORED"]  # the follow-up chain stopped at the held step

    # The holder, the last of its chain, queued the reopened email step (through the outbox).
    assert world.published == [(registration_id, ["email"])]
    world.run_published()
    assert [message.member_number for message in world.number_mails()] == [world.member_code()]
    registration = world.registration(registration_id)
    assert registration.status == "synced" and registration.member_number_mailed_at is not None
    assert len(world.welcomes()) == 1


def test_an_ordinary_chain_queues_nothing_more(world: World) -> None:
    """Every later step is in the chain: no extra chain, not even a read of the steps."""
    registration_id = world.accept()
    world.run("shopify", registration_id)
    rest = [
        {"task": name, "args": [registration_id]}
        for name in reversed(
            ["membersync.hubspot.upsert_contact", "membersync.mail.send_welcome", "membersync.consent.update"]
        )
    ]
    run_in_chain(world, "membersync.smaregi.upsert_member", registration_id, delivery="chain-1", coming=rest)
    assert world.published == []
