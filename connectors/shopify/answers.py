"""Reading Shopify's Admin GraphQL answers: what each failure means, and the cost bucket it reports.

GraphQL fails in ways HTTP 200 cannot show: top-level `errors` (THROTTLED, INTERNAL_SERVER_ERROR,
anything else), a missing `data`, and mutations' `userErrors`. Every answer's
`extensions.cost.throttleStatus` corrects the shared cost bucket, and THROTTLED may come as HTTP 200
or 429. See https://shopify.dev/docs/api/admin-graphql#status-and-error-codes and
https://shopify.dev/docs/api/usage/limits. Nothing here puts a personal value into an error message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from connectors.errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from connectors.http import STATUS_ERRORS, AnswerPolicy, Call, json_object
from connectors.ratelimit import RateLimiter
from connectors.shopify import documents
from connectors.shopify.versions import check_served_version

SYSTEM = "shopify"
# Wait after THROTTLED when the answer does not say enough to compute it.
DEFAULT_THROTTLE_SECONDS = 1.0
# Quoted text in GraphQL error messages may echo variable values (an email); it is cut out.
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
OPERATION_NAMES = {document: name for name, document in documents.ALL_DOCUMENTS.items()}


class EmailTaken(ConflictError):
    """Another Shopify customer already has this email: find it by email and adopt it."""

    reason = "email_taken"


class PhoneTaken(PermanentError):
    """Another Shopify customer already has this phone number; Shopify requires phones to be unique."""

    reason = "phone_taken"


class ConsentRefused(PermanentError):
    """Shopify refused the email marketing consent we sent (a state it does not take as input).

    NOT_SUBSCRIBED, INVALID and REDACTED cannot be set (the 2026-10 schema says so). Whether Shopify
    reports it as a userError on the consent field or as a top-level error is UNCONFIRMED: both end
    here, so the dead letter names the consent rather than a generic refusal.
    """

    reason = "consent_refused"


CONSENT_REFUSED = (
    "Shopify refused the email marketing consent (NOT_SUBSCRIBED, INVALID and REDACTED cannot be set; "
    "no consent is sent for a registrant who did not opt in, UNSUBSCRIBED for a withdrawal)"
)
# Words that tie an error to the consent input: the input field and the input enum's type name (a
# top-level error naming only `marketingState` may be about the field our documents select).
_CONSENT_WORDS = ("emailmarketingconsent", "customeremailmarketingstate")
# A userError's field path or message may name the state itself.
_CONSENT_FIELD_WORDS = (*_CONSENT_WORDS, "marketingstate")

# What each kind of userError raises (any other userError: PermanentError naming the fields).
_USER_ERRORS: dict[str, tuple[type[PermanentError], str]] = {
    "consent_refused": (ConsentRefused, CONSENT_REFUSED),
    "email_taken": (EmailTaken, "the email is already used by another Shopify customer"),
    "phone_taken": (PhoneTaken, "the phone is already used by another customer (phones must be unique)"),
    "not_found": (NotFoundError, "no such customer"),
}


class ShopifyPolicy(AnswerPolicy):
    """Admin GraphQL: failures in the body of a 200, THROTTLED in a 200 or a 429, the cost bucket."""

    # The endpoint itself missing means an unknown shop (an unknown API version is served by another,
    # see connectors.shopify.versions), never a missing customer.
    statuses = {**STATUS_ERRORS, 404: PermanentError}

    def where(self, call: Call) -> str:
        """The operation a call runs ("shopify CreateCustomer"): every call goes to one URL."""
        query = call.json.get("query") if isinstance(call.json, Mapping) else None
        return f"{SYSTEM} {OPERATION_NAMES.get(str(query), 'graphql')}"

    def observe(self, response: requests.Response, limiter: RateLimiter) -> None:
        """Read the cost bucket every answer reports, and which API version served it."""
        check_served_version(response)
        report = bucket_report((json_object(response).get("extensions") or {}).get("cost"))
        if report is not None:
            limiter.observe(
                available=report.available, capacity=report.capacity, per_second=report.per_second
            )

    def detail(self, response: requests.Response) -> str:
        detail = super().detail(response)
        return (
            f"{detail} (check SHOPIFY_SHOP and SHOPIFY_API_VERSION)"
            if response.status_code == 404
            else detail
        )

    def error(self, response: requests.Response, call: Call, limiter: RateLimiter) -> ConnectorError:
        """A 429 carrying Shopify's THROTTLED body waits by its throttle status, unless Retry-After says."""
        answer = json_object(response)
        if response.status_code != 429 or "THROTTLED" not in error_codes(answer.get("errors")):
            return super().error(response, call, limiter)
        retry_after = self.retry_after(response)
        if retry_after:
            limiter.pause(retry_after)
        return graphql_error(self.where(call), answer, call.cost, status=429, retry_after=retry_after)

    def body_error(
        self, response: requests.Response, call: Call, limiter: RateLimiter
    ) -> ConnectorError | None:
        """Top-level `errors`, an answer without `data`, or a mutation's `userErrors`."""
        answer, where, status = json_object(response), self.where(call), response.status_code
        if answer.get("errors"):
            return graphql_error(where, answer, call.cost, status=status, retry_after=None)
        if not isinstance(answer.get("data"), dict):
            # An edge proxy's page or a half answer; worth another try.
            return TransientError(f"{where}: the answer has no data", system=SYSTEM, status=status)
        for root, payload in answer["data"].items():
            if isinstance(payload, Mapping) and payload.get("userErrors"):
                harmless = HARMLESS_USER_ERRORS.get(root, frozenset())
                if all(error.get("code") in harmless for error in payload["userErrors"]):
                    continue
                return user_error(f"{SYSTEM} {root}", payload["userErrors"])
        return None


# userError codes that mean "already done", by mutation: a metafield definition that exists already
# (TAKEN), or whose namespace and key already hold metafields without one (UNSTRUCTURED_ALREADY_EXISTS;
# the values are then stored untyped, as before).
HARMLESS_USER_ERRORS: Mapping[str, frozenset[str]] = {
    "metafieldDefinitionCreate": frozenset({"TAKEN", "UNSTRUCTURED_ALREADY_EXISTS"}),
}


def user_error(where: str, user_errors: Sequence[Mapping[str, Any]]) -> PermanentError:
    """The error a mutation's userErrors mean (ConsentRefused, EmailTaken, PhoneTaken, NotFound, else
    Permanent)."""
    kind = user_error_kind(user_errors)
    refused = (PermanentError, f"Shopify refused {user_error_fields(user_errors)}")
    error_class, what = _USER_ERRORS.get(kind or "", refused)
    if kind == "consent_refused":
        what = f"{what}: {user_error_fields(user_errors)}"
    return error_class(f"{where}: {what}", system=SYSTEM)


def user_error_fields(user_errors: Sequence[Mapping[str, Any]]) -> str:
    """The fields (and codes) named by userErrors, never their messages' values: safe for logs."""
    described = []
    for user_error in user_errors:
        field = ".".join(str(part) for part in user_error.get("field") or []) or "(base)"
        code = user_error.get("code")
        described.append(f"{field} [{code}]" if code else field)
    return ", ".join(described)


def user_error_kind(user_errors: Sequence[Mapping[str, Any]]) -> str | None:
    """What userErrors mean: "consent_refused", "email_taken", "phone_taken", "not_found" or None.

    A refused consent comes first: it must never hide behind an adoption (email taken) that would
    carry on as if nothing was refused.
    """

    def says(field: str, words: str) -> bool:
        return any(
            (error.get("field") or [None])[-1] == field and words in str(error.get("message", "")).lower()
            for error in user_errors
        )

    if any(
        _names_consent(
            " ".join(str(part) for part in error.get("field") or []) + " " + str(error.get("message")),
            _CONSENT_FIELD_WORDS,
        )
        for error in user_errors
    ):
        return "consent_refused"
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
    if "INTERNAL_SERVER_ERROR" in codes:
        return TransientError(f"{where}: {describe_errors(errors)}", system=SYSTEM, status=status)
    if _names_consent(_error_text(errors)):
        # E.g. a variable refused by type coercion, or a refusal Shopify reports at the top level.
        return ConsentRefused(
            f"{where}: {CONSENT_REFUSED}: {describe_errors(errors)}", system=SYSTEM, status=status
        )
    return PermanentError(f"{where}: {describe_errors(errors)}", system=SYSTEM, status=status)


def _error_text(errors: Any) -> str:
    """Messages and paths of top-level errors as sent (for matching words only, never for messages:
    a quoted value may be an address)."""
    if not isinstance(errors, list):
        return str(errors)
    parts = []
    for error in errors:
        if isinstance(error, Mapping):
            parts += [str(error.get("message", "")), " ".join(str(part) for part in error.get("path") or [])]
    return " ".join(parts)


def _names_consent(text: str, words: Sequence[str] = _CONSENT_WORDS) -> bool:
    """Whether an error's field path or message is about the email marketing consent input."""
    squeezed = re.sub(r"[\s_]", "", text.lower())  # "marketing state", "marketingState", ...
    return any(word in squeezed for word in words)


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
