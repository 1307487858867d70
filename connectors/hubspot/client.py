"""HubSpot CRM contacts: the marketing mirror of our members, keyed by email; and their consent.

Vendor reference: https://developers.hubspot.com/docs/api/crm/contacts (objects, batch upsert) and
https://developers.hubspot.com/docs/api/crm/search. The paths carry the API version
HUBSPOT_API_VERSION names (`/crm/objects/2026-09/contacts`, or the legacy `/crm/v3/objects/contacts`:
`connectors.hubspot.paths`). What HubSpot's answers mean, its rate-limit headers and its validation
rules included, is read in `connectors.hubspot.answers`. The member facts travel in Membersync's own
custom properties, created before the first write that carries one (`connectors.hubspot.properties`).
Marketing consent never travels as a contact property: it goes through the Communication Preferences
API (`connectors.hubspot.subscriptions` says which facts are confirmed), and a contact write naming a
marketing-status property is refused before it is sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from config.email_address import canonical_email
from config.settings import Settings
from connectors.errors import ConflictError, NotFoundError, PermanentError, TransientError
from connectors.http import HttpClient, Timeouts, credentials_refusal, json_body, json_object
from connectors.hubspot.answers import SYSTEM, HubSpotPolicy, batch_error
from connectors.hubspot.paths import DEFAULT_VERSION, CrmPaths
from connectors.hubspot.properties import MEMBER_PROPERTIES, names_member_property
from connectors.hubspot.subscriptions import (
    LEGAL_BASES,
    NOT_SUBSCRIBED,
    PREFERENCES,
    SubscriptionDefinition,
    SubscriptionRefused,
    SubscriptionStatus,
    marketing_subscription,
    refuse_marketing_properties,
)
from connectors.ratelimit import RateLimiter

MAX_BATCH_INPUTS = 100
MAX_LIST_LIMIT = 100
MAX_SEARCH_LIMIT = 200
DEFAULT_PROPERTIES = ("email", "firstname", "lastname", "phone")


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
    """Contacts of one HubSpot portal, through a service key (or a legacy private app's token)."""

    def __init__(
        self, http: HttpClient, *, subscription_id: str | None = None, api_version: str = DEFAULT_VERSION
    ) -> None:
        self.http = http.using(HubSpotPolicy)
        # HUBSPOT_SUBSCRIPTION_ID, else learnt once from the portal's definitions.
        self.subscription_id = subscription_id
        self.paths = CrmPaths(api_version)
        # Membersync's custom properties are known to exist (ensured once per client).
        self._member_properties_ensured = False

    @classmethod
    def from_settings(cls, settings: Settings, *, limiter: RateLimiter | None = None) -> HubSpotClient:
        """The client for the configured portal; without a token every call raises PermanentError."""
        token = settings.hubspot_access_token.value
        return cls(
            HttpClient(
                system=SYSTEM,
                base_url=settings.hubspot_api_url,
                timeouts=Timeouts(settings.http_connect_timeout_seconds, settings.http_read_timeout_seconds),
                headers={"Authorization": f"Bearer {token}"} if token else {},
                limiter=limiter,
                policy=HubSpotPolicy(),
                refusal=credentials_refusal("HubSpot", {"HUBSPOT_ACCESS_TOKEN": token}),
            ),
            subscription_id=settings.hubspot_subscription_id,
            api_version=settings.hubspot_api_version,
        )

    def ensure_member_properties(self) -> None:
        """Create Membersync's contact properties (member number, points, rank) where missing.

        `POST /crm/properties/<version>/contacts` for each (scope crm.schemas.contacts.write); a 409
        means it exists already (an earlier run, another worker, an admin). Done once per client.
        """
        if self._member_properties_ensured:
            return
        for definition in MEMBER_PROPERTIES:
            try:
                self.http.request("POST", self.paths.properties, ok=(200, 201), json=definition.as_api())
            except ConflictError:
                pass  # already there: what we wanted
            except PermanentError as refused:
                if refused.status != 403:
                    raise
                raise PermanentError(
                    f"{refused}; creating the member properties needs the crm.schemas.contacts.write scope",
                    system=SYSTEM,
                    status=403,
                ) from None
        self._member_properties_ensured = True

    def upsert_contacts(self, contacts: Sequence[Mapping[str, str]]) -> list[HubSpotContact]:
        """Create or update contacts by their `email` property (docs/api/crm/contacts: batch/upsert)."""
        emails = [canonical_email(contact.get("email", "")) for contact in contacts]
        if not all(emails):
            raise ValueError("every contact to upsert needs an email property")
        if len(set(emails)) != len(emails):
            raise ValueError("an upsert batch may name each email once")  # HubSpot refuses the batch
        refuse_marketing_properties(name for contact in contacts for name in contact)
        if names_member_property(name for contact in contacts for name in contact):
            self.ensure_member_properties()
        upserted: list[HubSpotContact] = []
        for start in range(0, len(contacts), MAX_BATCH_INPUTS):
            batch = contacts[start : start + MAX_BATCH_INPUTS]
            inputs = [
                {"id": contact["email"].strip(), "idProperty": "email", "properties": dict(contact)}
                for contact in batch
            ]
            response = self.http.request(
                "POST", f"{self.paths.objects}/batch/upsert", ok=(200, 201, 207), json={"inputs": inputs}
            )
            answer = json_body(response, f"{SYSTEM} batch upsert")
            if answer.get("errors"):
                raise batch_error(answer["errors"], emails[start : start + MAX_BATCH_INPUTS], start)
            upserted.extend(HubSpotContact.from_api(record) for record in answer.get("results") or [])
        return upserted

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact:
        """Create or update one contact by email (docs/api/crm/contacts: batch/upsert, one input).

        Membersync's custom properties (member number, points, rank) are created first if this is the
        client's first write naming one; an admin's validation rule refusing a value raises
        ValidationRuleRefused (permanent).
        """
        results = self.upsert_contacts([{**properties, "email": email}])
        if len(results) != 1:
            raise TransientError(
                f"{SYSTEM} batch upsert answered {len(results)} results for 1", system=SYSTEM
            )
        return results[0]

    def create_contact(self, properties: Mapping[str, str]) -> HubSpotContact:
        """Create a contact; ConflictError.existing_id names a holder (docs/api/crm/contacts: create)."""
        refuse_marketing_properties(properties)
        if names_member_property(properties):
            self.ensure_member_properties()
        response = self.http.request(
            "POST", self.paths.objects, ok=(200, 201), json={"properties": dict(properties)}
        )
        return HubSpotContact.from_api(json_body(response, f"{SYSTEM} create"))

    def get_contact(
        self,
        contact_id: str,
        *,
        properties: Sequence[str] = DEFAULT_PROPERTIES,
        extra_properties: Sequence[str] = (),
    ) -> HubSpotContact | None:
        """One contact by id, or None (docs/api/crm/contacts: GET .../contacts/{id}).

        None only for HubSpot's OBJECT_NOT_FOUND: a 404 for the path itself (an API version HubSpot
        does not serve) raises NotFoundError rather than pass for a missing contact.
        """
        response = self.http.request(
            "GET",
            f"{self.paths.objects}/{quote(contact_id, safe='')}",
            ok=(200, 404),
            params={"properties": ",".join(_names(properties, extra_properties))},
        )
        if response.status_code == 404:
            if json_object(response).get("category") == "OBJECT_NOT_FOUND":
                return None
            raise NotFoundError(
                f"{SYSTEM} GET {self.paths.objects}/{{id}}: HTTP 404 for the path: is HubSpot API "
                f"version {self.paths.version} (HUBSPOT_API_VERSION) served?",
                system=SYSTEM,
                status=404,
            )
        return HubSpotContact.from_api(json_body(response, f"{SYSTEM} get"))

    def search_contacts_by_email(
        self,
        email: str,
        *,
        properties: Sequence[str] = DEFAULT_PROPERTIES,
        extra_properties: Sequence[str] = (),
    ) -> list[HubSpotContact]:
        """Contacts whose email equals this one, any case (docs/api/crm/search: EQ filter)."""
        found: list[HubSpotContact] = []
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": _names(properties, extra_properties),
                "limit": MAX_SEARCH_LIMIT,
            }
            if after is not None:
                body["after"] = after
            response = self.http.request("POST", f"{self.paths.objects}/search", json=body)
            answer = json_body(response, f"{SYSTEM} search")
            found.extend(HubSpotContact.from_api(record) for record in answer.get("results") or [])
            after = _next_after(answer)
            if after is None:
                return found

    def iter_contacts(
        self,
        *,
        properties: Sequence[str] = DEFAULT_PROPERTIES,
        extra_properties: Sequence[str] = (),
        page_size: int = MAX_LIST_LIMIT,
    ) -> Iterator[HubSpotContact]:
        """Every contact, page by page (docs/api/crm/contacts: GET .../contacts); `extra_properties`
        adds names to `properties` (reconciliation reads the member facts' custom properties)."""
        if not 0 < page_size <= MAX_LIST_LIMIT:
            raise ValueError(f"page_size must be 1 to {MAX_LIST_LIMIT}")
        # The list endpoint rather than search: search stops at 10,000 results, a reconciliation must not.
        names = ",".join(_names(properties, extra_properties))
        params = {"limit": str(page_size), "properties": names, "archived": "false"}
        after: str | None = None
        while True:
            query = {**params, "after": after} if after is not None else params
            answer = json_body(self.http.request("GET", self.paths.objects, params=query), f"{SYSTEM} list")
            yield from (HubSpotContact.from_api(record) for record in answer.get("results") or [])
            after = _next_after(answer)
            if after is None:
                return

    def check(self) -> None:
        """One contact read (`membersync check`): proves the token and the crm.objects.contacts.read
        scope, on the configured API version (docs/api/crm/contacts: GET .../contacts?limit=1)."""
        json_body(self.http.request("GET", self.paths.objects, params={"limit": "1"}), f"{SYSTEM} list")

    # --- marketing consent: the Communication Preferences API (v3) ---------------------------------

    def subscription_definitions(self) -> list[SubscriptionDefinition]:
        """The portal's subscription types (GET /communication-preferences/v3/definitions)."""
        response = self.http.request("GET", f"{PREFERENCES}/definitions")
        answer = json_body(response, f"{SYSTEM} subscription definitions")
        records = answer.get("subscriptionDefinitions") or []
        return [SubscriptionDefinition.from_api(record) for record in records if isinstance(record, Mapping)]

    def marketing_subscription_id(self) -> str:
        """HUBSPOT_SUBSCRIPTION_ID, else the portal's one active, non-internal subscription type.

        NoSubscriptionType (permanent) when the portal has none or several: a person must choose.
        """
        if not self.subscription_id:
            self.subscription_id = marketing_subscription(self.subscription_definitions())
        return self.subscription_id

    def subscription_status(self, email: str) -> SubscriptionStatus:
        """The address's status for the marketing subscription type (GET .../status/email/{address}).

        A subscription type the answer does not list, or an address HubSpot does not know (404,
        UNCONFIRMED whether it answers so), is NOT_SUBSCRIBED.
        """
        subscription_id = self.marketing_subscription_id()
        response = self.http.request(
            "GET", f"{PREFERENCES}/status/email/{quote(email.strip(), safe='@')}", ok=(200, 404)
        )
        if response.status_code == 404:
            return SubscriptionStatus(subscription_id, NOT_SUBSCRIBED)
        answer = json_body(response, f"{SYSTEM} subscription status")
        statuses = [
            SubscriptionStatus.from_api(record)
            for record in answer.get("subscriptionStatuses") or []
            if isinstance(record, Mapping)
        ]
        found = next((status for status in statuses if status.subscription_id == subscription_id), None)
        return found or SubscriptionStatus(subscription_id, NOT_SUBSCRIBED)

    def subscribe(self, email: str, *, legal_basis: str, explanation: str) -> SubscriptionStatus:
        """Subscribe the address to the marketing subscription type, with the legal basis shown.

        POST /communication-preferences/v3/subscribe. Only for an owner who confirmed (double
        opt-in). Idempotent: after a 400 (already subscribed, or a refusal) the status is read back;
        SUBSCRIBED is success, anything else SubscriptionRefused (v3 never resubscribes an address
        that opted out).
        """
        if legal_basis not in LEGAL_BASES:
            raise ValueError(f"legal basis {legal_basis!r} is not one of {sorted(LEGAL_BASES)}")
        if not explanation.strip():
            raise ValueError("a subscription needs the legal basis explained (what the owner agreed to)")
        body = self._status_change(email, legal_basis=legal_basis, explanation=explanation)
        return self._change_status("subscribe", body, wanted_subscribed=True)

    def unsubscribe(
        self, email: str, *, explanation: str, legal_basis: str | None = None
    ) -> SubscriptionStatus:
        """Unsubscribe the address from the marketing subscription type (the owner withdrew).

        POST /communication-preferences/v3/unsubscribe. Idempotent like `subscribe`: after a 400
        the status is read back, and NOT_SUBSCRIBED is success. An unsubscribe cannot be undone
        through v3.
        """
        if legal_basis is not None and legal_basis not in LEGAL_BASES:
            raise ValueError(f"legal basis {legal_basis!r} is not one of {sorted(LEGAL_BASES)}")
        body = self._status_change(email, legal_basis=legal_basis, explanation=explanation)
        return self._change_status("unsubscribe", body, wanted_subscribed=False)

    def _status_change(self, email: str, *, legal_basis: str | None, explanation: str) -> dict[str, str]:
        body = {"emailAddress": email.strip(), "subscriptionId": self.marketing_subscription_id()}
        if legal_basis is not None:
            body["legalBasis"] = legal_basis
        if explanation.strip():
            body["legalBasisExplanation"] = explanation.strip()
        return body

    def _change_status(
        self, verb: str, body: dict[str, str], *, wanted_subscribed: bool
    ) -> SubscriptionStatus:
        try:
            response = self.http.request("POST", f"{PREFERENCES}/{verb}", json=body)
        except PermanentError as refused:
            if refused.status != 400:
                raise
            # Never decided by HubSpot's wording (UNCONFIRMED): by what the address's status is now.
            current = self.subscription_status(body["emailAddress"])
            if current.subscribed == wanted_subscribed:
                return current
            raise SubscriptionRefused(
                f"{refused}; the address stays {current.status} for subscription "
                f"{current.subscription_id} (source {current.source_of_status or 'unknown'})"
                + (
                    "; HubSpot's v3 API never resubscribes an address that opted out"
                    if wanted_subscribed
                    else ""
                ),
                system=SYSTEM,
                status=400,
            ) from None
        return SubscriptionStatus.from_api(json_body(response, f"{SYSTEM} {verb}", required=("id",)))


def _names(properties: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The property names to read, each once, in the order given."""
    return list(dict.fromkeys([*properties, *extra]))


def _next_after(answer: Mapping[str, Any]) -> str | None:
    after = ((answer.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None
