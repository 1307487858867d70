"""In-process stand-ins for the four systems, so a pipeline step is tested without a network.

Each fake satisfies its Protocol in `connectors.interfaces` and keeps the vendor rules the pipeline
relies on: Shopify's unique email (any case) and phone and the consent states it refuses as input,
Smaregi's unique customerCode, HubSpot's upsert by email, its read-only marketing properties and its
subscriptions (legal basis kept, no resubscribing an opt-out). For failure tests every call can be
made to fail:

    fake.fail_next("create_customer", TransientError("down"))  # raised before anything changes
    fake.lose_next_answer("create_customer")  # the write happens, then TransientError: a lost answer

and `fake.calls` logs every call as (method, arguments), failed ones included. Worker threads share
a fake, so every call runs under its lock.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from config.email_address import canonical_email
from connectors.errors import NotFoundError, PermanentError, TransientError
from connectors.hubspot.client import DEFAULT_PROPERTIES, HubSpotContact
from connectors.hubspot.subscriptions import (
    LEGAL_BASES,
    NOT_SUBSCRIBED,
    SUBSCRIBED,
    SubscriptionRefused,
    SubscriptionStatus,
    refuse_marketing_properties,
)
from connectors.mailer.client import CardQuestionMessage, MemberNumberMessage, NoticeMessage, WelcomeMessage
from connectors.shopify.answers import CONSENT_REFUSED, ConsentRefused, EmailTaken, PhoneTaken
from connectors.shopify.mapping import (
    SETTABLE_MARKETING_STATES,
    MemberFactValues,
    ShopifyCustomer,
    consent_requested,
    fact_values,
    marketing_consent,
    same_email,
)
from connectors.smaregi.members import SmaregiMember
from connectors.smaregi.points import PointMovementResult, PointTransaction, movement_division

POINT_ADD = "smaregi POST /pos/customers/{id}/point/add"

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound="FakeSystem")


def vendor_call(method: Callable[Concatenate[F, P], T]) -> Callable[Concatenate[F, P], T]:
    """A fake's API method: logged, and subject to the failures queued for it."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(fake: F, *args: P.args, **kwargs: P.kwargs) -> T:
        bound = signature.bind(fake, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(list(bound.arguments.items())[1:])  # without the fake itself
        return fake._run(method.__name__, arguments, lambda: method(fake, *args, **kwargs))

    call.vendor_call = True  # type: ignore[attr-defined]
    return call


class FakeSystem:
    """What every fake shares: the call log, queued failures, lost answers and one lock."""

    system = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._failures: dict[str, deque[Exception]] = {}
        self._lost: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    def fail_next(self, method: str, *errors: Exception) -> None:
        """The next calls of `method` raise `errors`, one each in order, before changing anything."""
        with self._lock:
            self._failures.setdefault(self._method(method), deque()).extend(errors)

    def lose_next_answer(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` take effect, then raise TransientError (a timed-out answer)."""
        with self._lock:
            name = self._method(method)
            self._lost[name] = self._lost.get(name, 0) + times

    def count(self, method: str) -> int:
        """How many times `method` was called, failed calls included."""
        with self._lock:
            return sum(1 for name, _ in self.calls if name == self._method(method))

    @vendor_call
    def check(self) -> None:
        """`membersync check`'s cheap read: answers, unless a failure is queued with fail_next."""

    def _method(self, name: str) -> str:
        if not getattr(getattr(type(self), name, None), "vendor_call", False):
            raise ValueError(f"{type(self).__name__} has no API method {name!r}")
        return name

    def _next_id(self) -> int:
        return next(self._ids)

    def _run(self, method: str, arguments: dict[str, Any], effect: Callable[[], T]) -> T:
        with self._lock:
            self.calls.append((method, arguments))
            queued = self._failures.get(method)
            if queued:
                raise queued.popleft()
            result = effect()
            if self._lost.get(method):
                self._lost[method] -= 1
                raise TransientError(
                    f"{self.system} {method}: timed out (the write was applied)", system=self.system
                )
            return result


class FakeShopify(FakeSystem):
    """Shopify customers: unique email (any case) and phone, the default address, the member number,
    the email marketing consent.

    As the real connector does, a create with an address makes a second call, `add_address`, after
    the customer exists: failing that call leaves a customer without an address. A customer starts
    NOT_SUBSCRIBED (Shopify's default), or PENDING when the registrant asked for marketing email;
    `update_marketing_consent` refuses the states Shopify refuses as input (ConsentRefused).
    """

    system = "shopify"

    def __init__(self) -> None:
        super().__init__()
        self.customers: dict[str, ShopifyCustomer] = {}
        self.addresses: dict[str, dict[str, str | None]] = {}

    @vendor_call
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
        """A new customer; EmailTaken or PhoneTaken, as Shopify's userErrors say, when one is in use."""
        if any(same_email(customer.email, email) for customer in self.customers.values()):
            raise EmailTaken(
                "shopify customerCreate: the email is already used by another Shopify customer",
                system=self.system,
            )
        if phone and any(customer.phone == phone.strip() for customer in self.customers.values()):
            raise PhoneTaken(
                "shopify customerCreate: the phone is already used by another customer", system=self.system
            )
        consent = consent_requested(datetime.now(UTC)) if accepts_marketing else None
        customer = ShopifyCustomer(
            id=f"gid://shopify/Customer/{self._next_id()}",
            email=email.strip(),
            first_name=first_name,
            last_name=last_name,
            phone=phone.strip() if phone else None,
            marketing_state=consent["marketingState"] if consent else "NOT_SUBSCRIBED",
            marketing_opt_in_level=consent["marketingOptInLevel"] if consent else None,
            marketing_updated_at=consent["consentUpdatedAt"] if consent else None,
            registration_id=registration_id,
        )
        self.customers[customer.id] = customer
        if postal_code or address:
            self.add_address(customer.id, postal_code=postal_code, address=address)
        return self.customers[customer.id]

    @vendor_call
    def add_address(self, customer_id: str, *, postal_code: str | None, address: str | None) -> str:
        """A new default address on the customer; an unknown customer is refused, as Shopify does."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise PermanentError(
                "shopify customerAddressCreate: Shopify refused customerId", system=self.system
            )
        address_id = f"gid://shopify/MailingAddress/{self._next_id()}?model_name=CustomerAddress"
        self.addresses[address_id] = {"zip": postal_code, "address1": address}
        self.customers[customer_id] = dataclasses.replace(customer, address_id=address_id)
        return address_id

    @vendor_call
    def update_customer(self, customer_id: str, **fields: Any) -> ShopifyCustomer:
        """Change only the fields given (the address fields change or add the default address)."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise NotFoundError("shopify customer: no such customer", system=self.system)
        own = {"first_name": "first_name", "last_name": "last_name", "phone": "phone"}
        changes = {own[name]: value for name, value in fields.items() if name in own}
        customer = dataclasses.replace(customer, **changes)
        if {"postal_code", "address"} & set(fields):
            if customer.address_id is None:
                address_id = f"gid://shopify/MailingAddress/{self._next_id()}?model_name=CustomerAddress"
                customer = dataclasses.replace(customer, address_id=address_id)
                self.addresses[address_id] = {"zip": None, "address1": None}
            stored = self.addresses[customer.address_id or ""]
            if "postal_code" in fields:
                stored["zip"] = fields["postal_code"]
            if "address" in fields:
                stored["address1"] = fields["address"]
        self.customers[customer_id] = customer
        return customer

    @vendor_call
    def find_customers_by_email(self, email: str) -> list[ShopifyCustomer]:
        """The customer whose email is exactly `email`, any case ([] or one: emails are unique)."""
        return [customer for customer in self.customers.values() if same_email(customer.email, email)]

    @vendor_call
    def set_member_number(self, customer_id: str, member_number: str) -> None:
        """Store the member number on the customer; an unknown customer is refused, as metafieldsSet does."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise PermanentError(
                "shopify metafieldsSet: Shopify refused metafields.0.ownerId", system=self.system
            )
        self.customers[customer_id] = dataclasses.replace(customer, member_number=member_number)

    @vendor_call
    def set_member_facts(self, customer_id: str, facts: MemberFactValues) -> None:
        """Store the facts given (None = leave as it is); an unknown customer is refused (metafieldsSet)."""
        customer = self.customers.get(customer_id)
        if customer is None:
            raise PermanentError(
                "shopify metafieldsSet: Shopify refused metafields.0.ownerId", system=self.system
            )
        given = {name: value for name, value in fact_values(facts).items() if value is not None}
        self.customers[customer_id] = dataclasses.replace(customer, **given)  # type: ignore[arg-type]

    @vendor_call
    def update_marketing_consent(
        self,
        customer_id: str,
        state: str,
        *,
        opt_in_level: str | None = None,
        consent_updated_at: datetime | None = None,
    ) -> ShopifyCustomer:
        """Store the consent; ConsentRefused for a state Shopify refuses as input, as Shopify does."""
        if state not in SETTABLE_MARKETING_STATES:
            raise ConsentRefused(
                f"shopify customerEmailMarketingConsentUpdate: {CONSENT_REFUSED}", system=self.system
            )
        customer = self.customers.get(customer_id)
        if customer is None or not customer.email:
            raise PermanentError(
                "shopify customerEmailMarketingConsentUpdate: Shopify refused customerId", system=self.system
            )
        consent = marketing_consent(state, opt_in_level=opt_in_level, consent_updated_at=consent_updated_at)
        stamped = consent.get("consentUpdatedAt") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.customers[customer_id] = dataclasses.replace(
            customer,
            marketing_state=state,
            marketing_opt_in_level=consent.get("marketingOptInLevel", customer.marketing_opt_in_level),
            marketing_updated_at=stamped,
        )
        return self.customers[customer_id]


class FakeSmaregi(FakeSystem):
    """Smaregi POS members: unique customerCode, customerIds "1", "2", ... in order of creation.

    Like Smaregi, it has no e-mail search; every change stamps `updated_at` (from `clock`), which
    `list_members(updated_from=...)` filters on. A taken code is refused the way any refusal is:
    a PermanentError whose wording nothing relies on. `add_member` stands in for the till (a
    walk-in's card made at the register, outside the pipeline).
    """

    system = "smaregi"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.members: dict[str, SmaregiMember] = {}
        # Every point movement, as GET /pos/transactions lists them.
        self.point_log: list[PointTransaction] = []
        self._clock = clock or (lambda: datetime.now(UTC))

    def add_member(self, customer_code: str, mail_address: str | None, **names: str) -> SmaregiMember:
        """A member made at the register (not an API call of ours: not logged, never failed)."""
        with self._lock:
            return self._store(customer_code, mail_address, names.get("last_name"), names.get("first_name"))

    def delete_member(self, customer_id: str) -> None:
        """Remove a member, as a shop does in Smaregi's back office."""
        with self._lock:
            del self.members[customer_id]

    def _store(
        self,
        customer_code: str,
        mail_address: str | None,
        last_name: str | None,
        first_name: str | None,
        mail_receive_flag: bool | None = None,
    ) -> SmaregiMember:
        if any(member.customer_code == customer_code for member in self.members.values()):
            raise PermanentError(
                "smaregi POST /pos/customers: HTTP 400: Bad Request", system=self.system, status=400
            )
        member = SmaregiMember(
            str(self._next_id()),
            customer_code,
            mail_address,
            last_name,
            first_name,
            "0",
            self._clock(),
            # Smaregi's own default when the flag is not sent is UNCONFIRMED; "0" here.
            mail_receive_flag=bool(mail_receive_flag),
            points=0,
        )
        self.members[member.customer_id] = member
        return member

    @vendor_call
    def list_members(
        self,
        *,
        page: int = 1,
        limit: int = 500,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        sort: str | None = None,
    ) -> list[SmaregiMember]:
        """One page of members in id order (newest change first with sort="updDateTime:desc")."""
        members = [
            member
            for member in self.members.values()
            if (updated_from is None or (member.updated_at is not None and member.updated_at >= updated_from))
            and (updated_to is None or (member.updated_at is not None and member.updated_at <= updated_to))
        ]
        if sort == "updDateTime:desc":
            members.sort(key=lambda member: (member.updated_at is not None, member.updated_at), reverse=True)
        return members[(page - 1) * limit : page * limit]

    @vendor_call
    def get_member(self, customer_id: str) -> SmaregiMember | None:
        """The member with this customerId, or None."""
        return self.members.get(customer_id)

    @vendor_call
    def find_member_by_code(self, customer_code: str) -> SmaregiMember | None:
        """The member holding `customer_code`, or None."""
        return next(
            (member for member in self.members.values() if member.customer_code == customer_code), None
        )

    @vendor_call
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
        """A new member with point "0"; a taken code is refused (PermanentError, HTTP 400)."""
        return self._store(customer_code, mail_address, last_name, first_name, mail_receive_flag)

    @vendor_call
    def set_mail_receive_flag(self, customer_id: str, receive: bool) -> SmaregiMember:
        """Set mailReceiveFlag and stamp the change; an unknown member is NotFoundError (HTTP 404)."""
        member = self.members.get(customer_id)
        if member is None:
            raise NotFoundError(
                "smaregi PATCH /pos/customers/{id}: HTTP 404: Not Found", system=self.system, status=404
            )
        self.members[customer_id] = dataclasses.replace(
            member, mail_receive_flag=receive, updated_at=self._clock()
        )
        return self.members[customer_id]

    @vendor_call
    def add_points(
        self, customer_id: str, points: int, *, expire_date: date | None = None
    ) -> PointMovementResult:
        """Move the balance (a string, as Smaregi keeps it) and record a transaction (取引区分 6 or 7);
        below zero is refused (PermanentError, HTTP 400), an unknown member is NotFoundError."""
        member = self.members.get(customer_id)
        if member is None:
            raise NotFoundError(f"{POINT_ADD}: HTTP 404: Not Found", system=self.system, status=404)
        balance = int(member.point or "0") + points
        if points == 0 or balance < 0:
            raise PermanentError(f"{POINT_ADD}: HTTP 400: Bad Request", system=self.system, status=400)
        now = self._clock()
        transaction = PointTransaction(
            str(self._next_id()), movement_division(points), customer_id, abs(points), now
        )
        self.point_log.append(transaction)
        self.members[customer_id] = dataclasses.replace(
            member, point=str(balance), points=balance, updated_at=now
        )
        return PointMovementResult(customer_id, balance, (transaction.transaction_head_id,), now)

    @vendor_call
    def point_transactions(
        self,
        customer_id: str,
        *,
        since: datetime,
        until: datetime | None = None,
        division: str | None = None,
        page_size: int = 100,
    ) -> list[PointTransaction]:
        """The member's point transactions received from `since` to `until`, oldest first."""
        return [
            transaction
            for transaction in self.point_log
            if transaction.customer_id == customer_id
            and (division is None or transaction.division == division)
            and transaction.transacted_at is not None
            and since <= transaction.transacted_at
            and (until is None or transaction.transacted_at <= until)
        ]

    @vendor_call
    def transaction_customer_ids(self, transaction_head_ids: Sequence[str]) -> list[str]:
        """The members of these transactions (point movements recorded here), each once."""
        wanted = set(transaction_head_ids)
        found = [t.customer_id for t in self.point_log if t.transaction_head_id in wanted and t.customer_id]
        return list(dict.fromkeys(found))


class FakeHubSpot(FakeSystem):
    """HubSpot contacts: one per email (stored in lower case, as HubSpot does), ids "1", "2", ...

    Marketing consent lives apart, per address (`subscriptions`), as HubSpot keeps it: subscribing
    needs a legal basis and an explanation, both kept; an address that was unsubscribed is never
    subscribed again (v3's rule); repeating either call changes nothing.
    """

    system = "hubspot"
    subscription_id = "1"

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[str, HubSpotContact] = {}
        self.subscriptions: dict[str, SubscriptionStatus] = {}
        self._opted_out: set[str] = set()
        self.member_properties_ensured = False

    @vendor_call
    def ensure_member_properties(self) -> None:
        """Membersync's custom properties exist (the fake accepts every property name anyway)."""
        self.member_properties_ensured = True

    @vendor_call
    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact:
        """Create the contact keyed by `email`, or merge `properties` into the one that has it
        (Membersync's custom properties included: the fake needs no definitions for them)."""
        key = canonical_email(email)
        if not key:
            raise ValueError("every contact to upsert needs an email property")
        refuse_marketing_properties(properties)  # as the real client does, before sending
        known = next((contact for contact in self.contacts.values() if contact.email == key), None)
        merged = {**(known.properties if known else {}), **properties, "email": key}
        contact_id = known.id if known else str(self._next_id())
        self.contacts[contact_id] = HubSpotContact(contact_id, key, merged)
        return HubSpotContact(contact_id, key, dict(merged), created=known is None)

    @vendor_call
    def search_contacts_by_email(
        self,
        email: str,
        *,
        properties: Sequence[str] = DEFAULT_PROPERTIES,
        extra_properties: Sequence[str] = (),
    ) -> list[HubSpotContact]:
        """The contact with this email (any case), with the properties named that it has."""
        key = canonical_email(email)
        names = [*properties, *extra_properties]
        return [
            HubSpotContact(contact.id, contact.email, {name: contact.properties.get(name) for name in names})
            for contact in self.contacts.values()
            if contact.email == key
        ]

    @vendor_call
    def subscribe(self, email: str, *, legal_basis: str, explanation: str) -> SubscriptionStatus:
        """SUBSCRIBED with the legal basis; SubscriptionRefused for an address that opted out."""
        if legal_basis not in LEGAL_BASES or not explanation.strip():
            raise ValueError("a subscription needs a documented legal basis and its explanation")
        key = canonical_email(email)
        current = self.subscriptions.get(key)
        if current is not None and current.subscribed:
            return current
        if key in self._opted_out:
            raise SubscriptionRefused(
                "hubspot POST /communication-preferences/v3/subscribe: HTTP 400: VALIDATION_ERROR; "
                "HubSpot's v3 API never resubscribes an address that opted out",
                system=self.system,
                status=400,
            )
        status = SubscriptionStatus(
            self.subscription_id, SUBSCRIBED, "SUBSCRIPTION_STATUS", legal_basis, explanation.strip()
        )
        self.subscriptions[key] = status
        return status

    @vendor_call
    def unsubscribe(
        self, email: str, *, explanation: str, legal_basis: str | None = None
    ) -> SubscriptionStatus:
        """NOT_SUBSCRIBED for good (v3 will not subscribe the address again)."""
        key = canonical_email(email)
        self._opted_out.add(key)
        status = SubscriptionStatus(
            self.subscription_id,
            NOT_SUBSCRIBED,
            "SUBSCRIPTION_STATUS",
            legal_basis,
            explanation.strip() or None,
        )
        self.subscriptions[key] = status
        return status

    @vendor_call
    def subscription_status(self, email: str) -> SubscriptionStatus:
        """The address's status (NOT_SUBSCRIBED when nothing was ever set)."""
        found = self.subscriptions.get(canonical_email(email))
        return found or SubscriptionStatus(self.subscription_id, NOT_SUBSCRIBED)


class FakeMailer(FakeSystem):
    """The mail server: every message sent (welcome, member number or notice) is kept in `sent`, in
    order; nothing is deduplicated here. Tell the kinds apart by type."""

    system = "email"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[WelcomeMessage | MemberNumberMessage | NoticeMessage | CardQuestionMessage] = []

    @vendor_call
    def send_welcome(self, message: WelcomeMessage) -> None:
        """Record `message` as sent (a second send of the same Message-ID is a second email)."""
        self.sent.append(message)

    @vendor_call
    def send_member_number(self, message: MemberNumberMessage) -> None:
        """Record `message` as sent (a second send of the same Message-ID is a second email)."""
        self.sent.append(message)

    @vendor_call
    def send_notice(self, message: NoticeMessage) -> None:
        """Record `message` as sent (a second send of the same Message-ID is a second email)."""
        self.sent.append(message)

    def send_card_question(self, message: CardQuestionMessage) -> None:
        """Record `message` as sent (a second send of the same Message-ID is a second email)."""
        self.sent.append(message)
