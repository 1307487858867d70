"""Between our keyword arguments and Shopify's Admin GraphQL shapes: inputs out, customers in.

Pure functions, no I/O: the client in `connectors.shopify.client` sends what these build; what an
answer's failures mean is read in `connectors.shopify.answers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

from config.email_address import canonical_email
from connectors.shopify.documents import MEMBER_FACT_KEYS, MEMBER_FACT_TYPES, MEMBER_FACTS_NAMESPACE

# Addresses we send are Japanese; the form has no country field.
ADDRESS_COUNTRY_CODE = "JP"
MEMBER_NUMBER_TYPE = "single_line_text_field"

# Email marketing consent as Shopify's 2026-10 schema lets a client set it: the description of
# CustomerEmailMarketingConsentInput.marketingState reads "Accepted values: SUBSCRIBED, UNSUBSCRIBED,
# and PENDING. NOT_SUBSCRIBED, REDACTED, and INVALID are rejected if sent as input" (NOT_SUBSCRIBED is
# the default of a customer who never subscribed: "use UNSUBSCRIBED instead"; INVALID and REDACTED are
# "internally-set and read-only"). tests/unit/test_shopify_consent_values.py checks both sets against
# the published schema's descriptions.
SETTABLE_MARKETING_STATES = frozenset({"PENDING", "SUBSCRIBED", "UNSUBSCRIBED"})
READ_ONLY_MARKETING_STATES = frozenset({"NOT_SUBSCRIBED", "INVALID", "REDACTED"})
# CustomerMarketingOptInLevel (M3AAWG levels); every value may be sent.
OPT_IN_LEVELS = frozenset({"SINGLE_OPT_IN", "CONFIRMED_OPT_IN", "UNKNOWN"})


@dataclass(frozen=True)
class ShopifyCustomer:
    """A Shopify customer as the pipeline needs it."""

    id: str  # global id "gid://shopify/Customer/123"
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    # The member facts in the app-owned namespace ($app:membersync member_number / points / rank),
    # when the read fetched them (finds and gets do, mutations' answers do not).
    member_number: str | None = None
    # metafield membersync.registration: the registration whose create made this customer (lookups)
    registration_id: str | None = None
    updated_at: str | None = None
    address_id: str | None = None  # the default address's global id; None when it has no address
    # defaultEmailAddress's consent as Shopify reports it (CustomerEmailAddressMarketingState:
    # NOT_SUBSCRIBED until anyone set it); None without an email.
    marketing_state: str | None = None
    marketing_opt_in_level: str | None = None
    marketing_updated_at: str | None = None
    # The default address's zip and first line (MailingAddress.zip / address1): profile facts the
    # mirrors receive; None when the customer has no address.
    postal_code: str | None = None
    address: str | None = None
    points: int | None = None
    rank: str | None = None


class MemberFactValues(Protocol):
    """Member facts to write (registrations.owned_fields.MemberFacts is one): None = leave as it is."""

    @property
    def member_number(self) -> str | None: ...

    @property
    def points(self) -> int | None: ...

    @property
    def rank(self) -> str | None: ...


def fact_values(facts: MemberFactValues) -> dict[str, str | int | None]:
    """The facts as fact name -> value."""
    return {name: getattr(facts, name) for name in MEMBER_FACT_KEYS}


def fact_metafields(customer_id: str, facts: Mapping[str, str | int | None]) -> list[dict[str, Any]]:
    """MetafieldsSetInputs for the facts given (fact name -> value; None or blank left out), in the
    app-owned namespace, each typed as its metafield definition."""
    metafields = []
    for name, key in MEMBER_FACT_KEYS.items():
        value = facts.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        metafields.append(
            {
                "ownerId": customer_id,
                "namespace": MEMBER_FACTS_NAMESPACE,
                "key": key,
                "type": MEMBER_FACT_TYPES[name],
                "value": str(value),
            }
        )
    return metafields


class CustomerFields(TypedDict, total=False):
    """The keyword arguments of `create_customer`, every one optional.

    `accepts_marketing` is the registrant's request for marketing email, not a consent: True sends
    PENDING (double opt-in requested, see `consent_requested`), False sends no consent at all. The
    consent itself (SUBSCRIBED on confirmation, UNSUBSCRIBED on withdrawal) goes through
    `ShopifyClient.update_marketing_consent`; `update_customer` refuses this field.
    """

    email: str
    first_name: str
    last_name: str
    phone: str | None
    locale: str | None
    accepts_marketing: bool
    postal_code: str | None
    address: str | None
    tags: Sequence[str]
    note: str | None


CUSTOMER_FIELD_NAMES = frozenset(CustomerFields.__annotations__)
# The fields that live on the customer's address, written by the address mutations.
ADDRESS_FIELD_NAMES = frozenset({"address", "postal_code"})


def customer_from_node(node: Mapping[str, Any]) -> ShopifyCustomer:
    """A `MemberCustomer` fragment (plus the optional `MemberFacts` and `registration` reads) as a
    ShopifyCustomer."""
    return ShopifyCustomer(
        id=str(node["id"]),
        email=_inner(node, "defaultEmailAddress", "emailAddress"),
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        phone=_inner(node, "defaultPhoneNumber", "phoneNumber"),
        member_number=_inner(node, "factMemberNumber", "value"),
        points=_integer(_inner(node, "factPoints", "value")),
        rank=_inner(node, "factRank", "value"),
        registration_id=_inner(node, "registration", "value"),
        updated_at=node.get("updatedAt"),
        address_id=_inner(node, "defaultAddress", "id"),
        marketing_state=_inner(node, "defaultEmailAddress", "marketingState"),
        marketing_opt_in_level=_inner(node, "defaultEmailAddress", "marketingOptInLevel"),
        marketing_updated_at=_inner(node, "defaultEmailAddress", "marketingUpdatedAt"),
        postal_code=_inner(node, "defaultAddress", "zip"),
        address=_inner(node, "defaultAddress", "address1"),
    )


def _integer(value: Any) -> int | None:
    """A number_integer metafield's value, None when absent or not an integer."""
    try:
        return None if value is None else int(str(value))
    except ValueError:
        return None


def _inner(node: Mapping[str, Any], name: str, field: str) -> Any:
    """`node[name][field]`, None when the object is null (no email, no phone, no address)."""
    inner = node.get(name)
    return inner.get(field) if isinstance(inner, Mapping) else None


def customer_input(fields: CustomerFields, *, now: datetime | None = None) -> dict[str, Any]:
    """A CustomerInput carrying exactly the customer's own fields given (the address goes separately).

    `accepts_marketing=True` becomes emailMarketingConsent PENDING (`consent_requested`, time `now`);
    False sends no emailMarketingConsent key at all: the customer keeps Shopify's default,
    NOT_SUBSCRIBED, which Shopify refuses as input. `address` and `postal_code` are left out:
    CustomerInput.addresses is deprecated in 2026-10, so `mailing_address` builds them for
    customerAddressCreate / Update.
    """
    unknown = set(fields) - CUSTOMER_FIELD_NAMES
    if unknown:
        raise TypeError(f"unknown customer field(s): {', '.join(sorted(unknown))}")
    graphql: dict[str, Any] = {}
    for name, key in (
        ("email", "email"),
        ("first_name", "firstName"),
        ("last_name", "lastName"),
        ("phone", "phone"),  # already E.164: the form normalises it
        ("locale", "locale"),
        ("note", "note"),
    ):
        if name in fields:
            graphql[key] = fields[name]  # type: ignore[literal-required]
    if "tags" in fields:
        graphql["tags"] = list(fields["tags"])
    if fields.get("accepts_marketing"):
        graphql["emailMarketingConsent"] = consent_requested(now or datetime.now(UTC))
    return graphql


def mailing_address(fields: CustomerFields) -> dict[str, Any] | None:
    """The MailingAddressInput (Japanese) for the address fields given; None when none is given."""
    if not set(fields) & ADDRESS_FIELD_NAMES:
        return None
    address: dict[str, Any] = {"countryCode": ADDRESS_COUNTRY_CODE}
    if "address" in fields:
        address["address1"] = fields["address"]
    if "postal_code" in fields:
        address["zip"] = fields["postal_code"]
    return address


def marketing_consent(
    state: str, *, opt_in_level: str | None = None, consent_updated_at: datetime | None = None
) -> dict[str, Any]:
    """A CustomerEmailMarketingConsentInput; ValueError for a state Shopify refuses as input.

    A None opt-in level or time is left out (Shopify then stamps the time it receives the change).
    """
    if state not in SETTABLE_MARKETING_STATES:
        raise ValueError(
            f"email marketing state {state!r} cannot be set; one of {sorted(SETTABLE_MARKETING_STATES)}"
        )
    if opt_in_level is not None and opt_in_level not in OPT_IN_LEVELS:
        raise ValueError(f"marketing opt-in level {opt_in_level!r} is not one of {sorted(OPT_IN_LEVELS)}")
    consent: dict[str, Any] = {"marketingState": state}
    if opt_in_level is not None:
        consent["marketingOptInLevel"] = opt_in_level
    if consent_updated_at is not None:
        consent["consentUpdatedAt"] = shopify_time(consent_updated_at)
    return consent


def consent_requested(requested_at: datetime) -> dict[str, Any]:
    """PENDING, confirmed opt-in: the registrant asked for marketing email and must confirm it.

    The schema describes PENDING as "the customer is in the process of subscribing to email
    marketing": exactly a double opt-in request, so the master records the request from the start
    and the confirmation turns it into SUBSCRIBED. Whether Shopify itself mails the customer on
    PENDING set through the API is UNCONFIRMED (nothing in the schema says so).
    """
    return marketing_consent("PENDING", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=requested_at)


def consent_confirmed(confirmed_at: datetime) -> dict[str, Any]:
    """SUBSCRIBED, confirmed opt-in, consent time = when the owner confirmed through the link."""
    return marketing_consent("SUBSCRIBED", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=confirmed_at)


def consent_withdrawn(withdrawn_at: datetime) -> dict[str, Any]:
    """UNSUBSCRIBED (never NOT_SUBSCRIBED, which cannot be set), at the time of the withdrawal."""
    return marketing_consent("UNSUBSCRIBED", consent_updated_at=withdrawn_at)


def shopify_time(moment: datetime) -> str:
    """A DateTime as Shopify takes it: ISO 8601 in UTC, to the second ("2026-11-29T01:00:00Z")."""
    if moment.tzinfo is None:
        raise ValueError("a consent time needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_email(left: str | None, right: str) -> bool:
    """One address by our rule (config/email_address.py); Shopify too compares addresses without regard
    to case (its search is fuzzier still)."""
    return left is not None and canonical_email(left) == canonical_email(right)
