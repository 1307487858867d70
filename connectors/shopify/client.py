"""Shopify Admin GraphQL client: one method per customer operation.

Requests leave through `connectors.http.HttpClient` (rate limit first, classification after), whose
`ShopifyPolicy` (`connectors.shopify.answers`) reads every failure GraphQL adds to HTTP: top-level
`errors`, a missing `data`, mutations' `userErrors`, and the cost bucket every answer reports.

Cost estimates follow Shopify's calculated query cost (an object 1, a scalar 0, a connection 2 plus
`first` times its node, a mutation 10): https://shopify.dev/docs/api/usage/limits
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Unpack, cast

from config.settings import Settings
from connectors.errors import NotFoundError, PermanentError
from connectors.http import HttpClient, Timeouts, credentials_refusal, json_object
from connectors.ratelimit import RateLimiter
from connectors.shopify import bulk, documents
from connectors.shopify.answers import (
    CONSENT_REFUSED,
    SYSTEM,
    ConsentRefused,
    EmailTaken,
    PhoneTaken,
    ShopifyPolicy,
)
from connectors.shopify.mapping import (
    MEMBER_NUMBER_TYPE,
    SETTABLE_MARKETING_STATES,
    CustomerFields,
    MemberFactValues,
    ShopifyCustomer,
    customer_from_node,
    customer_input,
    fact_metafields,
    fact_values,
    mailing_address,
    marketing_consent,
    same_email,
)

# The errors are read in answers, raised from here.
__all__ = ["ConsentRefused", "EmailTaken", "PhoneTaken", "ShopifyClient"]

MUTATION_COST = 10.0
# A MemberCustomer with its member facts: the customer, its default email, phone and address
# objects, and the three fact metafields.
CUSTOMER_COST = 8.0
# metafieldsSet takes at most this many metafields per call (shopify.dev metafieldsSet).
MAX_METAFIELDS_PER_SET = 25
# The variables of the MemberFacts fragment (documents.MEMBER_FACT_FIELDS).
FACT_VARIABLES = {
    "factsNamespace": documents.MEMBER_FACTS_NAMESPACE,
    "memberNumberKey": documents.MEMBER_FACT_KEYS["member_number"],
    "pointsKey": documents.MEMBER_FACT_KEYS["points"],
    "rankKey": documents.MEMBER_FACT_KEYS["rank"],
}
# Human-readable names of the metafield definitions (shown in the Shopify admin).
FACT_DEFINITION_NAMES = {"member_number": "Member number", "points": "Points", "rank": "Member rank"}
# customerByIdentifier answers one customer or null.
FIND_COST = CUSTOMER_COST
# shop { name }: one object.
SHOP_COST = 1.0


class ShopifyClient:
    """The Admin GraphQL API of one shop; `http` already carries the base URL and the token header."""

    def __init__(self, http: HttpClient, *, api_version: str) -> None:
        self.http = http.using(ShopifyPolicy)
        self.api_version = api_version
        self.path = f"/admin/api/{api_version}/graphql.json"
        # The member facts' metafield definitions are ensured once per client (per process).
        self._definitions_ensured = False
        self._definitions_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, limiter: RateLimiter | None = None) -> ShopifyClient:
        """A client for the configured shop; without a token or shop it refuses every call."""
        token = settings.shopify_access_token.value
        base_url = settings.shopify_admin_url or (
            f"https://{settings.shopify_shop}" if settings.shopify_shop else ""
        )
        http = HttpClient(
            system=SYSTEM,
            base_url=base_url,
            timeouts=Timeouts(
                connect=settings.http_connect_timeout_seconds, read=settings.http_read_timeout_seconds
            ),
            headers={"X-Shopify-Access-Token": token} if token else {},
            limiter=limiter,
            policy=ShopifyPolicy(),
            refusal=credentials_refusal(
                "Shopify", {"SHOPIFY_ACCESS_TOKEN": token, "SHOPIFY_SHOP (or SHOPIFY_ADMIN_URL)": base_url}
            ),
        )
        return cls(http, api_version=settings.shopify_api_version)

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
        tags: Sequence[str] = ("membersync",),
        note: str | None = None,
        registration_id: str | None = None,
    ) -> ShopifyCustomer:
        """customerCreate, then customerAddressCreate for the address (its default) when one is given.

        https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/customerCreate. Raises EmailTaken
        when the email is already used, PhoneTaken for the phone. `accepts_marketing=True` records the
        request as PENDING (double opt-in, `mapping.consent_requested`); False sends no consent, so
        the customer keeps Shopify's default NOT_SUBSCRIBED (never sent: Shopify refuses it as input).
        customerCreate rather than customerSet: customerSet keyed by email would overwrite the
        profile of a customer who already shops online (Shopify owns it; we adopt it as it is), its
        input carries no marketing consent (a second mutation, and a window where the consent is
        missing), and a taken phone is still refused. An address whose call fails after the create
        is added on the adopting retry (`add_address`), because CustomerInput.addresses is
        deprecated in 2026-10.
        """
        given = {
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "locale": locale,
            "accepts_marketing": accepts_marketing,
            "tags": tags,
            "note": note,
        }
        fields = cast(CustomerFields, {name: value for name, value in given.items() if value is not None})
        variables = {"input": customer_input(fields)}
        if registration_id is not None:
            # Marks the customer as this registration's own: a retry after a lost answer finds the
            # mark and finishes its own work; a customer without it belongs to someone else.
            variables["input"]["metafields"] = [
                {
                    "namespace": documents.REGISTRATION_NAMESPACE,
                    "key": documents.REGISTRATION_KEY,
                    "type": MEMBER_NUMBER_TYPE,
                    "value": registration_id,
                }
            ]
        data = self._execute(documents.CREATE_CUSTOMER, variables, cost_estimate=MUTATION_COST)
        customer = dataclasses.replace(
            self._mutated_customer(data, "customerCreate"), registration_id=registration_id
        )
        if not (postal_code or address):
            return customer
        address_id = self.add_address(customer.id, postal_code=postal_code, address=address)
        return dataclasses.replace(customer, address_id=address_id)

    def add_address(self, customer_id: str, *, postal_code: str | None, address: str | None) -> str:
        """customerAddressCreate as the customer's default address; the new address's id.

        https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/customerAddressCreate.
        """
        given = {"postal_code": postal_code, "address": address}
        fields = cast(CustomerFields, {name: value for name, value in given.items() if value is not None})
        variables = {"customerId": customer_id, "address": mailing_address(fields), "setAsDefault": True}
        data = self._execute(documents.ADD_CUSTOMER_ADDRESS, variables, cost_estimate=MUTATION_COST)
        return self._mutated_address_id(data, "customerAddressCreate")

    def find_customers_by_email(self, email: str) -> list[ShopifyCustomer]:
        """The customer whose email is exactly `email` (any case), with its member facts; [] or one.

        customerByIdentifier(identifier: {emailAddress:})
        (https://shopify.dev/docs/api/admin-graphql/2026-10/queries/customerByIdentifier): an exact
        lookup, unlike customers(query:), whose search tokenises the address and trails writes.
        Emails are unique per shop, so a list of at most one; callers keep treating it as a list.
        """
        variables = {
            "email": email.strip(),
            "metafieldNamespace": documents.REGISTRATION_NAMESPACE,
            "registrationKey": documents.REGISTRATION_KEY,
            **FACT_VARIABLES,
        }
        data = self._execute(documents.FIND_CUSTOMER_BY_EMAIL, variables, cost_estimate=FIND_COST)
        node = data.get("customerByIdentifier")
        if not isinstance(node, Mapping):
            return []
        customer = customer_from_node(node)
        # Case-insensitive on Shopify's side is UNCONFIRMED for this lookup; an answer for another
        # address would never be adopted.
        return [customer] if same_email(customer.email, email) else []

    def get_customer(self, customer_id: str) -> ShopifyCustomer | None:
        """One customer with its member facts, None if absent.

        customer(id:) (https://shopify.dev/docs/api/admin-graphql/2026-10/queries/customer).
        """
        variables = {"id": customer_id, **FACT_VARIABLES}
        data = self._execute(documents.GET_CUSTOMER, variables, cost_estimate=CUSTOMER_COST)
        node = data.get("customer")
        return customer_from_node(node) if isinstance(node, Mapping) else None

    def update_customer(self, customer_id: str, **fields: Unpack[CustomerFields]) -> ShopifyCustomer:
        """customerUpdate with only the fields given (create's keyword names); None clears a field.

        https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/customerUpdate. The address
        fields change the default address (customerAddressUpdate), or add one when there is none.
        Raises NotFoundError for an unknown id, EmailTaken / PhoneTaken like create.
        """
        if not fields:
            raise ValueError("update_customer needs at least one field to change")
        if "accepts_marketing" in fields:
            # customerUpdate would turn a confirmed SUBSCRIBED back into PENDING.
            raise TypeError("consent changes go through update_marketing_consent, not update_customer")
        own = customer_input(fields)  # also refuses unknown field names before anything is sent
        if own:
            variables = {"input": {"id": customer_id, **own}}
            data = self._execute(documents.UPDATE_CUSTOMER, variables, cost_estimate=MUTATION_COST)
            customer = self._mutated_customer(data, "customerUpdate")
        else:
            found = self.get_customer(customer_id)
            if found is None:
                raise NotFoundError(f"{SYSTEM} customer: no such customer", system=SYSTEM)
            customer = found
        address = mailing_address(fields)
        if address is None:
            return customer
        if customer.address_id is None:
            created: dict[str, Any] = {"customerId": customer_id, "address": address, "setAsDefault": True}
            data = self._execute(documents.ADD_CUSTOMER_ADDRESS, created, cost_estimate=MUTATION_COST)
            address_id = self._mutated_address_id(data, "customerAddressCreate")
        else:
            changed = {"customerId": customer_id, "addressId": customer.address_id, "address": address}
            data = self._execute(documents.UPDATE_CUSTOMER_ADDRESS, changed, cost_estimate=MUTATION_COST)
            address_id = self._mutated_address_id(data, "customerAddressUpdate")
        return dataclasses.replace(customer, address_id=address_id)

    def update_marketing_consent(
        self,
        customer_id: str,
        state: str,
        *,
        opt_in_level: str | None = None,
        consent_updated_at: datetime | None = None,
    ) -> ShopifyCustomer:
        """Set the customer's email marketing consent; the customer as Shopify answers afterwards.

        customerEmailMarketingConsentUpdate
        (https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/customerEmailMarketingConsentUpdate).
        `state` is PENDING, SUBSCRIBED or UNSUBSCRIBED (`mapping.consent_requested` /
        `consent_confirmed` / `consent_withdrawn` name the three uses); any other state raises
        ConsentRefused before anything is sent, as Shopify would refuse it. Shopify's own refusal
        (userError or top-level error) is ConsentRefused too; an unknown customer or one without an
        email is a PermanentError. Setting the state it already has is harmless, so a retry after a
        lost answer is safe.
        """
        if state not in SETTABLE_MARKETING_STATES:
            raise ConsentRefused(
                f"{SYSTEM} customerEmailMarketingConsentUpdate: {CONSENT_REFUSED}", system=SYSTEM
            )
        consent = marketing_consent(state, opt_in_level=opt_in_level, consent_updated_at=consent_updated_at)
        variables = {"input": {"customerId": customer_id, "emailMarketingConsent": consent}}
        data = self._execute(documents.UPDATE_MARKETING_CONSENT, variables, cost_estimate=MUTATION_COST)
        return self._mutated_customer(data, "customerEmailMarketingConsentUpdate")

    def set_member_number(self, customer_id: str, member_number: str) -> None:
        """Write the member number ($app:membersync member_number) on the customer."""
        self.set_metafields(fact_metafields(customer_id, {"member_number": member_number}))

    def set_member_facts(self, customer_id: str, facts: MemberFactValues) -> None:
        """Write the facts given (None = leave as it is) in the app-owned namespace $app:membersync.

        Nothing is sent when no fact is given. Setting a value the customer already has is harmless,
        so a retry after a lost answer is safe.
        """
        self.set_metafields(fact_metafields(customer_id, fact_values(facts)))

    def set_metafields(self, metafields: Sequence[Mapping[str, Any]]) -> None:
        """metafieldsSet in calls of at most 25 (Shopify's limit; each call is all or nothing).

        https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/metafieldsSet. The member facts'
        metafield definitions are ensured first (once), so Shopify types and validates the values.
        """
        if not metafields:
            return
        if any(entry.get("namespace") == documents.MEMBER_FACTS_NAMESPACE for entry in metafields):
            self.ensure_member_fact_definitions()
        for start in range(0, len(metafields), MAX_METAFIELDS_PER_SET):
            chunk = [dict(entry) for entry in metafields[start : start + MAX_METAFIELDS_PER_SET]]
            self._execute(documents.SET_METAFIELDS, {"metafields": chunk}, cost_estimate=MUTATION_COST)

    def ensure_member_fact_definitions(self) -> None:
        """metafieldDefinitionCreate for each member fact (CUSTOMER, $app:membersync), once per client.

        https://shopify.dev/docs/api/admin-graphql/2026-10/mutations/metafieldDefinitionCreate. A
        definition that exists already (userError TAKEN) is what we want; answers.HARMLESS_USER_ERRORS
        lets it through. A failure leaves the flag down, so the next write tries again.
        """
        with self._definitions_lock:
            if self._definitions_ensured:
                return
            for name, key in documents.MEMBER_FACT_KEYS.items():
                definition = {
                    "namespace": documents.MEMBER_FACTS_NAMESPACE,
                    "key": key,
                    "name": FACT_DEFINITION_NAMES[name],
                    "type": documents.MEMBER_FACT_TYPES[name],
                    "ownerType": "CUSTOMER",
                }
                self._execute(
                    documents.CREATE_METAFIELD_DEFINITION,
                    {"definition": definition},
                    cost_estimate=MUTATION_COST,
                )
            self._definitions_ensured = True

    def export_customers(
        self,
        *,
        poll_seconds: float = bulk.DEFAULT_POLL_SECONDS,
        timeout_seconds: float = bulk.DEFAULT_TIMEOUT_SECONDS,
    ) -> Iterator[ShopifyCustomer]:
        """Every customer with its member facts, streamed from a bulk operation (connectors.shopify.bulk).

        https://shopify.dev/docs/api/usage/bulk-operations/queries; ordinary pagination stops at 25,000
        objects. Raises BulkExportBusy / BulkExportFailed (TransientError) when there is no complete
        result: what was yielded before a raise is not the whole shop.
        """
        return bulk.export_customers(self, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds)

    def check(self) -> None:
        """One cheap read that proves the shop, token and API version (`membersync check`).

        query { shop { name } } (https://shopify.dev/docs/api/admin-graphql/2026-10/queries/shop);
        a refusal raises as any call does (PermanentError for a bad token or a missing scope).
        """
        self._execute(documents.SHOP_NAME, {}, cost_estimate=SHOP_COST)

    @staticmethod
    def _mutated_address_id(data: Mapping[str, Any], root: str) -> str:
        address = (data.get(root) or {}).get("address")
        if not isinstance(address, Mapping) or not address.get("id"):
            # ShopifyPolicy already raised for userErrors.
            message = f"{SYSTEM} {root}: answer has neither an address nor userErrors"
            raise PermanentError(message, system=SYSTEM)
        return str(address["id"])

    @staticmethod
    def _mutated_customer(data: Mapping[str, Any], root: str) -> ShopifyCustomer:
        payload = data.get(root) or {}
        if not isinstance(payload.get("customer"), Mapping):
            # ShopifyPolicy already raised for userErrors.
            message = f"{SYSTEM} {root}: answer has neither a customer nor userErrors"
            raise PermanentError(message, system=SYSTEM)
        return customer_from_node(payload["customer"])

    def _execute(
        self, document: str, variables: Mapping[str, Any], *, cost_estimate: float
    ) -> dict[str, Any]:
        """POST one document; the `data` of a clean answer (ShopifyPolicy raises for any other)."""
        body = {"query": document, "variables": dict(variables)}
        response = self.http.request("POST", self.path, json=body, cost=cost_estimate)
        return dict(json_object(response)["data"])
