"""Registration asks for marketing email at most: nothing is SUBSCRIBED anywhere until the owner confirms.

Against emulators that refuse what the real vendors refuse: Shopify NOT_SUBSCRIBED as input, HubSpot
a marketing-status property.
"""

from __future__ import annotations

from typing import Any

from tests.support.pipeline import Pipeline, person


def test_registrants_who_opt_in_or_not_are_synced_and_subscribed_nowhere(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.start_worker()
    quiet = pipeline.register(person(1))
    asked = pipeline.register(person(2, accepts_marketing=True))

    assert pipeline.wait_settled([quiet, asked]) == {quiet: "synced", asked: "synced"}

    consent = {
        customer["email"]: customer["emailMarketingConsent"]
        for customer in sandbox.state("shopify")["customers"]
    }
    # No consent was sent for the first (Shopify's default stays); the second asked: PENDING until confirmed.
    assert consent["member1@example.com"]["marketingState"] == "NOT_SUBSCRIBED"
    assert consent["member1@example.com"]["consentUpdatedAt"] is None
    assert consent["member2@example.com"]["marketingState"] == "PENDING"
    assert consent["member2@example.com"]["marketingOptInLevel"] == "CONFIRMED_OPT_IN"
    members = sandbox.state("smaregi")["customers"]
    assert sorted(member["mailReceiveFlag"] for member in members) == ["0", "0"]
    hubspot = sandbox.state("hubspot")
    assert len(hubspot["contacts"]) == 2
    for contact in hubspot["contacts"]:
        assert not [name for name in contact["properties"] if "marketable" in name or "optout" in name]
    assert not [
        record
        for record in hubspot["subscriptions"]
        if any(status["status"] == "SUBSCRIBED" for status in record["statuses"].values())
    ]
