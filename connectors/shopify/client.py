"""Shopify Admin GraphQL client: one method per customer operation, one place answers are read.

Requests leave through `connectors.http.HttpClient` (rate limit first, status classification after).
GraphQL adds failures HTTP 200 cannot show, all read in `_execute`: top-level `errors` (THROTTLED,
INTERNAL_SERVER_ERROR, anything else) and every answer's `extensions.cost.throttleStatus`, which
corrects the shared cost bucket. Mutations' `userErrors` are read per operation.

Cost estimates follow Shopify's calculated query cost (an object 1, a scalar 0, a connection 2 plus
`first` times its node, a mutation 10): https://shopify.dev/docs/api/usage/limits
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack, cast

from config.settings import Settings
from connectors.errors import ConflictError, NotFoundError, PermanentError, TransientError
from connectors.http import HttpClient, Timeouts, parse_retry_after
from connectors.ratelimit import RateLimiter
from connectors.shopify import documents
from connectors.shopify.mapping import (
    MEMBER_NUMBER_TYPE,
    SYSTEM,
    CustomerFields,
    ShopifyCustomer,
    bucket_report,
    customer_from_node,
    customer_input,
    email_search,
    error_codes,
    graphql_error,
    json_object,
    same_email,
    user_error_fields,
    user_error_kind,
)

MUTATION_COST = 10.0
# A MemberCustomer with its member-number metafield: the customer, its consent and the metafield.
CUSTOMER_COST = 3.0
# Exact matches are few; room for the extra hits of Shopify's fuzzy search and for duplicates.
FIND_FIRST = 5
FIND_COST = 2 + FIND_FIRST * CUSTOMER_COST

_OPERATION_NAMES = {document: name for name, document in documents.ALL_DOCUMENTS.items()}


class EmailTaken(ConflictError):
    """Another Shopify customer already has this email: find it by email and adopt it."""

    reason = "email_taken"


class PhoneTaken(PermanentError):
    """Another Shopify customer already has this phone number; Shopify requires phones to be unique."""

    reason = "phone_taken"


# What each kind of userError raises (any other userError: PermanentError naming the fields).
_USER_ERRORS: dict[str, tuple[type[PermanentError], str]] = {
    "email_taken": (EmailTaken, "the email is already used by another Shopify customer"),
    "phone_taken": (PhoneTaken, "the phone is already used by another customer (phones must be unique)"),
    "not_found": (NotFoundError, "no such customer"),
}


class ShopifyClient:
    """The Admin GraphQL API of one shop; `http` already carries the base URL and the token header."""

    def __init__(self, http: HttpClient, *, api_version: str) -> None:
        self.http = http
        self.api_version = api_version
        self.path = f"/admin/api/{api_version}/graphql.json"
        # Set by from_settings when a setting is missing: every call is refused without sending.
        self._refusal: str | None = None

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
        )
        client = cls(http, api_version=settings.shopify_api_version)
        if not token or not base_url:
            missing = "SHOPIFY_ACCESS_TOKEN" if not token else "SHOPIFY_SHOP (or SHOPIFY_ADMIN_URL)"
            client._refusal = f"{missing} is not set; refusing to call Shopify"
        return client

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
        variables = {"metafields": [metafield]}
        data = self._execute(documents.SET_METAFIELDS, variables, cost_estimate=MUTATION_COST)
        user_errors = (data.get("metafieldsSet") or {}).get("userErrors") or []
        if user_errors:
            self._raise_user_errors("shopify metafieldsSet", user_errors)

    def _mutated_customer(self, data: Mapping[str, Any], root: str) -> ShopifyCustomer:
        payload = data.get(root) or {}
        where = f"shopify {root}"
        if payload.get("userErrors"):
            self._raise_user_errors(where, payload["userErrors"])
        if not isinstance(payload.get("customer"), Mapping):
            raise PermanentError(f"{where}: answer has neither a customer nor userErrors", system=SYSTEM)
        return customer_from_node(payload["customer"])

    @staticmethod
    def _raise_user_errors(where: str, user_errors: Sequence[Mapping[str, Any]]) -> None:
        kind = user_error_kind(user_errors)
        refused = (PermanentError, f"Shopify refused {user_error_fields(user_errors)}")
        error_class, what = _USER_ERRORS.get(kind or "", refused)
        raise error_class(f"{where}: {what}", system=SYSTEM)

    def _execute(
        self, document: str, variables: Mapping[str, Any], *, cost_estimate: float
    ) -> dict[str, Any]:
        """POST one document; the `data` of a clean answer, else the error the failure means.

        https://shopify.dev/docs/api/admin-graphql#status-and-error-codes and
        https://shopify.dev/docs/api/usage/limits. THROTTLED may come as HTTP 200 or 429.
        """
        where = f"{SYSTEM} {_OPERATION_NAMES.get(document, 'graphql')}"
        if self._refusal:
            raise PermanentError(f"{where}: {self._refusal}", system=SYSTEM)
        body = {"query": document, "variables": dict(variables)}
        try:
            # A 429 is read here, not classified by HttpClient: its body may carry the throttle status.
            response = self.http.request("POST", self.path, json=body, cost=cost_estimate, ok=(200, 429))
        except NotFoundError as error:
            # The endpoint itself is missing (unknown shop or API version), not a customer.
            message = f"{error} (check SHOPIFY_SHOP and SHOPIFY_API_VERSION)"
            raise PermanentError(message, system=SYSTEM, status=error.status) from None
        answer = json_object(response)
        report = bucket_report((answer.get("extensions") or {}).get("cost"))
        if report is not None:
            self.http.limiter.observe(
                available=report.available, capacity=report.capacity, per_second=report.per_second
            )
        status, retry_after = response.status_code, None
        if status == 429:
            if "THROTTLED" not in error_codes(answer.get("errors")):
                raise self.http.classify(response, f"{SYSTEM} POST {self.path}")
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after:
                self.http.limiter.pause(retry_after)
        if answer.get("errors"):
            raise graphql_error(where, answer, cost_estimate, status=status, retry_after=retry_after)
        if not isinstance(answer.get("data"), dict):
            # 200 without JSON or data: an edge proxy's page or a half answer; worth another try.
            raise TransientError(f"{where}: the answer has no data", system=SYSTEM, status=status)
        return dict(answer["data"])
