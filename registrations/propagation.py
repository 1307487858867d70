"""What a profile change in Shopify (the owner) does to the mirrors: Smaregi's member, HubSpot's contact.

The change's task hands us the customer's global id only. We re-read the customer through the
Shopify API (the webhook's body is never trusted or kept), find the person's mirrors, compare them
with the ownership map (`registrations.owned_fields.profile_drift`) and write only what drifted. A
write of ours never changes Shopify, and when a mirror already agrees nothing is written: the
customers/update that follows any Shopify edit of ours (a member number metafield, say) therefore
ends here with no write, and there is no loop.

Finding the mirrors:
- by the address the person is known by: the identity that holds this Shopify customer id (so an
  e-mail changed in Shopify still finds the mirrors under the old address), else the customer's
  current address;
- Smaregi: the member directory (`registrations.directory`), exactly one member, re-read by id;
- HubSpot: a search by e-mail, exactly one contact.
More than one member or contact for the address is ambiguity: nothing is written anywhere and the
change is recorded `ambiguous` for ops. No member or no contact is not created here: a missing
mirror is the registration's or the nightly reconciliation's to create.

A deleted customer is recorded and reported only (mirrors are never deleted); a merge re-reads the
surviving customer the delivery names. Marketing consent is not moved by a profile change: it is
raised only by its owner's confirmation (`registrations.confirmations`); a withdrawal in Shopify
(customers_email_marketing_consent/update saying UNSUBSCRIBED) withdraws it as our unsubscribe link
would, and nothing else about consent is followed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select

from config.email_address import canonical_email
from connectors.hubspot.client import HubSpotContact
from connectors.shopify.mapping import ShopifyCustomer
from connectors.smaregi.members import SmaregiMember
from registrations.confirmations import withdraw
from registrations.database import Database
from registrations.directory import DirectoryEntry, MemberDirectory
from registrations.models import Confirmation, Identity
from registrations.owned_fields import (
    HUBSPOT_PROFILE_PROPERTIES,
    Profile,
    hubspot_profile,
    hubspot_update,
    profile_drift,
    smaregi_update,
)
from registrations.states import ChangeState, ConfirmationKind, ConfirmationState

# Shopify's customer topics (https://shopify.dev/docs/api/webhooks, topics customers/*).
CUSTOMERS_CREATE = "customers/create"
CUSTOMERS_UPDATE = "customers/update"
CUSTOMERS_DELETE = "customers/delete"
CUSTOMERS_MERGE = "customers/merge"
CONSENT_UPDATE = "customers_email_marketing_consent/update"
PROFILE_TOPICS = frozenset({CUSTOMERS_CREATE, CUSTOMERS_UPDATE, CUSTOMERS_MERGE})
HANDLED_TOPICS = PROFILE_TOPICS | {CUSTOMERS_DELETE, CONSENT_UPDATE}

# Shopify's CustomerEmailAddressMarketingState for a customer who opted out.
UNSUBSCRIBED = "UNSUBSCRIBED"

HUBSPOT_READ_PROPERTIES = tuple(dict.fromkeys(HUBSPOT_PROFILE_PROPERTIES.values()))


class CustomerSource(Protocol):
    """The owner: one Shopify customer by global id (ShopifyClient.get_customer)."""

    def get_customer(self, customer_id: str) -> ShopifyCustomer | None: ...


class MemberMirror(Protocol):
    """Smaregi, as far as a profile change needs it (SmaregiClient)."""

    def get_member(self, customer_id: str) -> SmaregiMember | None: ...

    def update_member(self, customer_id: str, **fields: str | bool | None) -> SmaregiMember: ...


class ContactMirror(Protocol):
    """HubSpot, as far as a profile change needs it (HubSpotClient)."""

    def search_contacts_by_email(
        self, email: str, *, properties: Sequence[str] = ...
    ) -> list[HubSpotContact]: ...

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact: ...


@dataclass(frozen=True)
class Outcome:
    """How a change ended and what it did, in ids and field names (no values, no addresses)."""

    state: ChangeState
    text: str


def _shopify_time(value: str | None) -> datetime | None:
    """A DateTime as Shopify writes it ("2026-12-06T01:00:00Z"), None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def shopify_profile(customer: ShopifyCustomer) -> Profile:
    """The profile the owner holds."""
    return Profile(
        email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        phone=customer.phone,
        postal_code=customer.postal_code,
        address=customer.address,
    )


def smaregi_profile(member: SmaregiMember) -> Profile:
    """The profile a Smaregi member holds."""
    return Profile(
        email=member.mail_address,
        first_name=member.first_name,
        last_name=member.last_name,
        phone=member.phone_number,
        postal_code=member.post_code,
        address=member.address,
    )


class ProfilePropagation:
    """Push one Shopify customer's profile to its mirrors (only the drift)."""

    def __init__(
        self,
        database: Database,
        shopify: CustomerSource,
        smaregi: MemberMirror | None,
        hubspot: ContactMirror | None,
    ) -> None:
        # A mirror whose sync is switched off (SYNC_SMAREGI_ENABLED, SYNC_HUBSPOT_ENABLED) is None.
        self.database = database
        self.directory = MemberDirectory(database)
        self.shopify = shopify
        self.smaregi = smaregi
        self.hubspot = hubspot

    def process(self, topic: str, customer_id: str) -> Outcome:
        """What `topic` about `customer_id` does; raises a ConnectorError a retry may cure."""
        if topic == CUSTOMERS_DELETE:
            return Outcome(
                ChangeState.REPORTED, "customer deleted in Shopify: mirrors kept, for ops to decide"
            )
        customer = self.shopify.get_customer(customer_id)
        if topic == CONSENT_UPDATE:
            return self._consent(customer)
        if customer is None:
            return Outcome(ChangeState.REPORTED, "customer no longer in Shopify: nothing written")
        if not customer.email:
            return Outcome(ChangeState.APPLIED, "customer has no e-mail: no mirror to find")
        # After an e-mail change the mirrors still hold the old address (our identity's); once one of
        # them is rewritten, the new one finds it.
        addresses = list(dict.fromkeys(a for a in (self._known_address(customer_id), customer.email) if a))
        return self._push(shopify_profile(customer), addresses)

    def _consent(self, customer: ShopifyCustomer | None) -> Outcome:
        """A consent change in Shopify: only a withdrawal is followed, never a subscription.

        When Shopify says UNSUBSCRIBED (the customer unsubscribed through a Shopify mail, or the
        merchant did), the consents this person confirmed with us *before* that moment are withdrawn
        as our unsubscribe link would (`confirmations.withdraw`), in one transaction that queues the
        consent step: it tells Smaregi (flag 0) and HubSpot (unsubscribed). Any other state changes
        nothing: consent is raised only by its owner's confirmation. Our own consent writes come
        back here and find nothing left to withdraw.
        """
        if customer is None or not customer.email:
            return Outcome(ChangeState.REPORTED, "consent: no customer or no e-mail, nothing to follow")
        if customer.marketing_state != UNSUBSCRIBED:
            return Outcome(
                ChangeState.APPLIED, f"consent {customer.marketing_state}: not followed (never raised)"
            )
        moment = _shopify_time(customer.marketing_updated_at)
        withdrawn: list[str] = []
        with self.database.session() as session:
            confirmed = session.scalars(
                select(Confirmation).where(
                    Confirmation.email == canonical_email(customer.email),
                    Confirmation.kind == ConfirmationKind.MARKETING,
                    Confirmation.state == ConfirmationState.CONFIRMED,
                )
            ).all()
            # A confirmation given after Shopify's unsubscription is newer than it: it stands.
            older = [c for c in confirmed if moment is None or c.decided_at is None or c.decided_at <= moment]
            if older:
                withdraw(session, older[0].id)  # every confirmed consent of the address, like the link
                withdrawn = [c.registration_id for c in older]
        if not withdrawn:
            return Outcome(ChangeState.APPLIED, "consent UNSUBSCRIBED: no consent of ours to withdraw")
        return Outcome(
            ChangeState.APPLIED,
            "consent UNSUBSCRIBED: withdrawn for registration(s) " + ", ".join(withdrawn),
        )

    def _known_address(self, customer_id: str) -> str | None:
        """The address our identity of this customer holds (the old one after an e-mail change)."""
        with self.database.session() as session:
            return session.scalar(
                select(Identity.email).where(Identity.shopify_customer_id == customer_id).limit(1)
            )

    def _members(self, addresses: Sequence[str]) -> list[DirectoryEntry]:
        for address in addresses if self.smaregi is not None else ():
            if found := self.directory.members_with_email(address):
                return found
        return []

    def _contacts(self, addresses: Sequence[str]) -> list[HubSpotContact]:
        for address in addresses if self.hubspot is not None else ():
            assert self.hubspot is not None
            found = self.hubspot.search_contacts_by_email(address, properties=HUBSPOT_READ_PROPERTIES)
            wanted = canonical_email(address)
            if found := [c for c in found if c.email and canonical_email(c.email) == wanted]:
                return found
        return []

    def _push(self, profile: Profile, addresses: Sequence[str]) -> Outcome:
        members = self._members(addresses)
        contacts = self._contacts(addresses)
        if len(members) > 1 or len(contacts) > 1:
            ids = [f"smaregi {m.customer_id}" for m in members] + [f"hubspot {c.id}" for c in contacts]
            return Outcome(ChangeState.AMBIGUOUS, "more than one mirror holds the address: " + ", ".join(ids))
        done: list[str] = []
        if members and self.smaregi is not None:
            done.append(self._push_smaregi(self.smaregi, profile, members[0].customer_id))
        else:
            done.append("smaregi: no member")
        if contacts and self.hubspot is not None:
            done.append(self._push_hubspot(self.hubspot, profile, contacts[0]))
        else:
            done.append("hubspot: no contact")
        return Outcome(ChangeState.APPLIED, "; ".join(done))

    def _push_smaregi(self, smaregi: MemberMirror, profile: Profile, member_id: str) -> str:
        member = smaregi.get_member(member_id)  # the directory is an index; Smaregi is the truth
        if member is None:
            self.directory.forget([member_id])
            return f"smaregi {member_id}: gone"
        drift = profile_drift(profile, smaregi_profile(member))
        if not drift:
            return f"smaregi {member_id}: no drift"
        updated = smaregi.update_member(member_id, **smaregi_update(drift))
        self.directory.record([updated])
        return f"smaregi {member_id}: wrote {', '.join(sorted(drift))}"

    def _push_hubspot(self, hubspot: ContactMirror, profile: Profile, contact: HubSpotContact) -> str:
        drift = profile_drift(profile, hubspot_profile(contact.properties))
        # The contact is upserted by its current address, which this write cannot change: an e-mail
        # changed in Shopify is left for the contact (docs: change propagation, what is left).
        kept_email = drift.pop("email", None)
        if not drift:
            return f"hubspot {contact.id}: no drift" + (" (e-mail left)" if kept_email else "")
        hubspot.upsert_contact(email=str(contact.email), properties=hubspot_update(drift, {}))
        return f"hubspot {contact.id}: wrote {', '.join(sorted(drift))}" + (
            " (e-mail left)" if kept_email else ""
        )
