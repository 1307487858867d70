"""HubSpot CRM contacts emulator (default port 8013): create, read, list, update, batch upsert, search,
the Properties API and the admin's validation rules (`sandbox.hubspot_properties`), and the
Communication Preferences calls marketing consent goes through (`sandbox.hubspot_subscriptions`).

Every contacts call answers on the legacy path `/crm/v3/objects/contacts...` and on HubSpot's
date-versioned path `/crm/objects/<version>/contacts...` with the same bodies; a date version the
portal does not serve (only 2026-03 and 2026-09 exist) is a 404, the path being unknown to HubSpot.

`create_app(HubSpotSettings(...))` builds the Flask app; serve it with `sandbox.common.ThreadedServer`.
Errors use HubSpot's body `{"status": "error", "message", "correlationId", "category", ...}`; every API
response carries the X-HubSpot-RateLimit-* headers of a rolling ten-second window. Read-only and
calculated properties (the marketing status among them) are refused on every write, as HubSpot does.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.common import (
    DuplicateKeyError,
    Record,
    RecordStore,
    RollingWindowLimiter,
    answer_at_once,
    install_controls,
)
from sandbox.hubspot_properties import PropertyBook, definition, install_properties
from sandbox.hubspot_subscriptions import (
    DEFAULT_SUBSCRIPTION_TYPES,
    SubscriptionBook,
    SubscriptionType,
    install_subscriptions,
)

CONTACTS = "/crm/v3/objects/contacts"
DATED_CONTACTS = "/crm/objects/<version>/contacts"
LEGACY_VERSION = "v3"
# From this date version on, required-property rules are enforced on writes (HubSpot's changelog).
REQUIRED_RULES_FROM = "2026-09"
# The paths that need the token and count against the rate limit.
API_PREFIXES = ("/crm/", "/communication-preferences/")
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
# Properties HubSpot computes itself; clients may read but not write them.
COMPUTED_PROPERTIES = frozenset({"createdate", "hs_object_id", "lastmodifieddate"})
# Marketing status: "It is not possible to modify the Marketing contact status property
# [hs_marketable_status] using HubSpot's API" (HubSpot knowledge base), nor its reason properties;
# "Unsubscribed from all email" (hs_email_optout) and the per-subscription hs_email_optout_<id> are
# read-only values too (their definitions say so; UNCONFIRMED beyond that). Consent goes through the
# Communication Preferences API.
MARKETING_STATUS_PROPERTIES = frozenset(
    {"hs_marketable_status", "hs_marketable_reason_id", "hs_marketable_reason_type", "hs_email_optout"}
)
READ_ONLY_PROPERTIES = COMPUTED_PROPERTIES | MARKETING_STATUS_PROPERTIES
_PER_SUBSCRIPTION_OPTOUT = re.compile(r"hs_email_optout_\d+")
# A subset of HubSpot's default contact properties: enough for a membership sync.
STANDARD_PROPERTIES = frozenset(
    {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "address",
        "city",
        "state",
        "zip",
        "country",
        "company",
        "website",
        "jobtitle",
        "lifecyclestage",
        "hs_language",
        "date_of_birth",
        "gender",
        "hs_lead_status",
    }
)
SEARCH_OPERATORS = frozenset({"EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"})
MAX_SEARCH_LIMIT = 200
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100
MAX_BATCH_INPUTS = 100
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGITS = re.compile(r"[0-9]{1,18}")  # ids and limits; int() of thousands of digits raises
ViewFunction = Callable[..., Response]


@dataclass
class HubSpotSettings:
    """Access token, custom properties and rate limits of the emulator."""

    access_token: str = "pat-sandbox"
    # Custom properties a portal would define for us; anything else is PROPERTY_DOESNT_EXIST.
    custom_properties: frozenset[str] = field(
        default_factory=lambda: frozenset(
            {
                "firstname_kana",
                "lastname_kana",
                "membersync_registration_id",
                "shopify_customer_id",
                "smaregi_customer_id",
                "postal_code",
            }
        )
    )
    # 100 per ten seconds is the Free/Starter private-app figure, from a secondary source.
    requests_per_window: int = 100
    window_ms: int = 10_000
    daily_limit: int = 250_000
    search_per_second: int = 4
    # The portal's subscription types (marketing consent goes to the one that is not internal).
    subscription_types: tuple[SubscriptionType, ...] = DEFAULT_SUBSCRIPTION_TYPES
    # A GDPR-enabled portal wants a legal basis and its explanation on every subscribe.
    gdpr_enabled: bool = True
    # The date versions HubSpot serves (besides the legacy v3 paths); any other is a 404.
    api_versions: frozenset[str] = frozenset({"2026-03", "2026-09"})


def hubspot_error(status: int, category: str, message: str, **extra: Any) -> Response:
    """An error in HubSpot's shape, with a fresh correlation id."""
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    response = jsonify({**body, **extra})
    response.status_code = status
    return response


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _email_key(contact: Record) -> str | None:
    email = contact["properties"].get("email")
    return email.lower() if email else None


class InvalidProperties(Exception):
    """Property values HubSpot would refuse; carries its per-property error list."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"Property values were not valid: {json.dumps(errors)}")
        self.errors = errors


def portal_properties(settings: HubSpotSettings) -> PropertyBook:
    """The portal's property definitions before anyone creates one: HubSpot's standard and computed
    properties and the custom ones `settings` names."""
    builtin = [
        *(definition(name) for name in sorted(STANDARD_PROPERTIES)),
        *(definition(name, read_only=True) for name in sorted(COMPUTED_PROPERTIES)),
        *(definition(name, hubspot_defined=False) for name in sorted(settings.custom_properties)),
    ]
    return PropertyBook(builtin)


class ContactBook:
    """The contacts of one portal, with HubSpot's rules for writing properties."""

    def __init__(self, settings: HubSpotSettings, properties: PropertyBook | None = None) -> None:
        self.properties = properties or portal_properties(settings)
        self.store = RecordStore(unique={"email": _email_key})

    def clean(self, properties: Any) -> dict[str, str]:
        """Properties as HubSpot stores them (strings); raises InvalidProperties."""
        if not isinstance(properties, dict):
            raise InvalidProperties([{"isValid": False, "message": "properties must be an object"}])
        errors: list[dict[str, Any]] = []
        cleaned: dict[str, str] = {}
        for name, value in properties.items():
            if is_read_only(name):
                # The message names the property; HubSpot's exact wording is UNCONFIRMED.
                message = f'"{name}" is a read only property; its value cannot be set.'
                errors.append(_property_error(name, "READ_ONLY_VALUE", message))
            elif not self.properties.exists(name):
                errors.append(
                    _property_error(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
            elif value is not None and not isinstance(value, str | int | float | bool):
                errors.append(_property_error(name, "INVALID_TYPE", f"{name} must be a string or number"))
            elif name == "email" and value and not _EMAIL.fullmatch(str(value)):
                errors.append(_property_error(name, "INVALID_EMAIL", "Email address is invalid"))
            else:
                cleaned[name] = _property_text(value)
        if errors:
            raise InvalidProperties(errors)
        return cleaned

    def check_rules(self, written: dict[str, str], stored: Record | None, version: str) -> None:
        """Raise InvalidProperties when the admin's validation rules refuse this write."""
        enforce_required = version != LEGACY_VERSION and version >= REQUIRED_RULES_FROM
        current = stored["properties"] if stored is not None else {}
        errors = self.properties.violations(written, current, enforce_required=enforce_required)
        if errors:
            raise InvalidProperties(errors)

    def create(self, properties: dict[str, str]) -> Record:
        """Store a new contact; raises DuplicateKeyError on a known email."""
        stamp = _now()
        with self.store.lock:  # nobody may see the contact before its computed properties are set
            contact = self.store.insert(
                {"properties": properties, "createdAt": stamp, "updatedAt": stamp, "archived": False}
            )
            return self.store.update(contact["id"], _stamped)

    def update(self, contact_id: str, properties: dict[str, str]) -> Record:
        """Merge properties into a contact; KeyError if unknown, DuplicateKeyError on a taken email."""

        def merge(contact: Record) -> Record:
            return _stamped(
                {**contact, "updatedAt": _now(), "properties": {**contact["properties"], **properties}}
            )

        return self.store.update(contact_id, merge)

    def find(self, contact_id: str, id_property: str | None) -> Record | None:
        """A contact by its id or, with idProperty=email, by its email."""
        if id_property == "email":
            return self.store.find("email", contact_id.lower())
        return self.store.get(contact_id)

    def page(self, first_id: int, limit: int) -> tuple[list[Record], int | None]:
        """Up to `limit` contacts from id `first_id` on, by id ascending, and the id the next page starts at.

        Reads O(limit) records however many the book holds: store ids run 1..len(store) without gaps (the
        store never deletes, and an insert refused by a unique index takes no id), so a page is read by id
        and contacts created meanwhile only ever come after every id already handed out.
        """
        found: list[Record] = []
        with self.store.lock:  # a contact being created is seen with its computed properties or not at all
            last = len(self.store)
            next_id = max(first_id, 1)
            while len(found) < limit and next_id <= last:
                contact = self.store.get(str(next_id))
                next_id += 1
                if contact is not None:
                    found.append(contact)
        return found, (next_id if next_id <= last else None)


def is_read_only(name: str) -> bool:
    """Whether HubSpot refuses a write of this contact property (computed, or a marketing status)."""
    return name in READ_ONLY_PROPERTIES or bool(_PER_SUBSCRIPTION_OPTOUT.fullmatch(name))


def _property_error(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name}


def _property_text(value: str | float | bool | None) -> str:
    """HubSpot stores every property value as text; booleans as "true"/"false"."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _stamped(contact: Record) -> Record:
    """The contact with HubSpot's computed properties refreshed."""
    computed = {
        "hs_object_id": contact["id"],
        "createdate": contact["createdAt"],
        "lastmodifieddate": contact["updatedAt"],
    }
    return {**contact, "properties": {**contact["properties"], **computed}}


def shown(contact: Record, properties: Iterable[str] | None) -> Record:
    """A contact as the API answers it, with the requested properties (HubSpot's defaults otherwise)."""
    names = list(DEFAULT_PROPERTIES if properties is None else {*properties, *COMPUTED_PROPERTIES})
    return {**contact, "properties": {name: contact["properties"].get(name) for name in sorted(names)}}


def matches(contact: Record, group: Mapping[str, Any]) -> bool:
    """Whether every filter of a filter group holds (text compared case-insensitively, as HubSpot does)."""
    for search_filter in group.get("filters", []):
        value = contact["properties"].get(search_filter.get("propertyName"))
        actual = value.lower() if value else None
        wanted = str(search_filter.get("value", "")).lower()
        choices = {str(choice).lower() for choice in search_filter.get("values", [])}
        holds = {
            "EQ": actual == wanted,
            "NEQ": actual != wanted,
            "IN": actual in choices,
            "NOT_IN": actual not in choices,
            "HAS_PROPERTY": actual is not None,
            "NOT_HAS_PROPERTY": actual is None,
        }[search_filter["operator"]]
        if not holds:
            return False
    return True


def _search_problem(body: Any) -> str | None:
    """Why a search body is invalid, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    groups = body.get("filterGroups", [])
    if not isinstance(groups, list) or len(groups) > 5:
        return "filterGroups must be a list of at most 5 groups"
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > 6:
            return "each filter group needs a list of at most 6 filters"
        for search_filter in filters:
            if not isinstance(search_filter, dict) or search_filter.get("operator") not in SEARCH_OPERATORS:
                return (
                    f"Unsupported filter {json.dumps(search_filter)}; operators: {sorted(SEARCH_OPERATORS)}"
                )
    limit = body.get("limit", 10)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_SEARCH_LIMIT:
        return f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}"
    if not str(body.get("after", "0")).isdigit():
        return "after must be a paging cursor from a previous response"
    return None


def _candidates(book: ContactBook, groups: list[dict[str, Any]]) -> list[Record]:
    """Contacts matching any group, using the email index for groups with an email EQ filter."""
    if not groups:
        return book.store.all()
    matched: dict[str, Record] = {}
    for group in groups:
        email_filter = next(
            (f for f in group["filters"] if f.get("propertyName") == "email" and f["operator"] == "EQ"), None
        )
        if email_filter is not None:
            found = book.store.find("email", str(email_filter.get("value", "")).lower())
            pool: list[Record] = [found] if found is not None else []
        else:
            pool = book.store.all()
        matched.update((contact["id"], contact) for contact in pool if matches(contact, group))
    return sorted(matched.values(), key=lambda contact: int(contact["id"]))


def create_app(settings: HubSpotSettings | None = None) -> Flask:
    """Build the HubSpot emulator: /crm/v3/objects/contacts... and /_sandbox/."""
    settings = settings or HubSpotSettings()
    app = Flask("sandbox.hubspot")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    book = ContactBook(settings)
    subscriptions = SubscriptionBook(settings.subscription_types)
    crm_route = _crm_router(app)
    window = RollingWindowLimiter(settings.requests_per_window, settings.window_ms / 1000)
    search_window = RollingWindowLimiter(settings.search_per_second, 1.0)
    daily = _DailyCount()

    def reset() -> None:
        book.store.clear()
        book.properties.clear()
        subscriptions.store.clear()
        window.reset()
        search_window.reset()
        daily.reset()

    def ten_secondly_limit() -> Response:
        return hubspot_error(
            429,
            "RATE_LIMITS",
            "You have reached your ten_secondly_rolling limit.",
            errorType="RATE_LIMIT",
            policyName="TEN_SECONDLY_ROLLING",
        )

    install_controls(
        app,
        state=lambda: {
            "contacts": book.store.all(),
            "subscriptions": subscriptions.store.all(),
            "properties": book.properties.created.all(),
            "validation_rules": book.properties.rules.all(),
        },
        reset=reset,
        render_throttle=ten_secondly_limit,
        render_error=lambda: hubspot_error(502, "INTERNAL_ERROR", "The sandbox injected a server error."),
    )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        category = "VALIDATION_ERROR" if exc.code == 400 else exc.name.upper().replace(" ", "_")
        return hubspot_error(exc.code or 500, category, exc.description or exc.name)

    @app.url_value_preprocessor
    def take_version(endpoint: str | None, values: dict[str, Any] | None) -> None:
        # The dated paths' <version>; the legacy paths are v3. Views never see it as an argument.
        dated = values is not None and "version" in values
        g.hubspot_version = values.pop("version") if values is not None and dated else LEGACY_VERSION
        g.hubspot_dated = dated

    @app.before_request
    def authenticate_and_limit() -> Response | None:
        if not request.path.startswith(API_PREFIXES):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), settings.access_token):
            return hubspot_error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        version = api_version()
        if g.get("hubspot_dated", False) and version not in settings.api_versions:
            return hubspot_error(404, "NOT_FOUND", f"API version {version} is not supported for this path")
        if request.endpoint == "search_contacts":
            if not search_window.hit().allowed:
                return hubspot_error(
                    429,
                    "RATE_LIMITS",
                    "You have reached your secondly limit.",
                    errorType="RATE_LIMIT",
                    policyName="SECONDLY",
                )
        elif not window.hit().allowed:
            return ten_secondly_limit()
        daily.add()
        return None

    @app.after_request
    def rate_limit_headers(response: Response) -> Response:
        # Every API answer carries them, injected faults included: a client paces itself by them.
        if request.path.startswith(API_PREFIXES):
            verdict = window.peek()
            response.headers["X-HubSpot-RateLimit-Max"] = str(verdict.limit)
            response.headers["X-HubSpot-RateLimit-Remaining"] = str(verdict.remaining)
            response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(settings.window_ms)
            response.headers["X-HubSpot-RateLimit-Daily"] = str(settings.daily_limit)
            response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                max(0, settings.daily_limit - daily.count)
            )
        return response

    install_subscriptions(app, subscriptions, error=hubspot_error, gdpr_enabled=settings.gdpr_enabled)
    install_properties(app, book.properties, error=hubspot_error)

    @crm_route("", methods=["POST"])
    def create_contact() -> Response:
        """Create a contact (https://developers.hubspot.com/docs/api/crm/contacts)."""
        try:
            properties = book.clean(_json_body().get("properties"))
            book.check_rules(properties, None, api_version())
            contact = book.create(properties)
        except InvalidProperties as exc:
            return _validation_error(exc)
        except DuplicateKeyError as exc:
            return _conflict(exc.existing_id)
        response = jsonify(shown(contact, properties))
        response.status_code = 201
        return response

    @crm_route("", methods=["GET"])
    def list_contacts() -> Response:
        """List contacts by id ascending; `limit`, `after` (the next id), `properties`, `archived`."""
        answer_at_once()  # a read: a timeout-after-commit fault has nothing to commit
        query = _list_query()
        if isinstance(query, str):
            return hubspot_error(400, "VALIDATION_ERROR", query)
        first_id, limit, archived = query
        # No route archives a contact, so the archived listing is always empty.
        page, next_id = ([], None) if archived else book.page(first_id, limit)
        properties = _requested_properties()
        answer: dict[str, Any] = {"results": [shown(contact, properties) for contact in page]}
        if next_id is not None:
            after = str(next_id)
            kept = [(name, value) for name, value in request.args.items(multi=True) if name != "after"]
            link = f"{request.base_url}?{urlencode([*kept, ('after', after)])}"
            answer["paging"] = {"next": {"after": after, "link": link}}
        return jsonify(answer)

    @crm_route("/<contact_id>", methods=["GET"])
    def read_contact(contact_id: str) -> Response:
        """Read a contact by id, or by email with idProperty=email."""
        contact = book.find(contact_id, request.args.get("idProperty"))
        if contact is None:
            return hubspot_error(404, "OBJECT_NOT_FOUND", "resource not found")
        return jsonify(shown(contact, _requested_properties()))

    @crm_route("/<contact_id>", methods=["PATCH"])
    def update_contact(contact_id: str) -> Response:
        """Update a contact's properties by id (or by email with idProperty=email)."""
        contact = book.find(contact_id, request.args.get("idProperty"))
        if contact is None:
            return hubspot_error(404, "OBJECT_NOT_FOUND", "resource not found")
        try:
            properties = book.clean(_json_body().get("properties"))
            book.check_rules(properties, contact, api_version())
            updated = book.update(contact["id"], properties)
        except InvalidProperties as exc:
            return _validation_error(exc)
        except DuplicateKeyError as exc:
            return _conflict(exc.existing_id)
        return jsonify(shown(updated, properties))

    @crm_route("/batch/upsert", methods=["POST"])
    def upsert_contacts() -> Response:
        """Create or update contacts identified by email; per-input failures answer 207."""
        inputs = _json_body().get("inputs")
        if not isinstance(inputs, list) or not 0 < len(inputs) <= MAX_BATCH_INPUTS:
            return hubspot_error(400, "VALIDATION_ERROR", f"inputs must hold 1 to {MAX_BATCH_INPUTS} items")
        emails = [str(item.get("id", "")).lower() for item in inputs if isinstance(item, dict)]
        if len(set(emails)) != len(emails):
            return hubspot_error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        started = _now()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            outcome = _upsert_one(book, item, api_version())
            (errors if "category" in outcome else results).append(outcome)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started}
        body["completedAt"] = _now()
        if errors:
            body |= {"numErrors": len(errors), "errors": errors}
        response = jsonify(body)
        response.status_code = 207 if errors else 200
        return response

    @crm_route("/search", methods=["POST"])
    def search_contacts() -> Response:
        """Search contacts: OR of filter groups, AND inside each; paging by `after`."""
        body = _json_body()
        problem = _search_problem(body)
        if problem:
            return hubspot_error(400, "VALIDATION_ERROR", problem)
        found = _candidates(book, body.get("filterGroups", []))
        offset, limit = int(body.get("after", 0)), body.get("limit", 10)
        page = found[offset : offset + limit]
        properties = body.get("properties") or None
        answer: dict[str, Any] = {"total": len(found), "results": [shown(c, properties) for c in page]}
        if offset + limit < len(found):
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return jsonify(answer)

    return app


def api_version() -> str:
    """The API version of the request being handled: a date from a dated path, else v3."""
    version = g.get("hubspot_version", LEGACY_VERSION)
    return str(version)


def _crm_router(app: Flask) -> Callable[..., Callable[[ViewFunction], ViewFunction]]:
    """`@crm_route(suffix, methods=[...])`: one view on the legacy and the dated contacts path."""

    def crm_route(suffix: str, *, methods: list[str]) -> Callable[[ViewFunction], ViewFunction]:
        def register(view: ViewFunction) -> ViewFunction:
            for prefix in (CONTACTS, DATED_CONTACTS):
                app.add_url_rule(f"{prefix}{suffix}", view.__name__, view, methods=methods)
            return view

        return register

    return crm_route


def _upsert_one(book: ContactBook, item: Any, version: str) -> dict[str, Any]:
    """Upsert one batch input by email: the result (with `new`) or an error entry."""
    email = item.get("id") if isinstance(item, dict) else None
    if not isinstance(email, str) or item.get("idProperty") != "email":
        return _batch_error("VALIDATION_ERROR", 'Each input needs an id and idProperty "email"', email)
    with book.store.lock:  # the lookup and the write must not interleave with another upsert
        try:
            given = item.get("properties", {})
            properties = book.clean({**given, "email": email} if isinstance(given, dict) else given)
            existing = book.store.find("email", email.lower())
            book.check_rules(properties, existing, version)
            if existing is None:
                return {**shown(book.create(properties), properties), "new": True}
            properties.pop("email")  # keep the stored spelling of the address
            return {**shown(book.update(existing["id"], properties), properties), "new": False}
        except InvalidProperties as exc:
            return _batch_error("VALIDATION_ERROR", str(exc), email, errors=exc.errors)


def _batch_error(
    category: str, message: str, email: str | None, *, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    entry = {"status": "error", "category": category, "message": message, "context": {"ids": [email]}}
    return {**entry, "errors": errors} if errors else entry


def _list_query() -> tuple[int, int, bool] | str:
    """(first id, limit, archived) of a list request, or why its query is invalid."""
    limit = request.args.get("limit", str(DEFAULT_LIST_LIMIT))
    if not _DIGITS.fullmatch(limit) or not 0 < int(limit) <= MAX_LIST_LIMIT:
        return f"limit must be an integer from 1 to {MAX_LIST_LIMIT}"
    after = request.args.get("after", "1")
    if not _DIGITS.fullmatch(after):
        return "after must be a paging cursor from a previous response"
    archived = request.args.get("archived", "false").lower()
    if archived not in ("true", "false"):
        return "archived must be true or false"
    return int(after), int(limit), archived == "true"


def _requested_properties() -> list[str] | None:
    names = [name for value in request.args.getlist("properties") for name in value.split(",") if name]
    return names or None


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


def _validation_error(exc: InvalidProperties) -> Response:
    return hubspot_error(400, "VALIDATION_ERROR", str(exc), errors=exc.errors)


def _conflict(existing_id: str) -> Response:
    return hubspot_error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing_id}")


class _DailyCount:
    """Requests counted against the daily cap (never reset by time: a sandbox day lasts until reset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def reset(self) -> None:
        with self._lock:
            self.count = 0
