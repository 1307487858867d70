"""What a change of a member's facts in Smaregi (the owner) does to the mirrors: Shopify's customer
metafields and HubSpot's contact properties.

Smaregi owns the member number, rank and points (`registrations.owned_fields`); they change at the
register (a sale, a clerk, expiry) without any call of ours. A webhook names the member by id only;
the mirror task re-reads the member through the API, finds the person's mirrors by the member's
canonical e-mail, compares what each holds with the ownership map (`owned_fields.fact_drift`) and
writes only what drifted:

    Shopify   the one customer with the address (customerByIdentifier), app-owned metafields
              $app:membersync member_number / points / rank (`ShopifyClient.set_member_facts`)
    HubSpot   the one contact with the address (search), properties membersync_member_number /
              membersync_points / membersync_rank (`upsert_contact` with `hubspot_update({}, drift)`)

A second delivery of the same event, or the customers/update Shopify sends after our metafield
write, finds nothing drifted and writes nothing: no loop. Nothing is created here (a missing mirror is
the registration's or the nightly reconciliation's to create) and nothing is guessed: more than one
customer or contact for the address is recorded as `several` for that mirror, which is left as it is.
Results carry ids and counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Protocol

from config.email_address import canonical_email
from connectors.hubspot.client import HubSpotContact
from connectors.shopify.mapping import MemberFactValues, ShopifyCustomer
from connectors.smaregi.members import SmaregiMember
from registrations.owned_fields import (
    HUBSPOT_FACT_PROPERTIES,
    MemberFacts,
    fact_drift,
    hubspot_facts,
    hubspot_update,
)

log = logging.getLogger(__name__)

# What the mirror reads of a HubSpot contact: its address and the member-fact properties.
HUBSPOT_READ_PROPERTIES = ("email", *HUBSPOT_FACT_PROPERTIES.values())


class MirrorOutcome(StrEnum):
    """What one mirror task did to one mirror (Shopify or HubSpot)."""

    WRITTEN = "written"  # the drifted facts were written
    UNCHANGED = "unchanged"  # the mirror already held the owner's facts: nothing sent
    MISSING = "missing"  # no customer / contact with the address: left to registration or reconciliation
    SEVERAL = "several"  # more than one holds the address: nothing written, recorded for ops
    NO_MEMBER = "no member"  # Smaregi no longer has the member (deleted): nothing to mirror
    NO_EMAIL = "no e-mail"  # the member has no address to find the mirrors by


class SmaregiMembers(Protocol):
    """The owner: one member by id."""

    def get_member(self, customer_id: str) -> SmaregiMember | None: ...


class ShopifyMirror(Protocol):
    """Shopify as a mirror of the member facts."""

    def find_customers_by_email(self, email: str) -> list[ShopifyCustomer]: ...

    def set_member_facts(self, customer_id: str, facts: MemberFactValues) -> None: ...


class HubSpotMirror(Protocol):
    """HubSpot as a mirror of the member facts."""

    def search_contacts_by_email(
        self, email: str, *, properties: Sequence[str] = ...
    ) -> list[HubSpotContact]: ...

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact: ...


@dataclass(frozen=True)
class MirrorReport:
    """One member's mirror run: an outcome per mirror and the names of the facts written (no values)."""

    customer_id: str
    shopify: str
    hubspot: str
    shopify_facts: tuple[str, ...] = ()
    hubspot_facts: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        """The report as the task returns it (ids, outcomes and fact names only)."""
        return {
            **asdict(self),
            "shopify_facts": list(self.shopify_facts),
            "hubspot_facts": list(self.hubspot_facts),
        }


def owner_facts(member: SmaregiMember) -> MemberFacts:
    """The facts Smaregi holds for a member: its member number (customerCode), points and rank."""
    return MemberFacts(member_number=member.customer_code or None, points=member.points, rank=member.rank)


def shopify_facts(customer: ShopifyCustomer) -> MemberFacts:
    """The facts a Shopify customer holds in its app-owned metafields."""
    return MemberFacts(member_number=customer.member_number, points=customer.points, rank=customer.rank)


def drifted_facts(drift: Mapping[str, str]) -> MemberFacts:
    """The drifted facts only, as MemberFacts (the others None: left as they are)."""
    points = drift.get("points")
    return MemberFacts(
        member_number=drift.get("member_number"),
        points=int(points) if points is not None else None,
        rank=drift.get("rank"),
    )


class MemberMirror:
    """Pushes one Smaregi member's facts to the Shopify customer and the HubSpot contact."""

    def __init__(self, smaregi: SmaregiMembers, shopify: ShopifyMirror, hubspot: HubSpotMirror) -> None:
        self.smaregi = smaregi
        self.shopify = shopify
        self.hubspot = hubspot

    def mirror(self, customer_id: str) -> MirrorReport:
        """Re-read the member and write each mirror's drift; vendor errors propagate (the task retries)."""
        member = self.smaregi.get_member(customer_id)
        if member is None:
            return MirrorReport(customer_id, MirrorOutcome.NO_MEMBER, MirrorOutcome.NO_MEMBER)
        email = canonical_email(member.mail_address or "")
        if not email:
            return MirrorReport(customer_id, MirrorOutcome.NO_EMAIL, MirrorOutcome.NO_EMAIL)
        facts = owner_facts(member)
        shopify, shopify_written = self._shopify(email, facts)
        hubspot, hubspot_written = self._hubspot(email, facts)
        report = MirrorReport(customer_id, shopify, hubspot, shopify_written, hubspot_written)
        if MirrorOutcome.SEVERAL in (shopify, hubspot):
            log.warning(
                "smaregi member %s: several mirrors hold its address (shopify %s, hubspot %s); not written",
                customer_id,
                shopify,
                hubspot,
            )
        return report

    def _shopify(self, email: str, facts: MemberFacts) -> tuple[MirrorOutcome, tuple[str, ...]]:
        customers = self.shopify.find_customers_by_email(email)
        if len(customers) != 1:
            return (MirrorOutcome.SEVERAL if customers else MirrorOutcome.MISSING), ()
        [customer] = customers
        drift = fact_drift(facts, shopify_facts(customer))
        if not drift:
            return MirrorOutcome.UNCHANGED, ()
        self.shopify.set_member_facts(customer.id, drifted_facts(drift))
        return MirrorOutcome.WRITTEN, tuple(drift)

    def _hubspot(self, email: str, facts: MemberFacts) -> tuple[MirrorOutcome, tuple[str, ...]]:
        contacts = self.hubspot.search_contacts_by_email(email, properties=HUBSPOT_READ_PROPERTIES)
        if len(contacts) != 1:
            return (MirrorOutcome.SEVERAL if contacts else MirrorOutcome.MISSING), ()
        [contact] = contacts
        drift = fact_drift(facts, hubspot_facts(contact.properties))
        if not drift:
            return MirrorOutcome.UNCHANGED, ()
        # Upsert by the contact's own address: the contact that was found, never a new one.
        self.hubspot.upsert_contact(email=contact.email or email, properties=hubspot_update({}, drift))
        return MirrorOutcome.WRITTEN, tuple(drift)
