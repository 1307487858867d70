"""The Shopify step with the fakes and eager Celery: shared phones, adopting, the address after the create.

Shopify keeps phones unique per shop and households share phones: a taken phone must never fail a
registration. The customer is created without it, the other systems keep it, the step says so.
"""

from __future__ import annotations

from pathlib import Path

from connectors.errors import TransientError
from registrations.dead_letters import DeadLetters
from registrations.steps.shopify import ADOPTED_OTHER_PHONE_NOTE, CLAIM_NOTE, PHONE_TAKEN_NOTE
from tests.support.world import World

PHONE = "+819012345678"


def test_three_registrations_sharing_a_phone_all_sync(world: World) -> None:
    emails = ["mother@example.com", "father@example.com", "child@example.com"]
    registration_ids = [world.accept(email=email, phone=PHONE) for email in emails]

    for registration_id in registration_ids:
        world.run_all(registration_id)

    registrations = [world.registration(registration_id) for registration_id in registration_ids]
    assert [registration.status for registration in registrations] == ["synced"] * 3
    assert [registration.step("shopify").note for registration in registrations] == [
        None,
        PHONE_TAKEN_NOTE,
        PHONE_TAKEN_NOTE,
    ]
    customers = {customer.email: customer for customer in world.shopify.customers.values()}
    assert [customers[email].phone for email in emails] == [PHONE, None, None]
    assert [registration.step("shopify").external_id for registration in registrations] == [
        customers[email].id for email in emails
    ]
    smaregi_phones = [
        arguments["phone_number"] for name, arguments in world.smaregi.calls if name == "create_member"
    ]
    assert smaregi_phones == [PHONE] * 3
    assert [contact.properties.get("phone") for contact in world.hubspot.contacts.values()] == [PHONE] * 3
    # The note names no personal value.
    assert PHONE not in PHONE_TAKEN_NOTE and "@" not in PHONE_TAKEN_NOTE


def test_a_taken_phone_is_retried_without_it_in_the_same_attempt(world: World) -> None:
    world.run_all(world.accept(email="first@example.com", phone=PHONE))
    registration_id = world.accept(email="second@example.com", phone=PHONE)

    world.run("shopify", registration_id)

    step = world.registration(registration_id).step("shopify")
    assert (step.state, step.attempts, step.note) == ("succeeded", 1, PHONE_TAKEN_NOTE)
    creates = [arguments for name, arguments in world.shopify.calls if name == "create_customer"]
    assert [(arguments["email"], arguments["phone"]) for arguments in creates[1:]] == [
        ("second@example.com", PHONE),
        ("second@example.com", None),
    ]


def test_a_lost_answer_to_the_create_without_phone_adopts_and_keeps_the_note(world: World) -> None:
    world.run_all(world.accept(email="first@example.com", phone=PHONE))
    registration_id = world.accept(email="second@example.com", phone=PHONE)
    # The 1st call is refused (phone taken, nothing written, nothing lost); the 2nd, without the
    # phone, is stored but its answer is lost; the retry meets the taken email and adopts.
    world.shopify.lose_next_answer("create_customer")

    world.run("shopify", registration_id)

    step = world.registration(registration_id).step("shopify")
    assert step.state == "succeeded"
    assert [customer.email for customer in world.shopify.customers.values()] == [
        "first@example.com",
        "second@example.com",
    ]
    assert step.external_id == world.shopify.find_customers_by_email("second@example.com")[0].id
    assert step.note == ADOPTED_OTHER_PHONE_NOTE


def test_the_first_create_answer_lost_then_phone_taken_never_makes_a_second_customer(world: World) -> None:
    """The retry meets both the taken email and its own phone: Shopify and the fake report the email."""
    registration_id = world.accept(email="solo@example.com", phone=PHONE)
    world.shopify.lose_next_answer("create_customer")

    world.run("shopify", registration_id)

    step = world.registration(registration_id).step("shopify")
    assert (step.state, step.note) == ("succeeded", None)
    assert len(world.shopify.customers) == 1


def test_an_address_call_that_fails_after_the_create_is_made_good_on_adoption(world: World) -> None:
    registration_id = world.accept(postal_code="150-0001", address="東京都渋谷区神宮前1-2-3")
    world.shopify.fail_next("add_address", TransientError("down", system="shopify"))

    world.run("shopify", registration_id)

    assert world.registration(registration_id).step("shopify").state == "succeeded"
    [customer] = world.shopify.customers.values()
    assert customer.address_id is not None
    assert world.shopify.addresses[customer.address_id] == {
        "zip": "150-0001",
        "address1": "東京都渋谷区神宮前1-2-3",
    }
    assert world.shopify.count("add_address") == 2  # failed inside the create, then on adoption


def test_an_adopted_customer_keeps_its_own_phone_and_address(world: World) -> None:
    existing = world.shopify.create_customer(
        email="hanako@example.com",
        first_name="Hanako",
        last_name="Yamada",
        phone="+819099998888",
        postal_code="1",
    )
    registration_id = world.accept(phone=PHONE, postal_code="150-0001")

    world.run("shopify", registration_id)

    step = world.registration(registration_id).step("shopify")
    # Someone else's customer: a claim, nothing written, its owner asked (a profile confirmation).
    assert (step.state, step.external_id, step.note) == ("succeeded", existing.id, CLAIM_NOTE)
    assert world.registration(registration_id).ownership == "claim"
    assert world.shopify.customers[existing.id] == existing  # nothing Shopify holds was overwritten
    assert world.shopify.count("add_address") == 1  # only the one inside the original create


def test_a_shopper_without_an_address_gets_none_from_a_stranger(world: World) -> None:
    existing = world.shopify.create_customer(email="hanako@example.com", first_name="H", last_name="Y")
    registration_id = world.accept(postal_code="150-0001", address="東京都渋谷区神宮前1-2-3")

    world.run("shopify", registration_id)

    assert world.shopify.customers[existing.id].address_id is None  # no shipping address from a stranger
    assert world.shopify.count("add_address") == 0 and world.shopify.count("update_customer") == 0


def test_our_own_customer_found_after_a_lost_answer_is_finished_not_claimed(world: World) -> None:
    registration_id = world.accept(phone="+819099998888")
    world.shopify.lose_next_answer("create_customer")

    world.run("shopify", registration_id)

    registration = world.registration(registration_id)
    assert (registration.step("shopify").state, registration.ownership) == ("succeeded", "owner")
    assert registration.step("shopify").note is None


def test_a_registration_without_phone_adopting_has_no_note(world: World) -> None:
    existing = world.shopify.create_customer(
        email="hanako@example.com", first_name="Hanako", last_name="Yamada"
    )
    registration_id = world.accept()

    world.run("shopify", registration_id)

    step = world.registration(registration_id).step("shopify")
    assert (step.external_id, step.note) == (existing.id, CLAIM_NOTE)


def test_our_lost_create_recorded_by_another_registration_as_a_claim_is_still_ours(tmp_path: Path) -> None:
    """A's create went through, its answer lost; B of the same address claimed the customer (A's
    mark) and recorded it; A, replayed, reads the mark and owns the address (issue 17)."""
    world = World(tmp_path, RETRY_POLICY_SHOPIFY="attempts=1,base=0.1,cap=0.1,budget=60")
    first = world.accept()
    world.shopify.lose_next_answer("create_customer")
    world.run_all(first)  # the create committed, its answer lost: out of its one attempt
    assert world.registration(first).status == "failed"
    second = world.accept(first_name="太郎")
    world.run_all(second)
    assert world.registration(second).ownership == "claim"

    DeadLetters(world.publishing).replay(first)
    world.run_published()

    assert (world.registration(first).ownership, world.registration(second).ownership) == ("owner", "claim")
    assert world.registration(first).status == "synced"
    [customer] = world.shopify.customers.values()
    assert customer.first_name == "花子"  # nothing the second registration typed was written
    assert world.smaregi.count("create_member") == 1 and len(world.hubspot.contacts) == 1
    assert [message.message_id.split("@")[0] for message in world.welcomes()] == [f"<welcome.{first}"]
