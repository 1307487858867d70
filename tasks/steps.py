"""The four pipeline steps, registered under their CONTRACT.md task names.

Each step's idempotency follows DESIGN.md: the identity row is read first (a replay, redelivery or a
second registration of the same person reuses what is known); Shopify adopts the customer that
already holds the email; Smaregi links an existing member (a walk-in keeps their number) and
creates new ones with a deterministic customerCode, so a lost response is found again; HubSpot
upserts by email; the welcome mail carries a deterministic Message-ID.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from connectors.errors import AmbiguousMatch, PermanentError, TransientError
from connectors.mailer import WelcomeMessage, welcome_message_id
from connectors.shopify import EmailTaken, ShopifyClient
from connectors.smaregi import MemberCodeTaken, SmaregiClient, SmaregiMember, member_code
from tasks import profiles
from tasks.base import StepTask
from tasks.identities import find_identity, identity_for
from tasks.models import Registration, SyncStep

# Different people whose emails hash to the same member code are astronomically rare; a few salts
# are plenty, and running out means something else is wrong.
MEMBER_CODE_SALTS = 3


class ShopifyCustomerStep(StepTask):
    """Create the Shopify customer, or adopt the one that already has this email."""

    abstract = True
    system = "shopify"
    locks_email = True

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        identity = identity_for(session, registration.email)
        if identity.shopify_customer_id is None:
            identity.shopify_customer_id = self._create_or_adopt(
                self.runtime.connectors.shopify, registration
            )
        step.external_id = identity.shopify_customer_id

    @staticmethod
    def _create_or_adopt(shopify: ShopifyClient, registration: Registration) -> str:
        try:
            return shopify.create_customer(**profiles.shopify_customer(registration)).id
        except EmailTaken:
            # An earlier attempt whose answer was lost, or a customer who already shops online:
            # Shopify owns the profile, so we adopt it as it is.
            found = shopify.find_customers_by_email(registration.email)
            if len(found) > 1:
                raise AmbiguousMatch(f"{len(found)} Shopify customers match", system="shopify") from None
            if not found:
                # Shopify's search index trails its writes by a moment.
                raise TransientError(
                    "email taken but the customer is not searchable yet", system="shopify"
                ) from None
            return found[0].id


class SmaregiMemberStep(StepTask):
    """Link or create the Smaregi POS member and mirror the member number to Shopify."""

    abstract = True
    system = "smaregi"
    locks_email = True

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        identity = identity_for(session, registration.email)
        connectors = self.runtime.connectors
        if identity.smaregi_customer_id is None:
            member = self._link_or_create(connectors.smaregi, registration)
            identity.smaregi_customer_id = member.customer_id
            identity.smaregi_customer_code = member.customer_code
            if identity.shopify_customer_id is not None:
                # Smaregi owns the number; Shopify shows it (metafield membersync.member_number).
                connectors.shopify.set_member_number(identity.shopify_customer_id, member.customer_code)
        step.external_id = identity.smaregi_customer_id

    @staticmethod
    def _link_or_create(smaregi: SmaregiClient, registration: Registration) -> SmaregiMember:
        members = smaregi.find_members_by_email(registration.email)
        if len(members) > 1:
            # Never guess which card is this person's: a person decides.
            raise AmbiguousMatch(f"{len(members)} Smaregi members share this email", system="smaregi")
        if members:
            return members[0]  # a walk-in member: linked, keeping their number and points
        fields = profiles.smaregi_member(registration)
        for salt in range(MEMBER_CODE_SALTS):
            code = member_code(registration.email, salt=salt)
            try:
                return smaregi.create_member(customer_code=code, **fields)
            except MemberCodeTaken:
                holder = smaregi.find_member_by_code(code)
                if holder is not None and (holder.mail_address or "").lower() == registration.email:
                    return holder  # our own earlier create, whose answer was lost
        raise PermanentError("no free member code for this person", system="smaregi")


class HubSpotContactStep(StepTask):
    """Upsert the HubSpot contact by email (HubSpot only mirrors)."""

    abstract = True
    system = "hubspot"
    locks_email = True  # the identity row is shared with the other steps of this person

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        identity = identity_for(session, registration.email)
        contact = self.runtime.connectors.hubspot.upsert_contact(
            email=registration.email, properties=profiles.hubspot_properties(registration)
        )
        identity.hubspot_contact_id = contact.id
        step.external_id = contact.id


class WelcomeEmailStep(StepTask):
    """Send the welcome email with the member number (if Smaregi has given one)."""

    abstract = True
    system = "email"

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        identity = find_identity(session, registration.email)
        settings = self.runtime.settings
        domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "membersync.local"
        message = WelcomeMessage(
            to=registration.email,
            first_name=registration.first_name,
            last_name=registration.last_name,
            locale=registration.locale or "ja",
            member_number=identity.smaregi_customer_code if identity else None,
            message_id=welcome_message_id(registration.id, domain=domain),
        )
        self.runtime.connectors.mailer.send_welcome(message)
        step.external_id = message.message_id


@shared_task(name="membersync.shopify.create_customer", bind=True, base=ShopifyCustomerStep)
def create_customer(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Create (or adopt) the Shopify customer: the customer master."""
    return self.run_step(registration_id)


@shared_task(name="membersync.smaregi.upsert_member", bind=True, base=SmaregiMemberStep)
def upsert_member(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Find or create the Smaregi POS member by email."""
    return self.run_step(registration_id)


@shared_task(name="membersync.hubspot.upsert_contact", bind=True, base=HubSpotContactStep)
def upsert_contact(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Upsert the HubSpot contact by email."""
    return self.run_step(registration_id)


@shared_task(name="membersync.mail.send_welcome", bind=True, base=WelcomeEmailStep)
def send_welcome(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Send the welcome email carrying the member number."""
    return self.run_step(registration_id)
