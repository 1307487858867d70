"""Between our keyword arguments and Shopify's Admin GraphQL shapes: inputs out, answers in.

Pure functions, no I/O: the client in `connectors.shopify.client` sends what these build and raises
what these read. Nothing here puts a personal value into text meant for logs or errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import requests

from connectors.errors import ConnectorError, PermanentError, ThrottledError, TransientError

SYSTEM = "shopify"
# Wait after THROTTLED when the answer does not say enough to compute it.
DEFAULT_THROTTLE_SECONDS = 1.0
# Addresses we send are Japanese; the form has no country field.
ADDRESS_COUNTRY_CODE = "JP"
MEMBER_NUMBER_TYPE = "single_line_text_field"
# Quoted text in GraphQL error messages may echo variable values (an email); it is cut out.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


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


def customer_from_node(node: Mapping[str, Any]) -> ShopifyCustomer:
    """A `MemberCustomer` fragment (plus the optional `memberNumber` metafield alias) as a ShopifyCustomer."""
    member_number = node.get("memberNumber")
    return ShopifyCustomer(
        id=str(node["id"]),
        email=node.get("email"),
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
        phone=node.get("phone"),
        member_number=member_number.get("value") if isinstance(member_number, Mapping) else None,
        updated_at=node.get("updatedAt"),
    )


def customer_input(fields: CustomerFields, *, now: datetime | None = None) -> dict[str, Any]:
    """A CustomerInput carrying exactly the fields given.

    `accepts_marketing` becomes emailMarketingConsent (SUBSCRIBED, single opt-in, consent time `now`;
    otherwise NOT_SUBSCRIBED). `address` and `postal_code` become one Japanese MailingAddressInput;
    given to customerUpdate it replaces the address list (the sandbox does; Shopify UNCONFIRMED).
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
    if fields.get("address") or fields.get("postal_code"):
        address: dict[str, Any] = {"countryCode": ADDRESS_COUNTRY_CODE}
        if fields.get("address"):
            address["address1"] = fields["address"]
        if fields.get("postal_code"):
            address["zip"] = fields["postal_code"]
        graphql["addresses"] = [address]
    return graphql


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


def email_search(email: str) -> str:
    """Shopify search syntax for one exact address: email:"<address>", quotes and backslashes escaped."""
    escaped = email.strip().replace("\\", "\\\\").replace('"', '\\"')
    return f'email:"{escaped}"'


def same_email(left: str | None, right: str) -> bool:
    """Shopify compares addresses without regard to case (its search is fuzzier still)."""
    return left is not None and left.strip().lower() == right.strip().lower()


def user_error_fields(user_errors: Sequence[Mapping[str, Any]]) -> str:
    """The fields (and codes) named by userErrors, never their messages' values: safe for logs."""
    described = []
    for user_error in user_errors:
        field = ".".join(str(part) for part in user_error.get("field") or []) or "(base)"
        code = user_error.get("code")
        described.append(f"{field} [{code}]" if code else field)
    return ", ".join(described)


def user_error_kind(user_errors: Sequence[Mapping[str, Any]]) -> str | None:
    """What userErrors mean: "email_taken", "phone_taken", "not_found" or None (anything else)."""

    def says(field: str, words: str) -> bool:
        return any(
            (error.get("field") or [None])[-1] == field and words in str(error.get("message", "")).lower()
            for error in user_errors
        )

    if says("email", "taken"):
        return "email_taken"
    if says("phone", "taken"):
        return "phone_taken"
    if says("id", "not exist"):
        return "not_found"
    return None


def error_codes(errors: Any) -> set[str]:
    """The `extensions.code` of each top-level GraphQL error."""
    if not isinstance(errors, list):
        return set()
    return {
        str(error["extensions"]["code"])
        for error in errors
        if isinstance(error, Mapping)
        and isinstance(error.get("extensions"), Mapping)
        and error["extensions"].get("code")
    }


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def graphql_error(
    where: str, answer: Mapping[str, Any], cost_estimate: float, *, status: int, retry_after: float | None
) -> ConnectorError:
    """The error an answer's top-level `errors` mean: THROTTLED waits, INTERNAL_SERVER_ERROR retries."""
    errors = answer.get("errors")
    codes = error_codes(errors)
    if "THROTTLED" in codes:
        cost = (answer.get("extensions") or {}).get("cost")
        wait = retry_after or throttle_wait(cost, requested_fallback=cost_estimate)
        message = f"{where}: THROTTLED, retry in {wait:.2f}s"
        return ThrottledError(message, system=SYSTEM, status=status, retry_after=wait)
    kind = TransientError if "INTERNAL_SERVER_ERROR" in codes else PermanentError
    return kind(f"{where}: {describe_errors(errors)}", system=SYSTEM, status=status)


def describe_errors(errors: Any) -> str:
    """Codes and messages of top-level GraphQL errors, quoted values cut out, short enough to log."""
    if not isinstance(errors, list):
        return _QUOTED.sub('"..."', str(errors))[:300]
    messages = "; ".join(
        str(error.get("message", "")) if isinstance(error, Mapping) else str(error) for error in errors
    )
    codes = ", ".join(sorted(error_codes(errors))) or "no code"
    return f"GraphQL errors ({codes}): " + _QUOTED.sub('"..."', messages)[:300]


@dataclass(frozen=True)
class BucketReport:
    """Shopify's `extensions.cost.throttleStatus`: points left, bucket size, points restored per second."""

    available: float
    capacity: float | None
    per_second: float | None


def bucket_report(cost: Any) -> BucketReport | None:
    """The throttle status in an answer's `extensions.cost`; None when absent."""
    status = cost.get("throttleStatus") if isinstance(cost, Mapping) else None
    if not isinstance(status, Mapping) or _number(status.get("currentlyAvailable")) is None:
        return None
    return BucketReport(
        available=float(status["currentlyAvailable"]),
        capacity=_number(status.get("maximumAvailable")),
        per_second=_number(status.get("restoreRate")),
    )


def throttle_wait(
    cost: Any, *, requested_fallback: float, default: float = DEFAULT_THROTTLE_SECONDS
) -> float:
    """Seconds until the bucket holds the points asked for: (requested - available) / restore rate.

    Per https://shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits; `default` when the
    answer does not say enough to compute it.
    """
    report = bucket_report(cost)
    if report is None or not report.per_second:
        return default
    requested = _number(cost.get("requestedQueryCost")) or requested_fallback
    missing = requested - report.available
    return missing / report.per_second if missing > 0 else default


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
