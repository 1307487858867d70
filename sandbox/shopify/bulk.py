"""Bulk query operations: run a customers query over every record and serve the result as JSONL.

As on Shopify, the JSONL file has one object per line; objects of a nested connection come on their
own lines after their parent, carrying `__parentId`; a query may have one top-level connection and the
parent of a nested connection must select `id`. The file is served by the emulator itself at
/bulk-operations/<n>.jsonl (Shopify hands out a signed storage URL instead; no auth either way).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    get_named_type,
    parse,
    validate,
)

from sandbox.shopify.cost import collect_fields, fragments_of, merged_subfields
from sandbox.shopify.customers import CustomerStore, now_iso
from sandbox.shopify.resolvers import RequestContext

DOWNLOAD_PATH = "/bulk-operations/<int:operation_id>.jsonl"

Record = dict[str, Any]


class BulkQueryError(Exception):
    """The bulk query is not one Shopify would run."""


@dataclass
class _Plan:
    """How to turn one node of the result into a JSONL line plus the lines of its nested connections."""

    node_type: GraphQLObjectType
    keys: list[str] = field(default_factory=list)
    children: dict[str, _Plan] = field(default_factory=dict)


class BulkOperations:
    """The shop's bulk operations; one query operation runs at a time, as on Shopify."""

    def __init__(self, schema: GraphQLSchema, customers: CustomerStore) -> None:
        self.schema = schema
        self.customers = customers
        self._lock = threading.Lock()
        self._generation = 0
        self.clear()

    def clear(self) -> None:
        """Forget every operation and file."""
        with self._lock:
            self._operations: dict[int, Record] = {}
            self._files: dict[int, bytes] = {}
            self._ids = itertools.count(1)
            self._current: int | None = None
            # Bumped by every reset: a run started before it must not write into the new shop's
            # operations, whose numbers start again from 1.
            self._generation += 1

    def start(self, query: str, *, base_url: str) -> tuple[Record | None, list[Record]]:
        """bulkOperationRunQuery: check the query, then run it in a thread; (operation, user errors)."""
        try:
            document, operation = self._parse(query)
            plan = self._plan(document, operation)
        except BulkQueryError as invalid:
            return None, [{"field": ["query"], "message": str(invalid), "code": "INVALID"}]
        with self._lock:
            current = self._operations.get(self._current) if self._current is not None else None
            if current is not None and current["status"] in {"CREATED", "RUNNING"}:
                message = (
                    f"A bulk query operation for this app and shop is already in progress: {current['id']}."
                )
                return None, [{"field": None, "message": message, "code": "OPERATION_IN_PROGRESS"}]
            number = next(self._ids)
            created = {
                "id": f"gid://shopify/BulkOperation/{number}",
                "status": "RUNNING",
                "type": "QUERY",
                "query": query,
                "createdAt": now_iso(),
                "completedAt": None,
                "errorCode": None,
                "objectCount": "0",
                "rootObjectCount": "0",
                "fileSize": None,
                "url": None,
                "partialDataUrl": None,
            }
            self._operations[number] = created
            self._current = number
            generation = self._generation
        url = f"{base_url.rstrip('/')}{DOWNLOAD_PATH.replace('<int:operation_id>', str(number))}"
        threading.Thread(
            target=self._run,
            args=(generation, number, document, plan, url),
            name=f"shopify-bulk-{number}",
            daemon=True,
        ).start()
        return created, []

    def current(self, operation_type: str = "QUERY") -> Record | None:
        """currentBulkOperation: the latest operation of that type (only queries exist here)."""
        with self._lock:
            if operation_type != "QUERY" or self._current is None:
                return None
            return self._operations[self._current]

    def get(self, gid: str) -> Record | None:
        """bulkOperation(id:): the operation with this global id, or None."""
        prefix = "gid://shopify/BulkOperation/"
        number = gid[len(prefix) :] if gid.startswith(prefix) else ""
        with self._lock:
            return self._operations.get(int(number)) if number.isdigit() else None

    def download(self, number: int) -> bytes | None:
        """The JSONL file of a completed operation."""
        with self._lock:
            return self._files.get(number)

    def _parse(self, query: str) -> tuple[DocumentNode, OperationDefinitionNode]:
        try:
            document = parse(query)
        except GraphQLError as syntax_error:
            raise BulkQueryError(f"Invalid bulk query: {syntax_error.message}") from syntax_error
        errors = validate(self.schema, document)
        if errors:
            raise BulkQueryError(f"Invalid bulk query: {errors[0].message}")
        operations = [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
            raise BulkQueryError("Invalid bulk query: exactly one query operation is required")
        return document, operations[0]

    def _plan(self, document: DocumentNode, operation: OperationDefinitionNode) -> _Plan:
        fragments = fragments_of(document)
        roots = collect_fields(operation.selection_set, fragments)
        query_root = self.schema.query_type
        assert query_root is not None
        if len(roots) != 1 or next(iter(roots.values()))[0].name.value != "customers":
            raise BulkQueryError("Invalid bulk query: the sandbox runs bulk queries over `customers` only")
        return self._connection_plan(query_root, next(iter(roots.values())), fragments, depth=1)

    def _connection_plan(
        self,
        owner: GraphQLObjectType,
        nodes: list[FieldNode],
        fragments: Mapping[str, FragmentDefinitionNode],
        depth: int,
    ) -> _Plan:
        connection = get_named_type(owner.fields[nodes[0].name.value].type)
        assert isinstance(connection, GraphQLObjectType)
        node_type = get_named_type(connection.fields["nodes"].type)
        assert isinstance(node_type, GraphQLObjectType)
        selections: dict[str, list[FieldNode]] = {}
        for inner in merged_subfields(nodes, fragments).values():
            name = inner[0].name.value
            if name == "nodes":
                _merge(selections, merged_subfields(inner, fragments))
            elif name == "edges":
                for edge_fields in merged_subfields(inner, fragments).values():
                    if edge_fields[0].name.value == "node":
                        _merge(selections, merged_subfields(edge_fields, fragments))
        plan = _Plan(node_type)
        for key, fields in selections.items():
            definition = node_type.fields.get(fields[0].name.value)
            if definition is not None and get_named_type(definition.type).name.endswith("Connection"):
                if depth >= 2:
                    raise BulkQueryError(
                        "Invalid bulk query: connections may be nested at most two levels deep"
                    )
                plan.children[key] = self._connection_plan(node_type, fields, fragments, depth + 1)
            else:
                plan.keys.append(key)
        if plan.children and "id" not in plan.keys:
            raise BulkQueryError(
                "Invalid bulk query: the parent 'node' field for a nested connection "
                "must select the 'id' field"
            )
        return plan

    def _run(self, generation: int, number: int, document: DocumentNode, plan: _Plan, url: str) -> None:
        context = RequestContext(customers=self.customers, unlimited_pages=True)
        try:
            result = execute_sync(self.schema, document, context_value=context)
            if result.errors or result.data is None:
                raise RuntimeError(result.errors)
            root_key = next(iter(result.data))
            lines = list(_flatten(plan, _connection_items(result.data[root_key]), parent_id=None))
        except Exception:  # a failed run is reported the Shopify way, not as a crashed thread
            self._finish(
                generation, number, status="FAILED", errorCode="INTERNAL_SERVER_ERROR", completedAt=now_iso()
            )
            return
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        roots = sum(1 for line in lines if "__parentId" not in line)
        self._finish(
            generation,
            number,
            file=body,
            status="COMPLETED",
            completedAt=now_iso(),
            objectCount=str(len(lines)),
            rootObjectCount=str(roots),
            fileSize=str(len(body)),
            # Shopify gives no URL when the query matched nothing.
            url=url if lines else None,
        )

    def _finish(self, generation: int, number: int, file: bytes | None = None, **changes: Any) -> None:
        with self._lock:
            if generation != self._generation or number not in self._operations:
                return  # the shop was reset while this operation ran
            if file is not None:
                self._files[number] = file
            self._operations[number] = {**self._operations[number], **changes}


def _merge(selections: dict[str, list[FieldNode]], more: dict[str, list[FieldNode]]) -> None:
    for key, fields in more.items():
        selections.setdefault(key, []).extend(fields)


def _connection_items(connection: Any) -> list[Record]:
    if not isinstance(connection, Mapping):
        return []
    for name, value in connection.items():
        is_edges = name != "nodes" and isinstance(value, list) and value
        if is_edges and all(isinstance(edge, Mapping) and "node" in edge for edge in value):
            return [edge["node"] for edge in value]
    nodes = connection.get("nodes")
    return list(nodes) if isinstance(nodes, list) else []


def _flatten(plan: _Plan, items: list[Record], parent_id: str | None) -> Iterator[Record]:
    for item in items:
        line = {key: item.get(key) for key in plan.keys}
        if parent_id is not None:
            line["__parentId"] = parent_id
        yield line
        for key, child in plan.children.items():
            yield from _flatten(child, _connection_items(item.get(key)), parent_id=item.get("id"))
