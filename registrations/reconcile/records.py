"""What reconciliation keeps of each system's records: small tuples, so 100,000 of each fit in little memory.

Each record knows only what its system reported; a field a system's read does not carry is None
*and* absent from `known`, so a comparison never takes "not read" for "empty" (which would write the
same value every night).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, NamedTuple

from config.email_address import canonical_email
from connectors.smaregi import SmaregiMember
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
EVERYTHING = frozenset(PROFILE_FIELDS) | frozenset(FACT_FIELDS)
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


def shopify_record(customer: Any) -> Record | None:
    """A ShopifyCustomer of the bulk export as a record (profile, default address and the member facts
    of `$app:membersync`); None without an address."""
    email = email_key(customer.email)
    if email is None:
        return None
    profile = Profile(
        customer.email,
        customer.first_name,
        customer.last_name,
        customer.phone,
        customer.postal_code,
        customer.address,
    )
    facts = MemberFacts(customer.member_number, customer.points, customer.rank)
    return Record("shopify", customer.id, email, profile, facts, EVERYTHING)


def smaregi_record(member: SmaregiMember) -> Record | None:
    """A SmaregiMember as a record; None without an address (a card without one cannot be joined)."""
    email = email_key(member.mail_address)
    if email is None:
        return None
    profile = Profile(
        member.mail_address,
        member.first_name,
        member.last_name,
        member.phone_number,
        member.post_code,
        member.address,
    )
    facts = MemberFacts(member.customer_code or None, member.points, member.rank)
    return Record("smaregi", member.customer_id, email, profile, facts, EVERYTHING)


def hubspot_record(contact: Any, *, with_facts: bool) -> Record | None:
    """A HubSpotContact as a record; its member facts are known when the portal has our properties."""
    email = email_key(contact.email)
    if email is None:
        return None
    properties = dict(contact.properties)
    known = set(PROFILE_FIELDS) | (set(FACT_FIELDS) if with_facts else set())
    facts = hubspot_facts(properties) if with_facts else MemberFacts()
    return Record("hubspot", contact.id, email, hubspot_profile(properties), facts, frozenset(known))
