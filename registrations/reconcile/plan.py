"""What one person needs, by the ownership map (registrations/owned_fields.py): pure, no I/O.

Shopify owns the profile, Smaregi the member facts, HubSpot mirrors both, `identities` says which
objects are one person. Per canonical address:

    Shopify customer, no Smaregi member     create the member (deterministic code), then mirror its facts
    Shopify customer and our member         push profile drift to Smaregi, fact drift to Shopify
    Shopify customer and a member not ours  a walk-in: only the address's owner may link it (report)
    no HubSpot contact / a drifted one      upsert the contact (profile from Shopify, facts from Smaregi)
    Smaregi member, no Shopify customer     report (RECONCILE_CREATE_SHOPIFY_CUSTOMERS: create it)
    two members / customers / contacts      ambiguous: report, never guess which is the person's
    identities' customer missing            deleted or merged away: report
    identities' customer replaced           merged into the survivor that now holds the address: relink

Only fields a system's read carries are compared (`Record.known`), an owner's empty value is never
pushed, and marketing consent is never written: only its owner's confirmation raises it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from registrations.owned_fields import (
    MemberFacts,
    Profile,
    fact_drift,
    hubspot_update,
    profile_drift,
    smaregi_update,
)
from registrations.reconcile.records import IdentityRecord, Record
from registrations.reconcile.spill import Person


class Outcome(StrEnum):
    """What reconciliation found for a person (a person may have several); the report counts these."""

    IN_SYNC = "in_sync"
    SMAREGI_MISSING = "smaregi_missing"  # created
    SMAREGI_DRIFT = "smaregi_drift"  # Shopify's profile pushed to the member
    SHOPIFY_FACTS_DRIFT = "shopify_facts_drift"  # Smaregi's facts pushed to the customer
    HUBSPOT_MISSING = "hubspot_missing"  # contact created
    HUBSPOT_DRIFT = "hubspot_drift"  # contact updated
    WALK_IN = "walk_in"  # a card made at the till holds the address of a customer: its owner decides
    WALK_IN_ASKED = "walk_in_asked"  # ... and the address's registration's owner was mailed the question
    WALK_IN_ALREADY_ASKED = "walk_in_already_asked"  # ... a question about it exists: never a second mail
    SMAREGI_ONLY = "smaregi_only"  # a member without a Shopify customer
    SHOPIFY_CREATED = "shopify_created"  # ... created because RECONCILE_CREATE_SHOPIFY_CUSTOMERS is on
    HUBSPOT_ONLY = "hubspot_only"  # a contact of nobody we know (left alone)
    AMBIGUOUS_SMAREGI = "ambiguous_smaregi"  # two or more members with one address
    AMBIGUOUS_SHOPIFY = "ambiguous_shopify"  # two or more customers with one address
    AMBIGUOUS_HUBSPOT = "ambiguous_hubspot"  # two or more contacts with one address
    SHOPIFY_GONE = "shopify_gone"  # identities knows a customer the export no longer has
    SHOPIFY_MERGED = "shopify_merged"  # ... and another customer holds the address now: followed


# Outcomes that are reported for a person to look at (the others are repaired).
REPORTED = frozenset(
    {
        Outcome.WALK_IN,
        Outcome.SMAREGI_ONLY,
        Outcome.HUBSPOT_ONLY,
        Outcome.AMBIGUOUS_SMAREGI,
        Outcome.AMBIGUOUS_SHOPIFY,
        Outcome.AMBIGUOUS_HUBSPOT,
        Outcome.SHOPIFY_GONE,
    }
)


@dataclass(frozen=True)
class Policy:
    """What a plan may do beyond the ownership map."""

    member_code: Callable[[str], str]  # the deterministic customerCode for an address
    systems: frozenset[str] = frozenset({"shopify", "smaregi", "hubspot"})  # the systems written to
    hubspot_facts: bool = True  # the portal has our member-fact properties
    create_shopify_customers: bool = False


@dataclass(frozen=True)
class CreateMember:
    """Create the Smaregi member for a Shopify customer (customerCode `code`; found again if it exists)."""

    email: str
    profile: Profile
    code: str
    system: str = "smaregi"


@dataclass(frozen=True)
class UpdateMember:
    """Push Shopify's profile to a Smaregi member (update_member keywords)."""

    customer_id: str
    changes: dict[str, str]
    system: str = "smaregi"


@dataclass(frozen=True)
class SetFacts:
    """Push Smaregi's member facts to a Shopify customer."""

    customer_id: str
    facts: MemberFacts  # the owner's values; only `changed` drifted
    changed: tuple[str, ...]
    system: str = "shopify"


@dataclass(frozen=True)
class UpsertContact:
    """Create or update the HubSpot contact of an address (by e-mail)."""

    email: str
    properties: dict[str, str]
    system: str = "hubspot"


@dataclass(frozen=True)
class CreateCustomer:
    """Create a Shopify customer for a Smaregi-only member (only with the policy switch on)."""

    email: str
    profile: Profile
    system: str = "shopify"


Write = CreateMember | UpdateMember | SetFacts | UpsertContact | CreateCustomer


@dataclass(frozen=True)
class Link:
    """The identities row as it should be after this person's writes (None: leave that column)."""

    shopify_customer_id: str | None = None
    smaregi_customer_id: str | None = None
    smaregi_customer_code: str | None = None
    hubspot_contact_id: str | None = None


@dataclass
class PersonPlan:
    """A person's outcomes and the writes they need, in order; `link` updates `identities`."""

    email: str
    outcomes: list[Outcome] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    link: Link | None = None
    # The vendor ids the report may show as examples per outcome (never names or addresses).
    ids: dict[str, str] = field(default_factory=dict)
    # A member is created first; the facts it gets are mirrored once it exists (plan again).
    then_mirror_created: bool = False


_NAMES = {kind: frozenset(item.name for item in fields(kind)) for kind in (Profile, MemberFacts)}


def only_known(value: Any, known: frozenset[str]) -> Any:
    """`value` (a Profile or MemberFacts) with every field outside `known` emptied."""
    unknown = _NAMES[type(value)] - known
    if not unknown:
        return value  # the common case: nothing to empty (this runs for every person)
    return replace(value, **dict.fromkeys(unknown))


def plan_person(person: Person, policy: Policy) -> PersonPlan:
    """The ownership map applied to one person."""
    plan = PersonPlan(person.email)
    identity = person.identity
    if len(person.shopify) > 1:
        plan.outcomes.append(Outcome.AMBIGUOUS_SHOPIFY)
        plan.ids["shopify"] = ",".join(record.id for record in person.shopify)
        return plan
    if not person.shopify:
        _without_customer(person, identity, policy, plan)
        return plan
    customer = person.shopify[0]
    plan.ids["shopify"] = customer.id
    link: dict[str, str] = {}
    if identity is not None and identity.shopify_customer_id and identity.shopify_customer_id != customer.id:
        plan.outcomes.append(Outcome.SHOPIFY_MERGED)
        link["shopify_customer_id"] = customer.id
    elif identity is not None and identity.shopify_customer_id is None:
        link["shopify_customer_id"] = customer.id
    member = _member(person, customer, identity, policy, plan, link)
    _contact(person, customer, member, policy, plan, link)
    if not plan.outcomes:
        plan.outcomes.append(Outcome.IN_SYNC)
    if link and (identity is not None or plan.writes):
        plan.link = Link(**link)
    return plan


def _member(
    person: Person,
    customer: Record,
    identity: IdentityRecord | None,
    policy: Policy,
    plan: PersonPlan,
    link: dict[str, str],
) -> Record | None:
    """Smaregi's side: create, push profile drift, mirror facts; the person's member when it is theirs."""
    if "smaregi" not in policy.systems and not person.smaregi:
        return None  # not read this run
    if len(person.smaregi) > 1:
        plan.outcomes.append(Outcome.AMBIGUOUS_SMAREGI)
        plan.ids["smaregi"] = ",".join(record.id for record in person.smaregi)
        return None
    code = policy.member_code(person.email)
    if not person.smaregi:
        plan.outcomes.append(Outcome.SMAREGI_MISSING)
        plan.writes.append(CreateMember(person.email, customer.profile, code))
        plan.then_mirror_created = True
        return None
    member = person.smaregi[0]
    plan.ids["smaregi"] = member.id
    ours = (
        (identity is not None and identity.smaregi_customer_id == member.id)
        or (member.facts.member_number is not None and member.facts.member_number == code)
        or (
            customer.facts.member_number is not None
            and customer.facts.member_number == member.facts.member_number
        )
    )
    if not ours:
        # A card made at the till with this address: anyone can type an address at a till, so it is
        # never linked on the address alone.
        plan.outcomes.append(Outcome.WALK_IN)
        return None
    if identity is None or identity.smaregi_customer_id != member.id:
        link["smaregi_customer_id"] = member.id
        if member.facts.member_number:
            link["smaregi_customer_code"] = member.facts.member_number
    owner = only_known(customer.profile, customer.known & member.known)
    changes = smaregi_update(profile_drift(owner, member.profile))
    if changes and "smaregi" in policy.systems:
        plan.outcomes.append(Outcome.SMAREGI_DRIFT)
        plan.writes.append(UpdateMember(member.id, changes))
    facts = only_known(member.facts, member.known & customer.known)
    drift = fact_drift(facts, customer.facts)
    if drift and "shopify" in policy.systems:
        plan.outcomes.append(Outcome.SHOPIFY_FACTS_DRIFT)
        plan.writes.append(SetFacts(customer.id, member.facts, tuple(sorted(drift))))
    return member


def _contact(
    person: Person,
    customer: Record,
    member: Record | None,
    policy: Policy,
    plan: PersonPlan,
    link: dict[str, str],
) -> None:
    """HubSpot's side: the contact mirrors Shopify's profile and (when the portal has them) the facts."""
    if "hubspot" not in policy.systems or plan.then_mirror_created:
        # A member about to be created: the contact is mirrored once it exists, with its facts (one
        # upsert, not two), when the person is planned again.
        return
    if len(person.hubspot) > 1:
        plan.outcomes.append(Outcome.AMBIGUOUS_HUBSPOT)
        plan.ids["hubspot"] = ",".join(record.id for record in person.hubspot)
        return
    profile = only_known(customer.profile, customer.known)
    facts = member.facts if member is not None and policy.hubspot_facts else MemberFacts()
    if not person.hubspot:
        plan.outcomes.append(Outcome.HUBSPOT_MISSING)
        everything = hubspot_update(profile_drift(profile, Profile()), fact_drift(facts, MemberFacts()))
        plan.writes.append(UpsertContact(person.email, everything))
        return
    contact = person.hubspot[0]
    plan.ids["hubspot"] = contact.id
    if person.identity is None or person.identity.hubspot_contact_id != contact.id:
        link["hubspot_contact_id"] = contact.id
    properties = hubspot_update(
        profile_drift(only_known(profile, contact.known), contact.profile),
        fact_drift(only_known(facts, contact.known), contact.facts),
    )
    if properties:
        plan.outcomes.append(Outcome.HUBSPOT_DRIFT)
        plan.writes.append(UpsertContact(person.email, properties))


def _without_customer(
    person: Person, identity: IdentityRecord | None, policy: Policy, plan: PersonPlan
) -> None:
    """No Shopify customer holds the address: nothing is the owner's to push."""
    if identity is not None and identity.shopify_customer_id:
        plan.outcomes.append(Outcome.SHOPIFY_GONE)
        plan.ids["shopify"] = identity.shopify_customer_id
        return
    if len(person.smaregi) > 1:
        plan.outcomes.append(Outcome.AMBIGUOUS_SMAREGI)
        plan.ids["smaregi"] = ",".join(record.id for record in person.smaregi)
        return
    if person.smaregi:
        member = person.smaregi[0]
        plan.ids["smaregi"] = member.id
        if policy.create_shopify_customers and "shopify" in policy.systems:
            plan.outcomes.append(Outcome.SHOPIFY_CREATED)
            plan.writes.append(CreateCustomer(person.email, member.profile))
        else:
            plan.outcomes.append(Outcome.SMAREGI_ONLY)
        return
    if person.hubspot:
        plan.outcomes.append(Outcome.HUBSPOT_ONLY)
        plan.ids["hubspot"] = person.hubspot[0].id
