"""The member mirror (registrations/mirror.py) over the in-process fakes: Smaregi's member facts reach
the Shopify customer and the HubSpot contact as drift only, a second run writes nothing, and an
address held twice, a missing mirror or a deleted member writes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.fakes import FakeHubSpot, FakeShopify, FakeSmaregi
from registrations.mirror import MemberMirror, MirrorOutcome

EMAIL = "hanako@example.jp"


@pytest.fixture
def systems() -> tuple[FakeSmaregi, FakeShopify, FakeHubSpot]:
    smaregi, shopify, hubspot = FakeSmaregi(), FakeShopify(), FakeHubSpot()
    shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    return smaregi, shopify, hubspot


def member(smaregi: FakeSmaregi, *, points: int, rank: str | None = None, email: str | None = EMAIL) -> str:
    created = smaregi.add_member("0000000000000042", f" {email.upper()} " if email else None)
    smaregi.members[created.customer_id] = dataclasses.replace(
        created, points=points, point=str(points), rank=rank
    )
    return created.customer_id


def test_the_owners_facts_reach_both_mirrors_and_a_second_run_writes_nothing(
    systems: tuple[FakeSmaregi, FakeShopify, FakeHubSpot],
) -> None:
    smaregi, shopify, hubspot = systems
    customer_id = member(smaregi, points=120, rank="Gold")
    mirror = MemberMirror(smaregi, shopify, hubspot)

    first = mirror.mirror(customer_id)
    second = mirror.mirror(customer_id)

    assert (first.shopify, first.hubspot) == (MirrorOutcome.WRITTEN, MirrorOutcome.WRITTEN)
    assert set(first.shopify_facts) == set(first.hubspot_facts) == {"member_number", "points", "rank"}
    [customer] = shopify.customers.values()
    assert (customer.member_number, customer.points, customer.rank) == ("0000000000000042", 120, "Gold")
    [contact] = hubspot.contacts.values()
    assert contact.properties["membersync_points"] == "120"
    assert contact.properties["membersync_member_number"] == "0000000000000042"
    assert (second.shopify, second.hubspot) == (MirrorOutcome.UNCHANGED, MirrorOutcome.UNCHANGED)
    assert shopify.count("set_member_facts") == 1 and hubspot.count("upsert_contact") == 2  # setup + first


def test_only_the_drifted_fact_is_written(systems: tuple[FakeSmaregi, FakeShopify, FakeHubSpot]) -> None:
    smaregi, shopify, hubspot = systems
    customer_id = member(smaregi, points=120)
    mirror = MemberMirror(smaregi, shopify, hubspot)
    mirror.mirror(customer_id)
    smaregi.members[customer_id] = dataclasses.replace(smaregi.members[customer_id], points=95, point="95")

    report = mirror.mirror(customer_id)

    assert report.shopify_facts == report.hubspot_facts == ("points",)
    [customer] = shopify.customers.values()
    assert customer.points == 95 and customer.member_number == "0000000000000042"


def test_an_address_held_by_two_contacts_writes_nothing_to_hubspot(
    systems: tuple[FakeSmaregi, FakeShopify, FakeHubSpot],
) -> None:
    smaregi, shopify, hubspot = systems
    [contact] = hubspot.contacts.values()
    hubspot.contacts["99"] = dataclasses.replace(contact, id="99")  # a duplicate an admin imported
    customer_id = member(smaregi, points=5)

    report = MemberMirror(smaregi, shopify, hubspot).mirror(customer_id)

    assert (report.shopify, report.hubspot) == (MirrorOutcome.WRITTEN, MirrorOutcome.SEVERAL)
    assert all("membersync_points" not in contact.properties for contact in hubspot.contacts.values())


def test_no_mirror_is_created_and_a_deleted_member_mirrors_nothing() -> None:
    smaregi, shopify, hubspot = FakeSmaregi(), FakeShopify(), FakeHubSpot()
    customer_id = member(smaregi, points=5)
    mirror = MemberMirror(smaregi, shopify, hubspot)

    missing = mirror.mirror(customer_id)
    smaregi.delete_member(customer_id)
    deleted = mirror.mirror(customer_id)

    assert (missing.shopify, missing.hubspot) == (MirrorOutcome.MISSING, MirrorOutcome.MISSING)
    assert (deleted.shopify, deleted.hubspot) == (MirrorOutcome.NO_MEMBER, MirrorOutcome.NO_MEMBER)
    assert shopify.customers == {} and hubspot.contacts == {}


def test_a_member_without_an_address_is_not_looked_for() -> None:
    smaregi, shopify, hubspot = FakeSmaregi(), FakeShopify(), FakeHubSpot()
    customer_id = member(smaregi, points=5, email=None)

    report = MemberMirror(smaregi, shopify, hubspot).mirror(customer_id)

    assert report.shopify == MirrorOutcome.NO_EMAIL
    assert shopify.count("find_customers_by_email") == 0
