"""A household sharing one phone, through the real worker and the emulators over sockets.

Shopify keeps phones unique per shop; Smaregi and HubSpot allow duplicates. A phone already held in
Shopify must never fail a registration: the customer is created without it, the other systems keep
it, and the Shopify step says so on the status API.
"""

from __future__ import annotations

from typing import Any

from registrations.steps.shopify import PHONE_TAKEN_NOTE
from tests.support.pipeline import Pipeline, assert_exactly_once, person

HOUSEHOLD_PHONE = "090-1234-5678"
E164 = "+819012345678"


def test_three_registrations_sharing_a_phone_all_end_synced(pipeline: Pipeline, sandbox: Any) -> None:
    pipeline.start_worker()
    ids = []
    for number in (1, 2, 3):
        # One after the other, so which of them holds the phone in Shopify is known: the first.
        ids.append(pipeline.register(person(number, phone=HOUSEHOLD_PHONE)))
        pipeline.wait_settled(ids[-1:])

    assert pipeline.wait_settled(ids) == {registration_id: "synced" for registration_id in ids}
    emails = {f"member{number}@example.com" for number in (1, 2, 3)}
    assert_exactly_once(sandbox, emails)

    shopify = {customer["email"]: customer for customer in sandbox.state("shopify")["customers"]}
    assert [shopify[f"member{number}@example.com"]["phone"] for number in (1, 2, 3)] == [E164, None, None]
    smaregi = sandbox.state("smaregi")["customers"]
    assert [_digits(member.get("phoneNumber")) for member in smaregi] == [E164] * 3
    hubspot = sandbox.state("hubspot")["contacts"]
    assert [_digits(contact["properties"].get("phone")) for contact in hubspot] == [E164] * 3

    notes = []
    for registration_id in ids:
        shopify_step = pipeline.ops_status(registration_id)["steps"]["shopify"]
        assert shopify_step["state"] == "succeeded"
        notes.append(shopify_step.get("note"))
    assert notes == [None, PHONE_TAKEN_NOTE, PHONE_TAKEN_NOTE]
    assert pipeline.open_dead_letters() == []


def _digits(phone: str | None) -> str | None:
    """A phone without separators, the way each system may format it."""
    return None if phone is None else "".join(char for char in phone if char.isdigit() or char == "+")
