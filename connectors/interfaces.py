"""What the pipeline needs of each system, as typed interfaces.

The real clients (`ShopifyClient`, `SmaregiClient`, `HubSpotClient`, `Mailer`) and the in-process
fakes in `connectors.fakes` both satisfy these, so a step is written against the interface and a
unit test runs it without a network. Only the calls the pipeline makes are here (and `check()`, the
cheap read of `membersync check`); reconciliation and ops tools use the concrete clients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Protocol, Unpack

from connectors.hubspot.client import DEFAULT_PROPERTIES, HubSpotContact
from connectors.hubspot.subscriptions import SubscriptionStatus
from connectors.mailer.client import CardQuestionMessage, MemberNumberMessage, NoticeMessage, WelcomeMessage
from connectors.shopify.mapping import CustomerFields, MemberFactValues, ShopifyCustomer
from connectors.smaregi.members import SmaregiMember
from connectors.smaregi.points import PointMovementResult, PointTransaction


class ShopifyApi(Protocol):
    """The customer master: create, find by email, add an address, mirror the member number, consent."""

    def create_customer(
        self,
        *,
        email: str,
        first_name: str,
        last_name: str,
        phone: str | None = None,
        locale: str | None = None,
        accepts_marketing: bool = False,
        postal_code: str | None = None,
        address: str | None = None,
        registration_id: str | None = None,
    ) -> ShopifyCustomer:
        """Create a customer; EmailTaken when the email is in use, PhoneTaken for the phone.

        `registration_id` marks the customer as that registration's (read back by
        `find_customers_by_email`), so a retry after a lost answer recognises its own customer.

        `accepts_marketing=True` records a double opt-in request (PENDING); False sends no consent.
        """
        ...

    def add_address(self, customer_id: str, *, postal_code: str | None, address: str | None) -> str:
        """Give the customer a new default address; its id."""
        ...

    def find_customers_by_email(self, email: str) -> list[ShopifyCustomer]:
        """Customers whose email is exactly `email` (any case)."""
        ...

    def update_customer(self, customer_id: str, **fields: Unpack[CustomerFields]) -> ShopifyCustomer:
        """Change only the fields given (create's keyword names); NotFoundError for an unknown id."""
        ...

    def set_member_number(self, customer_id: str, member_number: str) -> None:
        """Write the member number onto the customer (app-owned metafield $app:membersync member_number)."""
        ...

    def set_member_facts(self, customer_id: str, facts: MemberFactValues) -> None:
        """Write the member facts given (None = leave as it is) in the app-owned namespace $app:membersync."""
        ...

    def update_marketing_consent(
        self,
        customer_id: str,
        state: str,
        *,
        opt_in_level: str | None = None,
        consent_updated_at: datetime | None = None,
    ) -> ShopifyCustomer:
        """Set the email marketing consent: PENDING, SUBSCRIBED or UNSUBSCRIBED.

        Any other state (NOT_SUBSCRIBED, INVALID, REDACTED) is ConsentRefused, as Shopify refuses it.
        """
        ...

    def check(self) -> None:
        """One cheap read that proves the credentials and scopes (`membersync check`); raises a
        ConnectorError when the system refuses or does not answer."""
        ...


class SmaregiApi(Protocol):
    """POS members: list them (for the member directory), look one up by code or id, create one, and
    set whether they receive marketing mail.

    Smaregi has no e-mail search: people are matched by e-mail in Membersync's member directory,
    which these calls keep up to date.
    """

    def list_members(
        self,
        *,
        page: int = 1,
        limit: int = 500,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        sort: str | None = None,
    ) -> list[SmaregiMember]:
        """One page of members, optionally changed since `updated_from` (a short page is the last)."""
        ...

    def get_member(self, customer_id: str) -> SmaregiMember | None:
        """The member with this customerId, or None when it does not exist."""
        ...

    def find_member_by_code(self, customer_code: str) -> SmaregiMember | None:
        """The member holding `customer_code`, or None."""
        ...

    def create_member(
        self,
        *,
        customer_code: str,
        last_name: str,
        first_name: str,
        mail_address: str,
        last_kana: str | None = None,
        first_kana: str | None = None,
        phone_number: str | None = None,
        post_code: str | None = None,
        address: str | None = None,
        sex: str | None = None,
        birth_date: str | None = None,
        mail_receive_flag: bool | None = None,
    ) -> SmaregiMember:
        """Create a member; any refusal or lost answer is settled by looking the code up."""
        ...

    def set_mail_receive_flag(self, customer_id: str, receive: bool) -> SmaregiMember:
        """mailReceiveFlag "1" (receives marketing mail) or "0"; NotFoundError for an unknown member."""
        ...

    def add_points(
        self, customer_id: str, points: int, *, expire_date: date | None = None
    ) -> PointMovementResult:
        """Move the member's balance by `points` (negative subtracts); not idempotent."""
        ...

    def point_transactions(
        self,
        customer_id: str,
        *,
        since: datetime,
        until: datetime | None = None,
        division: str | None = None,
        page_size: int = 100,
    ) -> list[PointTransaction]:
        """The member's point transactions (取引区分 6, 7, 8) received since `since`."""
        ...

    def transaction_customer_ids(self, transaction_head_ids: Sequence[str]) -> list[str]:
        """The members (customerIds) of these recent transactions (a `pos:transactions` webhook's ids)."""
        ...

    def check(self) -> None:
        """One cheap read that proves the credentials and scopes (`membersync check`); raises a
        ConnectorError when the system refuses or does not answer."""
        ...


class HubSpotApi(Protocol):
    """The CRM mirror: one upsert by email; marketing consent as a subscription with a legal basis."""

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact:
        """Create or update the contact keyed by `email` (never with a marketing-status property)."""
        ...

    def search_contacts_by_email(
        self, email: str, *, properties: Sequence[str] = DEFAULT_PROPERTIES
    ) -> list[HubSpotContact]:
        """The contacts whose email equals this one, any case, with the properties named."""
        ...

    def subscribe(self, email: str, *, legal_basis: str, explanation: str) -> SubscriptionStatus:
        """Subscribe the address to the marketing subscription type; SubscriptionRefused if HubSpot won't."""
        ...

    def unsubscribe(
        self, email: str, *, explanation: str, legal_basis: str | None = None
    ) -> SubscriptionStatus:
        """Unsubscribe the address from the marketing subscription type."""
        ...

    def subscription_status(self, email: str) -> SubscriptionStatus:
        """The address's status for the marketing subscription type."""
        ...

    def check(self) -> None:
        """One cheap read that proves the credentials and scopes (`membersync check`); raises a
        ConnectorError when the system refuses or does not answer."""
        ...


class MailSender(Protocol):
    """The welcome email, the member number when the welcome went out without it, and the notice to
    an address that already belongs to a member."""

    def send_welcome(self, message: WelcomeMessage) -> None:
        """Send `message` (its Message-ID is deterministic per registration)."""
        ...

    def send_member_number(self, message: MemberNumberMessage) -> None:
        """Send `message` (its Message-ID is deterministic per registration, not the welcome's)."""
        ...

    def send_notice(self, message: NoticeMessage) -> None:
        """Send the "already a member" notice (no personal data; Message-ID per registration)."""
        ...

    def send_card_question(self, message: CardQuestionMessage) -> None:
        """Ask an address's owner whether a card made at the till is theirs (reconciliation's walk-in;
        no personal data; Message-ID per registration)."""
        ...

    def check(self) -> None:
        """Connect and greet the server (STARTTLS and AUTH when configured) without sending anything
        (`membersync check`); raises a ConnectorError as a send would."""
        ...
