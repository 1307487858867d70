"""Bulk query operations: run a customers query over every record and serve the result as JSONL.

As on Shopify (API 2026-10, shopify.dev bulk operations pages and changelog):
- up to `MAX_RUNNING` (5) bulk queries run at once per app and shop; one more is refused with the
  userError code LIMIT_REACHED (which code Shopify uses for this since 2026-01 is UNCONFIRMED: the
  schema's BulkOperationUserErrorCode offers LIMIT_REACHED "Bulk operations limit reached" and
  OPERATION_IN_PROGRESS, the one-at-a-time answer of older versions; clients treat both as "later");
- the JSONL file has one object per line; objects of a nested connection carry `__parentId`. With
  `groupObjects: false` (the default) they are NOT written right after their parent: each slice of
  `SLICE` root objects is written parents first, then their children, then grandchildren — so a
  reader must join by `__parentId`. `groupObjects: true` writes every child right after its parent;
- a query has one top-level connection (`customers` here), at most five connections in all, nested
  at most two levels deep, and a parent of a nested connection must select `id`;
- `objectCount` / `rootObjectCount` are running counts while the operation runs;
- the result `url` expires `RESULT_LIFETIME` (7 days) after completion: the operation then reads
  EXPIRED and the download answers 403 (the storage service's exact expiry answer is UNCONFIRMED);
- a failed operation (errorCode INTERNAL_SERVER_ERROR) has `partialDataUrl` pointing at what it
  wrote before failing, or null when it wrote nothing. `fail_after_objects` injects that failure.

Files are written to a temporary folder as they are computed and served from disk by the emulator
at /bulk-operations/<n>.jsonl (Shopify hands out a signed storage URL instead; no auth either way),
so a 100,000-customer export is never one string in memory. `clock` is replaceable, so tests and
`POST /_sandbox/bulk {"clock_offset_seconds": ...}` can move past the expiry.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

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
from sandbox.shopify.customers import CustomerStore, normalise_email
from sandbox.shopify.resolvers import RequestContext

DOWNLOAD_PATH = "/bulk-operations/<int:operation_id>.jsonl"
GID_PREFIX = "gid://shopify/BulkOperation/"
MAX_RUNNING = 5
# "supports up to five connections with a maximum nesting depth of two levels" (the 2026-10 schema).
MAX_CONNECTIONS = 5
RESULT_LIFETIME = dt.timedelta(days=7)
# Root objects executed and written per step: bounds the emulator's memory and paces objectCount.
SLICE = 500
ACTIVE = frozenset({"CREATED", "RUNNING"})
LIMIT_REACHED = (
    f"Bulk operations limit reached. Please try again later. At most {MAX_RUNNING} bulk query "
    "operations may run at once for this app and shop."
)
# What the storage service answers for a result URL past its expiry (shape UNCONFIRMED).
EXPIRED_BODY = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    "<Message>Access denied.</Message><Details>Request has expired</Details></Error>"
)

Record = dict[str, Any]
Clock = Callable[[], dt.datetime]


class BulkQueryError(Exception):
    """The bulk query is not one Shopify would run."""


class _InjectedFailure(Exception):
    """The `fail_after_objects` fault: the run stops as an internal server error would stop it."""


@dataclass
class _Plan:
    """How to turn one node of the result into a JSONL line plus the lines of its nested connections."""

    node_type: GraphQLObjectType
    keys: list[str] = field(default_factory=list)
    children: dict[str, _Plan] = field(default_factory=dict)


@dataclass(frozen=True)
class Download:
    """What GET on a result URL finds: the file, or that the URL has expired (path None: unknown)."""

    path: Path | None
    expired: bool = False


def utc_now() -> dt.datetime:
    """The real clock."""
    return dt.datetime.now(dt.UTC)


def _shopify_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BulkOperations:
    """The shop's bulk query operations: up to MAX_RUNNING at once, results as files on disk."""

    def __init__(self, schema: GraphQLSchema, customers: CustomerStore, clock: Clock = utc_now) -> None:
        self.schema = schema
        self.customers = customers
        self.clock = self._real_clock = clock
        # Faults (POST /_sandbox/bulk): fail every run after writing this many objects.
        self.fail_after_objects: int | None = None
        self._lock = threading.Lock()
        self._generation = 0
        self._directory = Path(tempfile.mkdtemp(prefix="sandbox-shopify-bulk-"))
        weakref.finalize(self, shutil.rmtree, self._directory, True)
        self.clear()

    def clear(self) -> None:
        """Forget every operation and file, the injected failure and any clock offset."""
        with self._lock:
            self.clock = self._real_clock
            self._operations: dict[int, Record] = {}
            self._ids = itertools.count(1)
            self._latest: int | None = None
            self.fail_after_objects = None
            # Bumped by every reset: a run started before it must not write into the new shop's
            # operations, whose numbers start again from 1.
            self._generation += 1
            generation_directory = self._directory / str(self._generation)
            for old in self._directory.iterdir():
                shutil.rmtree(old, ignore_errors=True)
            generation_directory.mkdir()
            self._files = generation_directory

    def start(
        self, query: str, *, base_url: str, group_objects: bool = False
    ) -> tuple[Record | None, list[Record]]:
        """bulkOperationRunQuery: check the query, then run it in a thread; (operation, user errors)."""
        try:
            document, operation = self._parse(query)
            plan = self._plan(document, operation)
        except BulkQueryError as invalid:
            return None, [{"field": ["query"], "message": str(invalid), "code": "INVALID"}]
        with self._lock:
            running = sum(1 for known in self._operations.values() if known["status"] in ACTIVE)
            if running >= MAX_RUNNING:
                return None, [{"field": None, "message": LIMIT_REACHED, "code": "LIMIT_REACHED"}]
            number = next(self._ids)
            created = {
                "id": f"{GID_PREFIX}{number}",
                "status": "RUNNING",
                "type": "QUERY",
                "query": query,
                "createdAt": _shopify_time(self.clock()),
                "completedAt": None,
                "errorCode": None,
                "objectCount": "0",
                "rootObjectCount": "0",
                "fileSize": None,
                "url": None,
                "partialDataUrl": None,
            }
            self._operations[number] = created
            self._latest = number
            run = _Run(
                generation=self._generation,
                number=number,
                path=self._files / f"{number}.jsonl",
                url=f"{base_url.rstrip('/')}{DOWNLOAD_PATH.replace('<int:operation_id>', str(number))}",
                group_objects=group_objects,
                fail_after=self.fail_after_objects,
            )
        threading.Thread(
            target=self._run, args=(run, document, plan), name=f"shopify-bulk-{number}", daemon=True
        ).start()
        return dict(created), []

    def current(self, operation_type: str = "QUERY") -> Record | None:
        """currentBulkOperation (deprecated in 2026-10): the latest operation of that type."""
        with self._lock:
            if operation_type != "QUERY" or self._latest is None:
                return None
            return self._shown(self._operations[self._latest])

    def get(self, gid: str) -> Record | None:
        """bulkOperation(id:): the operation with this global id, or None."""
        number = gid[len(GID_PREFIX) :] if gid.startswith(GID_PREFIX) else ""
        with self._lock:
            found = self._operations.get(int(number)) if number.isdigit() else None
            return None if found is None else self._shown(found)

    def download(self, number: int) -> Download:
        """What the result URL of operation `number` serves right now."""
        with self._lock:
            operation = self._operations.get(number)
            if operation is None or operation.get("_path") is None:
                return Download(None)
            path = Path(operation["_path"])
            return Download(path, expired=self._expired(operation))

    def _shown(self, operation: Record) -> Record:
        """The operation as the API answers it: EXPIRED once a completed result's URL has lapsed."""
        shown = {name: value for name, value in operation.items() if not name.startswith("_")}
        if operation["status"] == "COMPLETED" and self._expired(operation):
            shown["status"] = "EXPIRED"
        return shown

    def _expired(self, operation: Record) -> bool:
        finished = operation.get("_finished")
        return isinstance(finished, dt.datetime) and self.clock() >= finished + RESULT_LIFETIME

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
        plan = self._connection_plan(query_root, next(iter(roots.values())), fragments, depth=1)
        if _connections(plan) > MAX_CONNECTIONS:
            raise BulkQueryError(f"Invalid bulk query: at most {MAX_CONNECTIONS} connections are supported")
        return plan

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

    def _run(self, run: _Run, document: DocumentNode, plan: _Plan) -> None:
        try:
            with run.path.open("w", encoding="utf-8") as out:
                offset = 0
                while True:
                    records = self.customers.records.page(offset, SLICE)
                    if not records:
                        break
                    offset += len(records)
                    roots = self._execute_slice(document, records)
                    lines = _flatten(plan, roots, None) if run.group_objects else _by_level(plan, roots)
                    run.write(out, lines)
                    if not self._progress(run):
                        return
                    if len(records) < SLICE:
                        break
        except Exception:  # a failed run is reported the Shopify way, not as a crashed thread
            self._finish(run, status="FAILED", error_code="INTERNAL_SERVER_ERROR")
            return
        self._finish(run, status="COMPLETED")

    def _execute_slice(self, document: DocumentNode, records: list[Record]) -> list[Record]:
        # The resolvers read customers through the store's read methods; handing them one slice at a
        # time keeps the emulator's memory bounded by SLICE whatever the shop's size.
        context = RequestContext(customers=cast(CustomerStore, _Slice(records)), unlimited_pages=True)
        result = execute_sync(self.schema, document, context_value=context)
        if result.errors or result.data is None:
            raise RuntimeError(result.errors)
        return _connection_items(next(iter(result.data.values())))

    def _progress(self, run: _Run) -> bool:
        """Publish the running counts; False when the shop was reset meanwhile (stop writing)."""
        with self._lock:
            operation = self._operations.get(run.number)
            if run.generation != self._generation or operation is None:
                return False
            operation.update(objectCount=str(run.objects), rootObjectCount=str(run.roots))
            return True

    def _finish(self, run: _Run, *, status: str, error_code: str | None = None) -> None:
        with self._lock:
            operation = self._operations.get(run.number)
            if run.generation != self._generation or operation is None:
                return  # the shop was reset while this operation ran
            finished = self.clock()
            wrote = run.objects > 0
            operation.update(
                status=status,
                errorCode=error_code,
                completedAt=_shopify_time(finished) if status == "COMPLETED" else None,
                objectCount=str(run.objects),
                rootObjectCount=str(run.roots),
                _finished=finished,
                _path=str(run.path) if wrote else None,
            )
            if status == "COMPLETED":
                # Shopify gives no URL when the query matched nothing.
                operation.update(fileSize=str(run.size), url=run.url if wrote else None)
            else:
                operation["partialDataUrl"] = run.url if wrote else None


@dataclass
class _Run:
    """One operation's run: where it writes and what it has written so far."""

    generation: int
    number: int
    path: Path
    url: str
    group_objects: bool
    fail_after: int | None
    objects: int = 0
    roots: int = 0
    size: int = 0

    def write(self, out: IO[str], lines: Iterator[Record]) -> None:
        for line in lines:
            if self.fail_after is not None and self.objects >= self.fail_after:
                out.flush()
                raise _InjectedFailure
            text = json.dumps(line, ensure_ascii=False) + "\n"
            out.write(text)
            self.size += len(text.encode())
            self.objects += 1
            self.roots += "__parentId" not in line
        out.flush()


class _Slice:
    """The read side of a CustomerStore over a slice of its customers (what resolve_customers calls)."""

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    def all(self) -> list[Record]:
        return self._records

    def iter_from(self, offset: int, chunk: int = SLICE) -> Iterator[Record]:
        return iter(self._records[offset:])

    def find_by_email(self, email: str) -> Record | None:
        wanted = normalise_email(email)
        return next(
            (record for record in self._records if normalise_email(record.get("email") or "") == wanted),
            None,
        )


def _connections(plan: _Plan) -> int:
    return 1 + sum(_connections(child) for child in plan.children.values())


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


def _line(plan: _Plan, item: Record, parent_id: str | None) -> Record:
    line = {key: item.get(key) for key in plan.keys}
    if parent_id is not None:
        line["__parentId"] = parent_id
    return line


def _flatten(plan: _Plan, items: list[Record], parent_id: str | None) -> Iterator[Record]:
    """groupObjects: true — every object followed at once by its children."""
    for item in items:
        yield _line(plan, item, parent_id)
        for key, child in plan.children.items():
            yield from _flatten(child, _connection_items(item.get(key)), parent_id=item.get("id"))


def _by_level(plan: _Plan, items: list[Record]) -> Iterator[Record]:
    """groupObjects: false — the slice's parents first, then all their children, then grandchildren."""
    level: list[tuple[_Plan, Record, str | None]] = [(plan, item, None) for item in items]
    while level:
        yield from (_line(node_plan, item, parent_id) for node_plan, item, parent_id in level)
        level = [
            (child, inner, item.get("id"))
            for node_plan, item, _ in level
            for key, child in node_plan.children.items()
            for inner in _connection_items(item.get(key))
        ]
