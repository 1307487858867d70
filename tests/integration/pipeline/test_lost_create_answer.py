"""A registration whose Shopify create went through but whose answer was lost stays the owner of its
address, even when another registration of the same address recorded that customer in between.

Found by the chaos suite (issue 17): registration A's create timed out after Shopify committed it;
registration B of the same address then met the taken email, read the customer's mark (A's, not
B's) and rightly claimed it; A's retry found the customer already on record and claimed it too. Both
ended `synced` as claims, so nobody created the Smaregi member or the HubSpot contact, and nobody
sent the welcome.
"""

from __future__ import annotations

from typing import Any

from registrations.dead_letters import DeadLetters
from tests.support.pipeline import Pipeline, assert_exactly_once, mails_to, person

EMAIL = "member1@example.com"


def test_a_lost_create_answer_claimed_by_a_second_registration_is_still_ours(
    pipeline: Pipeline, sandbox: Any
) -> None:
    # One attempt, so A's master step dead-letters after its lost answer and waits for the replay:
    # the order (A's create, then B's whole run, then A again) is then fixed, not a race.
    pipeline.configure(RETRY_POLICY_SHOPIFY="attempts=1,base=0.1,cap=0.1,budget=60")
    sandbox.faults("shopify", timeout_after_commit_rate=1.0)  # Shopify commits, the answer is lost
    pipeline.start_worker(concurrency=4)

    first = pipeline.register(person(1))
    assert pipeline.wait_settled([first], timeout=60) == {first: "failed"}
    [customer] = sandbox.state("shopify")["customers"]  # A's create went through all the same
    sandbox.faults("shopify")  # Shopify answers again

    # The same address typed again, with another name: someone else's customer, as B sees it.
    second = pipeline.register(person(1, first_name="Taro"))
    assert pipeline.wait_settled([second], timeout=60) == {second: "synced"}
    assert {r.id: r.ownership for r in pipeline.registrations()}[second] == "claim"

    DeadLetters(pipeline.celery().membersync.database).replay(first)  # published after its commit
    assert pipeline.wait_settled([first], timeout=60) == {first: "synced"}

    ownership = {r.id: r.ownership for r in pipeline.registrations()}
    assert ownership == {first: "owner", second: "claim"}, pipeline.ops_status(first)
    # One customer (A's own, with what A typed), one member, one contact, one welcome.
    assert_exactly_once(sandbox, {EMAIL})
    [held] = sandbox.state("shopify")["customers"]
    assert (held["id"], held.get("firstName")) == (customer["id"], customer.get("firstName"))
    assert customer.get("firstName") == "Hanako"  # nothing B typed was written over it
    welcomes = [m for m in mails_to(sandbox, EMAIL) if str(m.get("message_id")).startswith("<welcome.")]
    assert [m["message_id"] for m in welcomes] == [f"<welcome.{first}@membersync.local>"]
