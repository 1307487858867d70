"""HubSpot CRM v3 contacts: the marketing mirror of our members, keyed by email.

Vendor reference: https://developers.hubspot.com/docs/api/crm/contacts (objects, batch upsert),
https://developers.hubspot.com/docs/api/crm/search and, for the limits and their headers,
https://developers.hubspot.com/docs/api/usage-details. Messages of the errors raised here carry
categories, ids and positions only: HubSpot's own wording may quote an email address.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from config.settings import Settings
from connectors.errors import ConflictError, ConnectorError, PermanentError, ThrottledError, TransientError
from connectors.http import HttpClient, Timeouts
from connectors.ratelimit import RateLimiter
from connectors.tokenbucket import rolling_window_bucket

CONTACTS = "/crm/v3/objects/contacts"
MAX_BATCH_INPUTS = 100
MAX_LIST_LIMIT = 100
MAX_SEARCH_LIMIT = 200
DEFAULT_PROPERTIES = ("email", "firstname", "lastname", "phone")
# Every status comes back to us; `_send` decides what is a success (see HttpClient.request).
ANY_STATUS = range(100, 600)
# Waits when a 429 names its policy but gives no Retry-After. The daily cap resets at midnight in the
# portal's time zone, which we do not know: an hour, and the step's retry budget absorbs the rest.
POLICY_WAIT_SECONDS = {"TEN_SECONDLY_ROLLING": 1.0, "SECONDLY": 1.0, "DAILY": 3600.0}
# Policies that stop every HubSpot call, not just searches (SECONDLY is the search endpoint's own limit).
SHARED_POLICIES = frozenset({"TEN_SECONDLY_ROLLING", "DAILY"})
# Batch error categories worth retrying; any other category of a failed input is permanent.
TRANSIENT_CATEGORIES = frozenset(
    {"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT", "LOCKED"}
)
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


@dataclass(frozen=True)
class HubSpotContact:
    """A contact as HubSpot answered it; `created` is batch upsert's `new`."""

    id: str
    email: str | None
    properties: Mapping[str, str | None] = field(hash=False)
    created: bool = False

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> HubSpotContact:
        """A contact from one object of an answer (`id`, `properties`, and `new` from batch upsert)."""
        properties = dict(record.get("properties") or {})
        return cls(
            id=str(record["id"]),
            email=properties.get("email") or None,
            properties=properties,
            created=bool(record.get("new", False)),
        )


class HubSpotClient:
    """Contacts of one HubSpot portal, through a private app's access token."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @classmethod
    def from_settings(cls, settings: Settings, *, limiter: RateLimiter | None = None) -> HubSpotClient:
        """The client for the configured portal; without a token every call raises PermanentError."""
        token = settings.hubspot_access_token.value
        return cls(
            HttpClient(
                system="hubspot",
                base_url=settings.hubspot_api_url,
                timeouts=Timeouts(settings.http_connect_timeout_seconds, settings.http_read_timeout_seconds),
                headers={"Authorization": f"Bearer {token}"} if token else {},
                limiter=limiter,
            )
        )

    def upsert_contacts(self, contacts: Sequence[Mapping[str, str]]) -> list[HubSpotContact]:
        """Create or update contacts by their `email` property (docs/api/crm/contacts: batch/upsert)."""
        emails = [contact.get("email", "").strip().lower() for contact in contacts]
        if not all(emails):
            raise ValueError("every contact to upsert needs an email property")
        if len(set(emails)) != len(emails):
            raise ValueError("an upsert batch may name each email once")  # HubSpot refuses the batch
        upserted: list[HubSpotContact] = []
        for start in range(0, len(contacts), MAX_BATCH_INPUTS):
            batch = contacts[start : start + MAX_BATCH_INPUTS]
            inputs = [
                {"id": contact["email"].strip(), "idProperty": "email", "properties": dict(contact)}
                for contact in batch
            ]
            response = self._send(
                "POST", f"{CONTACTS}/batch/upsert", ok=(200, 201, 207), json={"inputs": inputs}
            )
            answer = _json_object(response)
            if answer.get("errors"):
                raise _batch_error(answer["errors"], emails[start : start + MAX_BATCH_INPUTS], start)
            upserted.extend(HubSpotContact.from_api(record) for record in answer.get("results") or [])
        return upserted

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact:
        """Create or update one contact by email (docs/api/crm/contacts: batch/upsert, one input)."""
        results = self.upsert_contacts([{**properties, "email": email}])
        if len(results) != 1:
            raise TransientError(
                f"hubspot batch upsert answered {len(results)} results for 1", system="hubspot"
            )
        return results[0]

    def create_contact(self, properties: Mapping[str, str]) -> HubSpotContact:
        """Create a contact; ConflictError.existing_id names a holder (docs/api/crm/contacts: create)."""
        response = self._send("POST", CONTACTS, ok=(200, 201), json={"properties": dict(properties)})
        return HubSpotContact.from_api(_json_object(response))

    def get_contact(
        self, contact_id: str, *, properties: Sequence[str] = DEFAULT_PROPERTIES
    ) -> HubSpotContact | None:
        """One contact by id, or None (docs/api/crm/contacts: GET /crm/v3/objects/contacts/{id})."""
        response = self._send(
            "GET",
            f"{CONTACTS}/{quote(contact_id, safe='')}",
            ok=(200, 404),
            params={"properties": ",".join(properties)},
        )
        return None if response.status_code == 404 else HubSpotContact.from_api(_json_object(response))

    def search_contacts_by_email(
        self, email: str, *, properties: Sequence[str] = DEFAULT_PROPERTIES
    ) -> list[HubSpotContact]:
        """Contacts whose email equals this one, any case (docs/api/crm/search: EQ filter)."""
        found: list[HubSpotContact] = []
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": list(properties),
                "limit": MAX_SEARCH_LIMIT,
            }
            if after is not None:
                body["after"] = after
            answer = _json_object(self._send("POST", f"{CONTACTS}/search", json=body))
            found.extend(HubSpotContact.from_api(record) for record in answer.get("results") or [])
            after = _next_after(answer)
            if after is None:
                return found

    def iter_contacts(
        self, *, properties: Sequence[str] = DEFAULT_PROPERTIES, page_size: int = MAX_LIST_LIMIT
    ) -> Iterator[HubSpotContact]:
        """Every contact, page by page (docs/api/crm/contacts: GET /crm/v3/objects/contacts)."""
        if not 0 < page_size <= MAX_LIST_LIMIT:
            raise ValueError(f"page_size must be 1 to {MAX_LIST_LIMIT}")
        # The list endpoint rather than search: search stops at 10,000 results, a reconciliation must not.
        params = {"limit": str(page_size), "properties": ",".join(properties), "archived": "false"}
        after: str | None = None
        while True:
            query = {**params, "after": after} if after is not None else params
            answer = _json_object(self._send("GET", CONTACTS, params=query))
            yield from (HubSpotContact.from_api(record) for record in answer.get("results") or [])
            after = _next_after(answer)
            if after is None:
                return

    def _send(
        self, method: str, path: str, *, ok: Sequence[int] = (200, 201, 204), **kwargs: Any
    ) -> requests.Response:
        """One API request; paces the shared limit by HubSpot's headers and raises our errors."""
        if not self.http.session.headers.get("Authorization"):
            raise PermanentError("HubSpot has no access token: set HUBSPOT_ACCESS_TOKEN", system="hubspot")
        response = self.http.request(method, path, ok=ANY_STATUS, **kwargs)
        self._observe(response)
        if response.status_code in ok:
            return response
        raise self._error(response, f"hubspot {method} {urlsplit(self.http.url(path)).path}")

    def _observe(self, response: requests.Response) -> None:
        """Correct the shared bucket from X-HubSpot-RateLimit-* (on every answer, errors included)."""
        headers = response.headers
        try:
            remaining = float(headers["X-HubSpot-RateLimit-Remaining"])
            capacity = float(headers["X-HubSpot-RateLimit-Max"])
            interval_seconds = float(headers["X-HubSpot-RateLimit-Interval-Milliseconds"]) / 1000
        except (KeyError, ValueError):
            return  # an answer without them (a proxy's, a timeout page): nothing to learn
        if interval_seconds <= 0 or capacity < 4:
            self.http.limiter.observe(available=remaining)
            return
        # The plan's real size, as a bucket that never exceeds it in any rolling window (a bucket
        # of Max refilling at Max/interval would allow twice Max per window).
        bucket, per_second = rolling_window_bucket(capacity, interval_seconds)
        self.http.limiter.observe(available=remaining, capacity=bucket, per_second=per_second)

    def _error(self, response: requests.Response, where: str) -> ConnectorError:
        """The error for a failed answer; its message holds HubSpot's category, not its wording."""
        body = _json_or_empty(response)
        error = self.http.classify(response, where)  # also pauses the rate limit on 429 + Retry-After
        policy = str(body.get("policyName") or "")
        detail = " ".join(str(body[key]) for key in ("category", "subCategory") if body.get(key))
        if isinstance(error, ThrottledError):
            detail = policy or detail
            if error.retry_after is None:
                error.retry_after = POLICY_WAIT_SECONDS.get(policy, 1.0)
                if policy in SHARED_POLICIES:
                    self.http.limiter.pause(error.retry_after)
        if isinstance(error, ConflictError):
            found = _EXISTING_ID.search(str(body.get("message", "")))
            error.existing_id = found.group(1) if found else None
            detail = f"{detail} (existing id {error.existing_id})" if found else detail
        error.args = (f"{where}: HTTP {response.status_code}: {detail or 'no error category'}",)
        return error


def _batch_error(errors: list[Any], emails: list[str], offset: int) -> ConnectorError:
    """One error for the failed inputs of a batch: permanent if any of them is, else transient."""
    categories = sorted({str(entry.get("category")) for entry in errors if isinstance(entry, dict)})
    failed: set[int] = set()
    for entry in errors:
        context = entry.get("context") if isinstance(entry, dict) else None
        ids = context.get("ids") or [] if isinstance(context, dict) else []
        named = [str(email).strip().lower() for email in ids]
        failed.update(offset + emails.index(email) for email in named if email in emails)
    # Positions in the caller's sequence, not the addresses themselves.
    where = f"inputs {sorted(failed)}" if failed else f"{len(errors)} inputs"
    message = f"hubspot batch upsert: {where} failed: {', '.join(categories)}"
    if all(category in TRANSIENT_CATEGORIES for category in categories):
        return TransientError(message, system="hubspot", status=207)
    return PermanentError(message, system="hubspot", status=207)


def _next_after(answer: Mapping[str, Any]) -> str | None:
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _json_object(response: requests.Response) -> dict[str, Any]:
    body = _json_or_empty(response)
    if not body:
        # A 2xx that is not HubSpot's JSON comes from a proxy or an outage page: try again later.
        raise TransientError("hubspot: an answer is not a JSON object", system="hubspot")
    return body
