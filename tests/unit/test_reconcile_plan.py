"""The reconciliation plan (pure): the ownership map per person, and what is only reported."""

from __future__ import annotations

from registrations.owned_fields import MemberFacts, Profile
from registrations.reconcile.plan import (
    CreateMember,
    Outcome,
    Policy,
    SetFacts,
    UpdateMember,
    UpsertContact,
    plan_person,
)
from registrations.reconcile.records import FACT_FIELDS, PROFILE_FIELDS, IdentityRecord, Record
from registrations.reconcile.spill import Person

EMAIL = "hanako@example.com"
EVERYTHING = frozenset(PROFILE_FIELDS) | frozenset(FACT_FIELDS)
POLICY = Policy(member_code=lambda email: "0000000000000042")
PROFILE = Profile(email=EMAIL, first_name="花子", last_name="山田", phone="+819012345678")
FACTS = MemberFacts(member_number="0000000000000042", points=120, rank="gold")


def record(
    system: str, record_id: str, profile: Profile = PROFILE, facts: MemberFacts = FACTS, **kw: object
) -> Record:
    known = kw.get("known", EVERYTHING)
    return Record(system, record_id, EMAIL, profile, facts, frozenset(known))  # type: ignore[arg-type]


def person(**systems: list[Record]) -> Person:
    return Person(EMAIL, **systems)  # type: ignore[arg-type]


def in_sync() -> Person:
    return person(
        shopify=[record("shopify", "gid://shopify/Customer/1")],
        smaregi=[record("smaregi", "81")],
        hubspot=[record("hubspot", "501")],
    )


def test_a_person_in_sync_needs_nothing() -> None:
    plan = plan_person(in_sync(), POLICY)
    assert plan.outcomes == [Outcome.IN_SYNC] and plan.writes == []


def test_a_name_changed_in_shopify_goes_to_smaregi_and_hubspot() -> None:
    moved = in_sync()
    moved.shopify = [
        record("shopify", "gid://shopify/Customer/1", Profile(EMAIL, "花子", "佐藤", "+819012345678"))
    ]
    plan = plan_person(moved, POLICY)
    assert plan.outcomes == [Outcome.SMAREGI_DRIFT, Outcome.HUBSPOT_DRIFT]
    assert plan.writes == [
        UpdateMember("81", {"last_name": "佐藤"}),
        UpsertContact(EMAIL, {"lastname": "佐藤"}),
    ]


def test_a_name_changed_in_a_mirror_is_put_back_but_never_pushed_to_the_owner() -> None:
    changed = in_sync()
    changed.hubspot = [record("hubspot", "501", Profile(EMAIL, "ハナコ", "山田", "+819012345678"))]
    plan = plan_person(changed, POLICY)
    assert plan.writes == [UpsertContact(EMAIL, {"firstname": "花子"})]


def test_points_moved_at_the_register_reach_shopify_and_hubspot() -> None:
    moved = in_sync()
    moved.smaregi = [record("smaregi", "81", facts=MemberFacts("0000000000000042", 170, "gold"))]
    plan = plan_person(moved, POLICY)
    assert plan.outcomes == [Outcome.SHOPIFY_FACTS_DRIFT, Outcome.HUBSPOT_DRIFT]
    assert plan.writes[0] == SetFacts(
        "gid://shopify/Customer/1", MemberFacts("0000000000000042", 170, "gold"), ("points",)
    )
    assert plan.writes[1] == UpsertContact(EMAIL, {"membersync_points": "170"})


def test_an_empty_owner_value_and_an_unread_field_are_never_pushed() -> None:
    quiet = in_sync()
    quiet.shopify = [record("shopify", "gid://shopify/Customer/1", Profile(EMAIL, "花子", "山田", None))]
    # The Smaregi read carries no phone at all: never taken for an empty one.
    quiet.smaregi = [record("smaregi", "81", Profile(EMAIL, "花子", "山田"), known=EVERYTHING - {"phone"})]
    assert plan_person(quiet, POLICY).writes == []


def test_a_missing_member_is_created_under_the_deterministic_code_and_mirrored_afterwards() -> None:
    missing = in_sync()
    missing.smaregi = []
    plan = plan_person(missing, POLICY)
    assert plan.outcomes == [Outcome.SMAREGI_MISSING]
    assert plan.writes == [CreateMember(EMAIL, PROFILE, "0000000000000042")]
    assert plan.then_mirror_created  # the contact waits for the member's facts: one upsert, not two


def test_a_card_made_at_the_till_is_a_walk_in_and_nothing_of_it_is_written() -> None:
    walk_in = in_sync()
    till = MemberFacts("STORE-1", 10, None)
    walk_in.shopify = [record("shopify", "gid://shopify/Customer/1", facts=MemberFacts())]
    walk_in.smaregi = [record("smaregi", "91", Profile(EMAIL, "店頭", "客"), till)]
    plan = plan_person(walk_in, POLICY)
    assert Outcome.WALK_IN in plan.outcomes
    assert all(write.system == "hubspot" for write in plan.writes)
    assert all(
        "membersync_points" not in write.properties
        for write in plan.writes
        if isinstance(write, UpsertContact)
    )


def test_two_members_with_one_address_are_ambiguous_and_never_guessed() -> None:
    two = in_sync()
    two.smaregi = [record("smaregi", "81"), record("smaregi", "82")]
    plan = plan_person(two, POLICY)
    assert Outcome.AMBIGUOUS_SMAREGI in plan.outcomes
    assert not any(write.system in ("smaregi", "shopify") for write in plan.writes)
    assert plan.ids["smaregi"] == "81,82"


def test_a_member_without_a_customer_is_reported_unless_the_policy_creates_it() -> None:
    alone = person(smaregi=[record("smaregi", "81")])
    assert plan_person(alone, POLICY).outcomes == [Outcome.SMAREGI_ONLY]
    creating = Policy(member_code=POLICY.member_code, create_shopify_customers=True)
    plan = plan_person(alone, creating)
    assert plan.outcomes == [Outcome.SHOPIFY_CREATED] and plan.writes[0].system == "shopify"


def test_a_customer_gone_from_shopify_is_reported_and_a_merged_one_followed() -> None:
    gone = person(
        smaregi=[record("smaregi", "81")],
        identity=IdentityRecord(EMAIL, "gid://shopify/Customer/9", "81", None, None),
    )
    assert plan_person(gone, POLICY).outcomes == [Outcome.SHOPIFY_GONE]
    merged = in_sync()
    merged.identity = IdentityRecord(EMAIL, "gid://shopify/Customer/9", "81", None, "501")
    plan = plan_person(merged, POLICY)
    assert plan.outcomes == [Outcome.SHOPIFY_MERGED]
    assert plan.link is not None and plan.link.shopify_customer_id == "gid://shopify/Customer/1"


def test_systems_left_out_are_neither_compared_nor_written() -> None:
    moved = in_sync()
    moved.shopify = [
        record("shopify", "gid://shopify/Customer/1", Profile(EMAIL, "花子", "佐藤", "+819012345678"))
    ]
    only_hubspot = Policy(member_code=POLICY.member_code, systems=frozenset({"shopify", "hubspot"}))
    moved.smaregi = []
    plan = plan_person(moved, only_hubspot)
    assert plan.writes == [UpsertContact(EMAIL, {"lastname": "佐藤"})]


def test_consent_is_never_part_of_a_plan() -> None:
    missing = person(shopify=[record("shopify", "gid://shopify/Customer/1")])
    plan = plan_person(missing, POLICY)
    for write in plan.writes:
        assert "marketing" not in repr(write).lower() and "subscri" not in repr(write).lower()
