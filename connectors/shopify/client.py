"""Shopify Admin GraphQL client: one method per customer operation.

Requests leave through `connectors.http.HttpClient` (rate limit first, classification after), whose
`ShopifyPolicy` (`connectors.shopify.answers`) reads every failure GraphQL adds to HTTP: top-level
`errors`, a missing `data`, mutations' `userErrors`, and the cost bucket every answer reports.

Cost estimates follow Shopify's calculated query cost (an object 1, a scalar 0, a connection 2 plus
`first` times its node, a mutation 10): https://shopify.dev/docs/api/usage/limits
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack, cast

from config.settings import Settings
from connectors.errors import PermanentError
from connectors.http import HttpClient, Timeouts, credentials_refusal, json_object
from connectors.ratelimit import RateLimiter
from connectors.shopify import documents
from connectors.shopify.answers import SYSTEM, EmailTaken, PhoneTaken, ShopifyPolicy
from connectors.shopify.mapping import (
    MEMBER_NUMBER_TYPE,
    CustomerFields,
    ShopifyCustomer,
    customer_from_node,
    customer_input,
    email_search,
    same_email,
)

__all__ = ["EmailTaken", "PhoneTaken", "ShopifyClient"]  # the errors are read in answers, raised from here

MUTATION_COST = 10.0
# A MemberCustomer with its member-number metafield: the customer, its consent and the metafield.
CUSTOMER_COST = 3.0
# Exact matches are few; room for the extra hits of Shopify's fuzzy search and for duplicates.
FIND_FIRST = 5
FIND_COST = 2 + FIND_FIRST * CUSTOMER_COST


class ShopifyClient:
    """The Admin GraphQL API of one shop; `http` already carries the base URL and the token header."""

    def __init__(self, http: HttpClient, *, api_version: str) -> None:
        self.http = http.using(ShopifyPolicy)
        self.api_version = api_version
        self.path = f"/admin/api/{api_version}/graphql.json"

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
    ) -> ShopifyCustomer:
        """customerCreate (https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/customerCreate).

        Raises EmailTaken when the email is already used, PhoneTaken for the phone.
        """
        given = {
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "phone": phone,
            "locale": locale,
            "accepts_marketing": accepts_marketing,
            "postal_code": postal_code,
            "address": address,
            "tags": tags,
            "note": note,
        }
        fields = cast(CustomerFields, {name: value for name, value in given.items() if value is not None})
        variables = {"input": customer_input(fields)}
        data = self._execute(documents.CREATE_CUSTOMER, variables, cost_estimate=MUTATION_COST)
        return self._mutated_customer(data, "customerCreate")

    def find_customers_by_email(self, email: str) -> list[ShopifyCustomer]:
        """Customers whose email is exactly `email`, any case, with their member number.

        customers(query:) (https://shopify.dev/docs/api/admin-graphql/2025-01/queries/customers);
        Shopify's search is fuzzy, so hits are filtered to the exact address here too.
        """
        variables = {
            "query": email_search(email),
            "first": FIND_FIRST,
            "metafieldNamespace": documents.MEMBER_NUMBER_NAMESPACE,
            "metafieldKey": documents.MEMBER_NUMBER_KEY,
        }
        data = self._execute(documents.FIND_CUSTOMERS_BY_EMAIL, variables, cost_estimate=FIND_COST)
        nodes = (data.get("customers") or {}).get("nodes") or []
        customers = [customer_from_node(node) for node in nodes]
        return [customer for customer in customers if same_email(customer.email, email)]

    def get_customer(self, customer_id: str) -> ShopifyCustomer | None:
        """One customer with its member number, None if absent.

        customer(id:) (https://shopify.dev/docs/api/admin-graphql/2025-01/queries/customer).
        """
        variables = {
            "id": customer_id,
            "metafieldNamespace": documents.MEMBER_NUMBER_NAMESPACE,
            "metafieldKey": documents.MEMBER_NUMBER_KEY,
        }
        data = self._execute(documents.GET_CUSTOMER, variables, cost_estimate=CUSTOMER_COST)
        node = data.get("customer")
        return customer_from_node(node) if isinstance(node, Mapping) else None

    def update_customer(self, customer_id: str, **fields: Unpack[CustomerFields]) -> ShopifyCustomer:
        """customerUpdate with only the fields given (create's keyword names); None clears a field.

        https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/customerUpdate. Raises
        NotFoundError for an unknown id, EmailTaken / PhoneTaken like create.
        """
        if not fields:
            raise ValueError("update_customer needs at least one field to change")
        variables = {"input": {"id": customer_id, **customer_input(fields)}}
        data = self._execute(documents.UPDATE_CUSTOMER, variables, cost_estimate=MUTATION_COST)
        return self._mutated_customer(data, "customerUpdate")

    def set_member_number(self, customer_id: str, member_number: str) -> None:
        """Write metafield membersync.member_number (single_line_text_field) on the customer.

        metafieldsSet (https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/metafieldsSet).
        """
        metafield = {
            "ownerId": customer_id,
            "namespace": documents.MEMBER_NUMBER_NAMESPACE,
            "key": documents.MEMBER_NUMBER_KEY,
            "type": MEMBER_NUMBER_TYPE,
            "value": member_number,
        }
        self._execute(documents.SET_METAFIELDS, {"metafields": [metafield]}, cost_estimate=MUTATION_COST)

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
