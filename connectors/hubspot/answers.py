"""Reading HubSpot's answers: its rate-limit headers, its error bodies and partial batch failures.

Messages of the errors raised here carry categories, ids, positions and property names only:
HubSpot's own wording may quote an email address or a value. Limits and their headers:
https://developers.hubspot.com/docs/api/usage-details

Validation rules: HubSpot applies a portal admin's property validation rules to API writes (since
July 2023) and, from API version 2026-09, its required and conditionally required properties too
(developer changelog, "CRM API write validation enforcement"). A refusal is a 400 VALIDATION_ERROR
whose per-property list (`{"isValid": false, "name", "error", "message"}`, in `errors` or as JSON
after "Property values were not valid:" in `message`) names the property. Which `error` codes the
rules use is UNCONFIRMED (a 2023 announcement shows INVALID_ALPHA), so the test runs the other way:
a per-property refusal that is not about the property's own definition (it does not exist, is
read-only, the value does not fit its type) is an admin's rule, `ValidationRuleRefused`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import requests

from config.email_address import canonical_email
from connectors.errors import ConflictError, ConnectorError, PermanentError, ThrottledError, TransientError
from connectors.http import AnswerPolicy, Call, json_object
from connectors.ratelimit import RateLimiter
from connectors.rollingwindow import RedisRollingWindow
from connectors.tokenbucket import rolling_window_bucket

SYSTEM = "hubspot"
# Waits when a 429 names its policy but gives no Retry-After. The daily cap resets at midnight in the
# portal's time zone, which we do not know: an hour, and the step's retry budget absorbs the rest.
POLICY_WAIT_SECONDS = {"TEN_SECONDLY_ROLLING": 1.0, "SECONDLY": 1.0, "DAILY": 3600.0}
# Policies that stop every HubSpot call, not just searches (SECONDLY is the search endpoint's own limit).
SHARED_POLICIES = frozenset({"TEN_SECONDLY_ROLLING", "DAILY"})
# Batch error categories worth retrying; any other category of a failed input is permanent.
TRANSIENT_CATEGORIES = frozenset(
    {"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "LOCKED"}
)
# Per-property error codes about the property's own definition: our mistake, not an admin's rule.
DEFINITION_ERRORS = frozenset(
    {
        "PROPERTY_DOESNT_EXIST",
        "READ_ONLY_VALUE",
        "INVALID_EMAIL",
        "INVALID_TYPE",
        "INVALID_OPTION",
        "INVALID_INTEGER",
        "INVALID_LONG",
        "INVALID_DOUBLE",
        "INVALID_DATE",
        "INVALID_DATETIME",
        "INVALID_BOOLEAN",
    }
)
_PROPERTY_ERRORS_PREFIX = "Property values were not valid:"
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
# Paths that carry an email address (the Communication Preferences status read): cut from messages.
_EMAIL_IN_PATH = re.compile(r"(/status/email/)[^/]+")


class ValidationRuleRefused(PermanentError):
    """A validation rule the portal's admin configured refused a write: the value (or the rule) must
    change, so the step dead-letters at once instead of retrying."""

    reason = "validation_rule_refused"


def refused_by_rules(body: Mapping[str, Any]) -> list[str]:
    """The properties an admin's validation rule refused, per an error body (or a batch error entry)."""
    if body.get("category") != "VALIDATION_ERROR":
        return []
    entries: Any = body.get("errors")
    message = str(body.get("message") or "")
    if not isinstance(entries, list) and message.startswith(_PROPERTY_ERRORS_PREFIX):
        try:
            entries = json.loads(message[len(_PROPERTY_ERRORS_PREFIX) :])
        except ValueError:
            entries = None
    if not isinstance(entries, list):
        return []
    refused = {
        str(entry["name"])
        for entry in entries
        if isinstance(entry, Mapping)
        and entry.get("name")
        and entry.get("error")
        and entry.get("error") not in DEFINITION_ERRORS
    }
    return sorted(refused)


def rule_refusal_text(properties: list[str]) -> str:
    """What a ValidationRuleRefused says: which properties, and that an admin's rule refused them."""
    named = ", ".join(properties)
    return (
        f"property {named} refused by a validation rule the HubSpot portal's admin configured; "
        "retrying cannot help: the value or the rule must change"
    )


class HubSpotPolicy(AnswerPolicy):
    """X-HubSpot-RateLimit-* on every answer; errors named by `category`, 429s by `policyName`."""

    def where(self, call: Call) -> str:
        """The call as messages and logs name it, without the address a status read puts in its path."""
        return _EMAIL_IN_PATH.sub(r"\1{email}", super().where(call))

    def observe(self, response: requests.Response, limiter: RateLimiter) -> None:
        """Correct the shared bucket from X-HubSpot-RateLimit-* (errors carry them too)."""
        headers = response.headers
        try:
            remaining = float(headers["X-HubSpot-RateLimit-Remaining"])
            capacity = float(headers["X-HubSpot-RateLimit-Max"])
            interval_seconds = float(headers["X-HubSpot-RateLimit-Interval-Milliseconds"]) / 1000
        except (KeyError, ValueError):
            return  # an answer without them (a proxy's, a timeout page): nothing to learn
        if isinstance(limiter, RedisRollingWindow) and interval_seconds > 0:
            # The window log keeps to the plan's own limit exactly (connectors.rollingwindow).
            limiter.observe(available=remaining, capacity=capacity, per_second=capacity / interval_seconds)
            return
        if interval_seconds <= 0 or capacity < 4:
            limiter.observe(available=remaining)
            return
        # The plan's real size, as a bucket that never exceeds it in any rolling window (a bucket
        # of Max refilling at Max/interval would allow twice Max per window).
        bucket, per_second = rolling_window_bucket(capacity, interval_seconds)
        limiter.observe(available=remaining, capacity=bucket, per_second=per_second)

    def detail(self, response: requests.Response) -> str:
        """`category` and `subCategory`, never `message` (it may quote an email address)."""
        body = json_object(response)
        detail = " ".join(str(body[key]) for key in ("category", "subCategory") if body.get(key))
        return detail or "no error category"

    def error(self, response: requests.Response, call: Call, limiter: RateLimiter) -> ConnectorError:
        """A 429 waits as long as its policy needs; a 409 names the contact that already exists."""
        error = super().error(response, call, limiter)
        body = json_object(response)
        where = f"{self.where(call)}: HTTP {response.status_code}"
        if isinstance(error, ThrottledError):
            policy = str(body.get("policyName") or "")
            if error.retry_after is None:
                error.retry_after = POLICY_WAIT_SECONDS.get(policy, 1.0)
                if policy in SHARED_POLICIES:
                    limiter.pause(error.retry_after)
            if policy:
                error.args = (f"{where}: {policy}",)
        refused = refused_by_rules(body) if response.status_code == 400 else []
        if refused:
            return ValidationRuleRefused(
                f"{where}: {rule_refusal_text(refused)}", system=SYSTEM, status=response.status_code
            )
        if isinstance(error, ConflictError):
            found = _EXISTING_ID.search(str(body.get("message", "")))
            error.existing_id = found.group(1) if found else None
            if found:
                error.args = (f"{where}: {self.detail(response)} (existing id {error.existing_id})",)
        return error


def batch_error(errors: list[Any], emails: list[str], offset: int) -> ConnectorError:
    """One error for the failed inputs of a batch (HTTP 207): permanent if any is, else transient."""
    categories = sorted({str(entry.get("category")) for entry in errors if isinstance(entry, dict)})
    failed: set[int] = set()
    for entry in errors:
        context = entry.get("context") if isinstance(entry, dict) else None
        ids = context.get("ids") or [] if isinstance(context, dict) else []
        named = [canonical_email(str(email)) for email in ids]
        failed.update(offset + emails.index(email) for email in named if email in emails)
    # Positions in the caller's sequence, not the addresses themselves.
    where = f"inputs {sorted(failed)}" if failed else f"{len(errors)} inputs"
    message = f"{SYSTEM} batch upsert: {where} failed: {', '.join(categories)}"
    entries = [entry for entry in errors if isinstance(entry, dict)]
    refused = sorted({name for entry in entries for name in refused_by_rules(entry)})
    if refused:
        return ValidationRuleRefused(f"{message}: {rule_refusal_text(refused)}", system=SYSTEM, status=207)
    if all(category in TRANSIENT_CATEGORIES for category in categories):
        return TransientError(message, system=SYSTEM, status=207)
    return PermanentError(message, system=SYSTEM, status=207)
