"""The HubSpot step mirrors the member number the Smaregi step made, so a new contact carries it at
once (not only after the member's next change at the till or the nightly reconciliation)."""

from __future__ import annotations

from connectors.hubspot.properties import HUBSPOT_FACT_PROPERTIES
from tests.support.world import World


def test_the_contact_gets_the_member_number_of_the_member_made_before_it(world: World) -> None:
    registration_id = world.accept(email="taro@example.com")
    for system in ("shopify", "smaregi", "hubspot"):
        world.run(system, registration_id)

    [contact] = world.hubspot.search_contacts_by_email(
        "taro@example.com", extra_properties=list(HUBSPOT_FACT_PROPERTIES.values())
    )
    assert contact.properties[HUBSPOT_FACT_PROPERTIES["member_number"]] == world.member_code()


def test_without_a_member_the_contact_gets_no_member_number(world: World) -> None:
    world.switch(SYNC_SMAREGI_ENABLED="false")
    registration_id = world.accept(email="jiro@example.com")
    for system in ("shopify", "smaregi", "hubspot"):
        world.run(system, registration_id)

    [contact] = world.hubspot.search_contacts_by_email(
        "jiro@example.com", extra_properties=list(HUBSPOT_FACT_PROPERTIES.values())
    )
    assert contact.properties[HUBSPOT_FACT_PROPERTIES["member_number"]] is None
