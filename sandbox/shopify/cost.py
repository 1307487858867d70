"""Calculated query cost and the leaky bucket that Shopify's Admin GraphQL API rate-limits with.

Cost rules (shopify.dev "GraphQL Admin API rate limits"): scalars and enums 0, objects 1, a connection
2 plus `first`/`last` times the cost of one node, a mutation field 10. The requested cost is computed
before execution from the document; the actual cost afterwards from what was returned (fewer edges,
null objects), and the difference is refunded to the bucket. Shopify's exact numbers for unusual
shapes (plain lists of objects, nested mutation payloads) are UNCONFIRMED: here a plain list costs
like one object, and a mutation field costs 10 whatever it selects.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInt,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast,
)

OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10
# A single query may not cost more than this (enforced on the requested cost, before execution).
MAX_QUERY_COST = 1000

_NOT_EXECUTED = object()  # marks "requested cost": no result data to look at


def requested_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
) -> int:
    """The worst-case cost of an operation, known before running it."""
    return _CostWalker(schema, fragments, variables or {}).operation_cost(operation, _NOT_EXECUTED)


def actual_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
    data: Mapping[str, Any] | None,
) -> int:
    """The cost of what the operation actually returned."""
    return _CostWalker(schema, fragments, variables or {}).operation_cost(operation, data or {})


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """The fragment definitions of a document by name."""
    return {
        node.name.value: node for node in document.definitions if isinstance(node, FragmentDefinitionNode)
    }


def collect_fields(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    into: dict[str, list[FieldNode]] | None = None,
) -> dict[str, list[FieldNode]]:
    """Fields by response key, fragments expanded (our schema has no unions, so no type conditions)."""
    fields = {} if into is None else into
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            fields.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            collect_fields(selection.selection_set, fragments, fields)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            collect_fields(fragments[selection.name.value].selection_set, fragments, fields)
    return fields


def merged_subfields(
    nodes: list[FieldNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> dict[str, list[FieldNode]]:
    """The sub-selections of every occurrence of one response key, merged."""
    merged: dict[str, list[FieldNode]] = {}
    for node in nodes:
        collect_fields(node.selection_set, fragments, merged)
    return merged


class _CostWalker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def operation_cost(self, operation: OperationDefinitionNode, data: Any) -> int:
        root = self.schema.get_root_type(operation.operation)
        assert root is not None
        if operation.operation is OperationType.MUTATION:
            return MUTATION_COST * len(self._collect(operation.selection_set))
        return self._selection_cost(root, operation.selection_set, data)

    def _collect(self, selection_set: SelectionSetNode | None) -> dict[str, list[FieldNode]]:
        return collect_fields(selection_set, self.fragments)

    def _merged_selection(self, nodes: list[FieldNode]) -> dict[str, list[FieldNode]]:
        return merged_subfields(nodes, self.fragments)

    def _selection_cost(
        self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None, data: Any
    ) -> int:
        return self._fields_cost(parent, self._collect(selection_set), data)

    def _fields_cost(self, parent: GraphQLObjectType, fields: dict[str, list[FieldNode]], data: Any) -> int:
        total = 0
        for key, nodes in fields.items():
            definition = parent.fields.get(nodes[0].name.value)
            if definition is None:  # __typename and introspection cost nothing
                continue
            field_type = get_named_type(definition.type)
            if is_leaf_type(field_type):
                continue
            assert isinstance(field_type, GraphQLObjectType)
            if data is _NOT_EXECUTED:
                value = _NOT_EXECUTED
            else:
                value = data.get(key) if isinstance(data, Mapping) else None
            if field_type.name.endswith("Connection"):
                total += self._connection_cost(field_type, nodes, value)
            else:
                # A plain list costs like one object (UNCONFIRMED, see the module docstring).
                item = (value[0] if value else None) if isinstance(value, list) else value
                children = (
                    0 if item is None else self._fields_cost(field_type, self._merged_selection(nodes), item)
                )
                total += OBJECT_COST + children
        return total

    def _connection_cost(self, connection: GraphQLObjectType, nodes: list[FieldNode], value: Any) -> int:
        inner = self._merged_selection(nodes)
        if value is _NOT_EXECUTED:
            size = self._page_size(nodes[0])
            return CONNECTION_COST + size * self._node_cost(connection, inner, _NOT_EXECUTED)
        if not isinstance(value, Mapping):
            return CONNECTION_COST
        items: list[Any] = []
        for key, fields in inner.items():
            listed = value.get(key) or []
            if fields[0].name.value == "edges":
                returned = [edge.get("node") for edge in listed if isinstance(edge, Mapping)]
            elif fields[0].name.value == "nodes":
                returned = list(listed)
            else:
                continue
            items = returned if len(returned) > len(items) else items
        return CONNECTION_COST + sum(self._node_cost(connection, inner, item) for item in items)

    def _node_cost(self, connection: GraphQLObjectType, inner: dict[str, list[FieldNode]], item: Any) -> int:
        """What one node of a connection costs, selected through edges { node } and/or nodes."""
        node_type = get_named_type(connection.fields["nodes"].type)
        assert isinstance(node_type, GraphQLObjectType)
        selections: dict[str, list[FieldNode]] = {}
        for nodes in inner.values():
            if nodes[0].name.value == "nodes":
                self._merge_into(selections, nodes)
            elif nodes[0].name.value == "edges":
                for edge_nodes in self._merged_selection(nodes).values():
                    if edge_nodes[0].name.value == "node":
                        self._merge_into(selections, edge_nodes)
        if not selections:
            return 0
        return OBJECT_COST + self._fields_cost(node_type, selections, item if item is not None else {})

    def _merge_into(self, selections: dict[str, list[FieldNode]], nodes: list[FieldNode]) -> None:
        for key, fields in self._merged_selection(nodes).items():
            selections.setdefault(key, []).extend(fields)

    def _page_size(self, node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value in {"first", "last"}:
                size = value_from_ast(argument.value, GraphQLInt, dict(self.variables))
                if isinstance(size, int):
                    return max(size, 0)
        return 0


class CostBucket:
    """Shopify's leaky bucket of cost points: `size` points, refilled at `restore_rate` points a second."""

    def __init__(self, size: float, restore_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._available = self.size
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(self.size, self._available + (now - self._updated) * self.restore_rate)
        self._updated = now

    def try_spend(self, points: int) -> bool:
        """Take `points` if the bucket holds that many; False (and nothing taken) otherwise."""
        with self._lock:
            self._refill()
            if self._available < points:
                return False
            self._available -= points
            return True

    def refund(self, points: int) -> None:
        """Give back points charged but not used (requested minus actual cost)."""
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + max(points, 0))

    def throttle_status(self) -> dict[str, Any]:
        """`extensions.cost.throttleStatus` as Shopify sends it (floats, except currentlyAvailable)."""
        with self._lock:
            self._refill()
            return {
                "maximumAvailable": self.size,
                "currentlyAvailable": math.floor(self._available),
                "restoreRate": self.restore_rate,
            }

    def reset(self) -> None:
        """A full bucket again."""
        with self._lock:
            self._available = self.size
            self._updated = self._clock()
