"""What reconciliation keeps of each system's records: small tuples, so 100,000 of each fit in little memory.

Each record knows only what its system reported; a field a system's read does not carry is None
*and* absent from `known`, so a comparison never takes "not read" for "empty" (which would write the
same value every night).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

from config.email_address import canonical_email
from registrations.owned_fields import (
    HUBSPOT_FACT_PROPERTIES,
    HUBSPOT_PROFILE_PROPERTIES,
    MemberFacts,
    Profile,
    hubspot_facts,
    hubspot_profile,
)

PROFILE_FIELDS = tuple(item.name for item in fields(Profile))
FACT_FIELDS = tuple(item.name for item in fields(MemberFacts))
# SmaregiMember attribute -> Profile field (the attributes a member read may carry).
SMAREGI_ATTRIBUTES = {
    "mail_address": "email",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone_number": "phone",
    "post_code": "postal_code",
    "address": "address",
}
# Every property a HubSpot page is asked for.
HUBSPOT_PROPERTIES = (*HUBSPOT_PROFILE_PROPERTIES.values(), *HUBSPOT_FACT_PROPERTIES.values())


class Record(NamedTuple):
    """One object of one system: its id, its profile and member facts, and which of them it reported."""

    system: str
    id: str
    email: str  # canonical
    profile: Profile
    facts: MemberFacts
    known: frozenset[str]  # the Profile / MemberFacts field names this system's read carries

    def as_row(self) -> list[Any]:
        """A JSON-able list (the spill's column)."""
        return [
            self.system,
            self.id,
            self.email,
            [getattr(self.profile, name) for name in PROFILE_FIELDS],
            [getattr(self.facts, name) for name in FACT_FIELDS],
            sorted(self.known),
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> Record:
        """The record `as_row` wrote."""
        system, record_id, email, profile, facts, known = row
        return cls(
            system,
            record_id,
            email,
            Profile(**dict(zip(PROFILE_FIELDS, profile, strict=True))),
            MemberFacts(**dict(zip(FACT_FIELDS, facts, strict=True))),
            frozenset(known),
        )


class IdentityRecord(NamedTuple):
    """What `identities` links for one address (ids only)."""

    email: str
    shopify_customer_id: str | None
    smaregi_customer_id: str | None
    smaregi_customer_code: str | None
    hubspot_contact_id: str | None


def email_key(email: str | None) -> str | None:
    """The join key: the canonical address, or None for a record without one."""
    if not email or not email.strip():
        return None
    return canonical_email(email) or None


def _integer(value: Any) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def shopify_record(customer: Any) -> Record | None:
    """A ShopifyCustomer (or anything with its attributes) as a record; None without an address.

    The member facts are known when the read carries them: `member_facts` (the `$app:membersync`
    metafields) when present, else the legacy `member_number` metafield alone.
    """
    email = email_key(getattr(customer, "email", None))
    if email is None:
        return None
    known = {"email", "first_name", "last_name", "phone"}
    values = {
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
    }
    for name in ("postal_code", "address"):
        if hasattr(customer, name):
            known.add(name)
            values[name] = getattr(customer, name)
    if hasattr(customer, "points"):
        # The read fetched the app-owned member facts (the bulk export does).
        facts = MemberFacts(customer.member_number, customer.points, getattr(customer, "rank", None))
        known_facts = set(FACT_FIELDS)
    else:
        facts, known_facts = MemberFacts(member_number=customer.member_number), {"member_number"}
    return Record("shopify", customer.id, email, Profile(**values), facts, frozenset(known | known_facts))


def smaregi_record(member: Any) -> Record | None:
    """A SmaregiMember as a record; None without an address (a card without one cannot be joined)."""
    email = email_key(getattr(member, "mail_address", None))
    if email is None:
        return None
    values: dict[str, Any] = {}
    for attribute, name in SMAREGI_ATTRIBUTES.items():
        if hasattr(member, attribute):
            values[name] = getattr(member, attribute)
    known = set(values) | {"member_number", "points"}
    facts = MemberFacts(
        member_number=member.customer_code or None,
        points=_integer(getattr(member, "points", None) if hasattr(member, "points") else member.point),
        rank=getattr(member, "rank", None),
    )
    if hasattr(member, "rank"):
        known.add("rank")
    return Record("smaregi", member.customer_id, email, Profile(**values), facts, frozenset(known))


def hubspot_record(contact: Any, *, with_facts: bool) -> Record | None:
    """A HubSpotContact as a record; its member facts are known when the portal has our properties."""
    email = email_key(contact.email)
    if email is None:
        return None
    properties = dict(contact.properties)
    known = set(PROFILE_FIELDS) | (set(FACT_FIELDS) if with_facts else set())
    facts = hubspot_facts(properties) if with_facts else MemberFacts()
    return Record("hubspot", contact.id, email, hubspot_profile(properties), facts, frozenset(known))
