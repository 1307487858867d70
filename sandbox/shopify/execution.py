"""One Admin GraphQL request, end to end: parse, validate, cost, throttle, execute, refund.

HTTP concerns (auth, versions, body formats, faults) live in sandbox.shopify.app; this module answers
with the JSON body Shopify would send, always with `extensions.cost`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    parse,
    validate,
)

from sandbox.shopify.bulk import BulkOperations
from sandbox.shopify.cost import MAX_QUERY_COST, CostBucket, actual_cost, fragments_of, requested_cost
from sandbox.shopify.customers import CustomerStore
from sandbox.shopify.resolvers import RequestContext, build_executable_schema

RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


@dataclass
class GraphQLRequest:
    """The parts of a GraphQL POST body."""

    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None


@dataclass
class Outcome:
    """The JSON body to send, plus what the HTTP layer needs to know about the operation."""

    body: dict[str, Any]
    root_fields: tuple[str, ...] = ()
    is_mutation: bool = False
    throttled: bool = False


class AdminApi:
    """The sandbox shop's Admin GraphQL API: its customers, bulk operations and cost bucket."""

    def __init__(
        self, *, bucket_size: float, restore_rate: float, max_query_cost: int = MAX_QUERY_COST
    ) -> None:
        self.schema = build_executable_schema()
        self.customers = CustomerStore()
        self.bulk_operations = BulkOperations(self.schema, self.customers)
        self.bucket = CostBucket(bucket_size, restore_rate)
        self.max_query_cost = max_query_cost

    def reset(self) -> None:
        """Empty the shop and refill the bucket."""
        self.customers.clear()
        self.bulk_operations.clear()
        self.bucket.reset()

    def cost_extension(self, requested: int, actual: int | None) -> dict[str, Any]:
        """`extensions.cost` for a response."""
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self.bucket.throttle_status(),
        }

    def throttled_body(self, requested: int, *, injected: bool = False) -> dict[str, Any]:
        """Shopify's THROTTLED answer.

        Sent with HTTP 200 here; whether Shopify says 200 or 429 is UNCONFIRMED, so clients handle both.
        An `injected` throttle (a fault, the bucket itself may be full) still reports fewer points
        available than requested, as a real one always does: clients compute their wait from it.
        """
        cost = self.cost_extension(requested, None)
        if injected:
            status = cost["throttleStatus"]
            status["currentlyAvailable"] = min(status["currentlyAvailable"], max(requested - 1, 0))
        return {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
                }
            ],
            "extensions": {"cost": cost},
        }

    def estimate(self, request: GraphQLRequest) -> int:
        """The requested cost of a request, or 0 when it would not even validate."""
        try:
            document = parse(request.query)
        except GraphQLError:
            return 0
        if validate(self.schema, document):
            return 0
        operation = _pick_operation(document, request.operation_name)
        if operation is None:
            return 0
        return requested_cost(self.schema, operation, fragments_of(document), request.variables)

    def run(self, request: GraphQLRequest, *, base_url: str) -> Outcome:
        """Answer one request the way Shopify would."""
        try:
            document = parse(request.query)
        except GraphQLError as syntax_error:
            return self._errors_only([syntax_error])
        validation_errors = validate(self.schema, document)
        if validation_errors:
            return self._errors_only(validation_errors)
        operation = _pick_operation(document, request.operation_name)
        if operation is None:
            # execute_sync() words the error (unknown operation name, or several operations and no name).
            return self._errors_only(
                execute_sync(self.schema, document, operation_name=request.operation_name).errors or []
            )
        fragments = fragments_of(document)
        requested = requested_cost(self.schema, operation, fragments, request.variables)
        root_fields = tuple(
            selection.name.value
            for selection in operation.selection_set.selections
            if isinstance(selection, FieldNode)
        )
        is_mutation = operation.operation is OperationType.MUTATION
        if requested > self.max_query_cost:
            return Outcome(self._max_cost_body(requested), root_fields, is_mutation)
        if not self.bucket.try_spend(requested):
            return Outcome(self.throttled_body(requested), root_fields, is_mutation, throttled=True)
        context = RequestContext(
            customers=self.customers, bulk_operations=self.bulk_operations, base_url=base_url
        )
        result = execute_sync(
            self.schema,
            document,
            context_value=context,
            variable_values=request.variables,
            operation_name=request.operation_name,
        )
        # Errors without a path are request errors (variables that do not fit): nothing ran, nothing costs.
        request_failed = result.data is None and all(error.path is None for error in result.errors or [])
        actual = (
            0
            if request_failed
            else actual_cost(self.schema, operation, fragments, request.variables, result.data)
        )
        actual = min(actual, requested)
        self.bucket.refund(requested - actual)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [error.formatted for error in result.errors]
        if not request_failed:
            body["data"] = result.data
        body["extensions"] = {"cost": self.cost_extension(requested, actual)}
        if context.search_reports:
            body["extensions"]["search"] = context.search_reports
        return Outcome(body, root_fields, is_mutation)

    def _errors_only(self, errors: list[GraphQLError]) -> Outcome:
        # Documents that do not validate are never executed and cost nothing, but still carry the cost.
        return Outcome(
            {
                "errors": [error.formatted for error in errors],
                "extensions": {"cost": self.cost_extension(0, 0)},
            }
        )

    def _max_cost_body(self, requested: int) -> dict[str, Any]:
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit "
            f"({self.max_query_cost}).\n\n"
            f"See {RATE_LIMITS_DOC} for more information on how the cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead."
        )
        return {
            "errors": [
                {
                    "message": message,
                    "extensions": {
                        "code": "MAX_COST_EXCEEDED",
                        "cost": requested,
                        "maxCost": self.max_query_cost,
                        "documentation": RATE_LIMITS_DOC,
                    },
                }
            ],
            "extensions": {"cost": self.cost_extension(requested, None)},
        }


def _pick_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((node for node in operations if node.name and node.name.value == operation_name), None)
