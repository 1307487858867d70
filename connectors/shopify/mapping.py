"""Between our keyword arguments and Shopify's Admin GraphQL shapes: inputs out, customers in.

Pure functions, no I/O: the client in `connectors.shopify.client` sends what these build; what an
answer's failures mean is read in `connectors.shopify.answers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from config.email_address import canonical_email

# Addresses we send are Japanese; the form has no country field.
ADDRESS_COUNTRY_CODE = "JP"
MEMBER_NUMBER_TYPE = "single_line_text_field"


@dataclass(frozen=True)
class ShopifyCustomer:
    """A Shopify customer as the pipeline needs it."""

    id: str  # global id "gid://shopify/Customer/123"
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    member_number: str | None = None  # metafield membersync.member_number, when the read fetched it
    updated_at: str | None = None
    address_id: str | None = None  # the default address's global id; None when it has no address


class CustomerFields(TypedDict, total=False):
    """The keyword arguments `update_customer` accepts: create's, every one optional."""

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
    """A `MemberCustomer` fragment (plus the optional `memberNumber` metafield alias) as a ShopifyCustomer."""
    member_number = node.get("memberNumber")
    return ShopifyCustomer(
        id=str(node["id"]),
        email=_inner(node, "defaultEmailAddress", "emailAddress"),
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        phone=_inner(node, "defaultPhoneNumber", "phoneNumber"),
        member_number=member_number.get("value") if isinstance(member_number, Mapping) else None,
        updated_at=node.get("updatedAt"),
        address_id=_inner(node, "defaultAddress", "id"),
    )


def _inner(node: Mapping[str, Any], name: str, field: str) -> Any:
    """`node[name][field]`, None when the object is null (no email, no phone, no address)."""
    inner = node.get(name)
    return inner.get(field) if isinstance(inner, Mapping) else None


def customer_input(fields: CustomerFields, *, now: datetime | None = None) -> dict[str, Any]:
    """A CustomerInput carrying exactly the customer's own fields given (the address goes separately).

    `accepts_marketing` becomes emailMarketingConsent (SUBSCRIBED, single opt-in, consent time `now`;
    otherwise NOT_SUBSCRIBED). `address` and `postal_code` are left out: CustomerInput.addresses is
    deprecated in 2026-10, so `mailing_address` builds them for customerAddressCreate / Update.
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
    if "accepts_marketing" in fields:
        graphql["emailMarketingConsent"] = marketing_consent(fields["accepts_marketing"], now=now)
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


def marketing_consent(accepts_marketing: bool, *, now: datetime | None = None) -> dict[str, Any]:
    """CustomerEmailMarketingConsentInput for the registrant's choice."""
    if not accepts_marketing:
        return {"marketingState": "NOT_SUBSCRIBED"}
    consent_time = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "marketingState": "SUBSCRIBED",
        "marketingOptInLevel": "SINGLE_OPT_IN",
        "consentUpdatedAt": consent_time,
    }


def same_email(left: str | None, right: str) -> bool:
    """One address by our rule (config/email_address.py); Shopify too compares addresses without regard
    to case (its search is fuzzier still)."""
    return left is not None and canonical_email(left) == canonical_email(right)
