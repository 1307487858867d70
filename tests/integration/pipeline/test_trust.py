"""Issue 13's acceptance, with a real worker, the sandbox over HTTP and the mail catcher.

- An address belongs to its owner: after the owner registers, other spellings of the address and a
  form resubmission change nothing anywhere, and the owner's mailbox holds at most two messages.
- Marketing consent is double opt-in: nothing is SUBSCRIBED anywhere until the owner presses the
  button behind the welcome mail's link; the unsubscribe link reverses all three systems.
- A card made at the till is linked only when the address's owner says it is theirs.
"""

from __future__ import annotations

import re
import time
from typing import Any

from connectors.shopify import ShopifyClient
from tests.support.pipeline import Pipeline, links, mails_to, person, till_member, wait_for

OWNER = "victim@example.com"


def _held(sandbox: Any, address: str) -> dict[str, list[dict[str, Any]]]:
    """What each system holds for `address` (the records as the sandbox stores them)."""

    def mine(records: list[dict[str, Any]], email: Any) -> list[dict[str, Any]]:
        return [record for record in records if (email(record) or "").lower() == address]

    return {
        "shopify": mine(sandbox.state("shopify")["customers"], lambda c: c.get("email")),
        "smaregi": mine(sandbox.state("smaregi")["customers"], lambda m: m.get("mailAddress")),
        "hubspot": mine(sandbox.state("hubspot")["contacts"], lambda c: c["properties"].get("email")),
    }


def _form_post(pipeline: Pipeline, fields: dict[str, str]) -> Any:
    """One submission of the HTML form, with the hidden fields of a freshly opened page."""
    page = pipeline.client.get("/?lang=en").get_data(as_text=True)
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page))
    return pipeline.client.post("/register", data={**hidden, **fields})


def test_other_spellings_and_a_resubmission_change_nothing_of_the_owner(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    owner = pipeline.register(
        person(1, email=OWNER, phone="09011112222", postal_code="150-0001", address="東京都渋谷区1-1")
    )
    assert pipeline.wait_settled([owner]) == {owner: "synced"}
    before = _held(sandbox, OWNER)
    assert [len(before[system]) for system in ("shopify", "smaregi", "hubspot")] == [1, 1, 1]

    intruder = {
        "first_name": "Mallory",
        "last_name": "Intruder",
        "phone": "08099998888",
        "postal_code": "100-0001",
        "address": "東京都千代田区9-9",
        "accepts_marketing": True,
    }
    spellings = [
        "VICTIM@example.com",
        " Victim@Example.COM ",
        "ｖｉｃｔｉｍ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "victim@EXAMPLE.com",
    ]
    claims = [pipeline.register({"email": spelling, **intruder}) for spelling in spellings]
    form = {"email": "Victim@example.com", "first_name": "M", "last_name": "I", "accepts_marketing": "yes"}
    for _ in range(2):  # a submission and its resubmission (the back button)
        assert _form_post(pipeline, form).status_code in (302, 303)
    claims += [r.id for r in pipeline.registrations() if r.id not in {owner, *claims}]
    assert len(claims) >= 5

    statuses = pipeline.wait_settled(claims)

    assert set(statuses.values()) == {"synced"}, statuses
    assert {r.ownership for r in pipeline.registrations() if r.id in claims} == {"claim"}
    assert _held(sandbox, OWNER) == before  # not one field changed, in any system
    consent = before["shopify"][0].get("emailMarketingConsent") or {}
    assert consent.get("marketingState") != "SUBSCRIBED"
    mails = mails_to(sandbox, OWNER)
    assert len(mails) <= 2, [m["subject"] for m in mails]
    notices = [m for m in mails if m["message_id"].startswith("<notice.")]
    assert len(notices) == 1
    # The notice names nobody and carries no number: the typed name may be a stranger's.
    text = notices[0]["text"] or ""
    assert "Mallory" not in text and "Intruder" not in text
    assert not re.search(r"\d{12,}", text)


def test_a_shopper_without_an_address_keeps_none_when_a_stranger_registers_their_email(
    pipeline: Pipeline, sandbox: Any
) -> None:
    shopify = ShopifyClient.from_settings(pipeline.settings)
    shopper = shopify.create_customer(email="shopper@example.com", first_name="S", last_name="P")
    pipeline.start_worker()

    registration_id = pipeline.register(person(2, email="shopper@example.com", address="東京都港区1-1"))

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    [customer] = _held(sandbox, "shopper@example.com")["shopify"]
    assert customer.get("addresses") in (None, []) and customer["firstName"] == "S"
    assert _held(sandbox, "shopper@example.com")["smaregi"] == []  # no card from a stranger's typing
    assert pipeline.ops_status(registration_id)["steps"]["shopify"]["external_id"] == shopper.id


def test_consent_is_double_opt_in_and_the_unsubscribe_link_reverses_it_everywhere(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    registration_id = pipeline.register(person(3, email="fan@example.com", accepts_marketing=True))
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}

    def states() -> tuple[Any, Any, Any]:
        held = _held(sandbox, "fan@example.com")
        shopify = held["shopify"][0].get("emailMarketingConsent") or {}
        subscriptions = [
            status["status"]
            for record in sandbox.state("hubspot")["subscriptions"]
            if record["address"] == "fan@example.com"
            for status in record["statuses"].values()
        ]
        return (
            (shopify.get("marketingState"), shopify.get("marketingOptInLevel")),
            held["smaregi"][0].get("mailReceiveFlag"),
            subscriptions,
        )

    # Asked, not given: PENDING in Shopify, flag 0 in Smaregi, no subscription in HubSpot.
    assert states() == (("PENDING", "CONFIRMED_OPT_IN"), "0", [])
    [welcome] = mails_to(sandbox, "fan@example.com")
    [confirm] = links(welcome, "confirm")
    [unsubscribe] = links(welcome, "unsubscribe")

    assert pipeline.client.get(confirm).status_code == 200  # a mail scanner's prefetch: nothing changes
    time.sleep(1)
    assert states() == (("PENDING", "CONFIRMED_OPT_IN"), "0", [])

    assert pipeline.client.post(confirm, data={"answer": "yes"}).status_code == 200
    wait_for(lambda: states() == (("SUBSCRIBED", "CONFIRMED_OPT_IN"), "1", ["SUBSCRIBED"]), what="subscribed")

    assert pipeline.client.post(unsubscribe).status_code == 200
    wait_for(lambda: states()[0][0] == "UNSUBSCRIBED" and states()[1] == "0", what="unsubscribed")
    assert states()[2] == ["NOT_SUBSCRIBED"]
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}


def test_a_card_made_at_the_till_is_linked_only_when_its_owner_says_so(
    pipeline: Pipeline, sandbox: Any
) -> None:
    walk_in = till_member(sandbox, "walkin@example.com", "STORE-000777")
    pipeline.start_worker()
    registration_id = pipeline.register(person(4, email="walkin@example.com"))

    wait_for(lambda: pipeline.statuses().get(registration_id) == "waiting", what="waiting for the owner")
    assert pipeline.ops_status(registration_id)["steps"]["smaregi"]["state"] == "waiting"
    assert len(_held(sandbox, "walkin@example.com")["smaregi"]) == 1  # no second member meanwhile
    [welcome] = mails_to(sandbox, "walkin@example.com")
    assert "STORE-000777" not in (welcome["text"] or "")  # not yet: it may be someone else's card
    [card] = links(welcome, "confirm")

    assert pipeline.client.post(card, data={"answer": "yes"}).status_code == 200

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    assert pipeline.ops_status(registration_id)["steps"]["smaregi"]["external_id"] == walk_in["customerId"]
    wait_for(lambda: len(mails_to(sandbox, "walkin@example.com")) == 2, what="the member number mail")
    number_mail = [
        m for m in mails_to(sandbox, "walkin@example.com") if m["message_id"] != welcome["message_id"]
    ]
    assert "STORE-000777" in (number_mail[0]["text"] or "")


def test_a_declined_card_gives_the_registrant_a_member_of_their_own(pipeline: Pipeline, sandbox: Any) -> None:
    till_member(sandbox, "other@example.com", "STORE-000888")
    pipeline.start_worker()
    registration_id = pipeline.register(person(5, email="other@example.com"))
    wait_for(lambda: pipeline.statuses().get(registration_id) == "waiting", what="waiting for the owner")
    [card] = links(mails_to(sandbox, "other@example.com")[0], "confirm")

    assert pipeline.client.post(card, data={"answer": "no"}).status_code == 200

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    codes = sorted(m["customerCode"] for m in _held(sandbox, "other@example.com")["smaregi"])
    assert len(codes) == 2 and "STORE-000888" in codes
