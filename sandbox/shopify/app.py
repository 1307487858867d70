"""The Flask app of the Shopify emulator: the Admin GraphQL endpoint, bulk downloads, /_sandbox/ controls."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable
from typing import Any

from flask import Flask, Request, Response, jsonify, request, send_file

from sandbox.common import answer_at_once, install_controls
from sandbox.common.control import CONTROL_PREFIX
from sandbox.shopify.bulk import DOWNLOAD_PATH, EXPIRED_BODY, utc_now
from sandbox.shopify.cost import MAX_QUERY_COST
from sandbox.shopify.customers import customer_gid
from sandbox.shopify.execution import AdminApi, GraphQLRequest
from sandbox.shopify.webhooks import WebhookSender

# The stable versions Shopify supports as of November 2026 (each quarterly version for 12 months).
# A request for any other version (retired, like 2025-01, or unknown) is not refused: Shopify serves
# it with the oldest supported version and says so in X-Shopify-API-Version, as every answer does.
# https://shopify.dev/docs/api/usage/versioning#version-fall-forward
DEFAULT_API_VERSIONS = ("2026-01", "2026-04", "2026-07", "2026-10")
VERSION_HEADER = "X-Shopify-API-Version"
DEFAULT_ACCESS_TOKEN = "shpat_sandbox"
GRAPHQL_PATH = "/admin/api/<version>/graphql.json"
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
MISSING_QUERY = {"errors": {"query": "Required parameter missing or invalid"}}

# What injected server errors look like; Shopify's exact bodies for each status are UNCONFIRMED, and
# clients must not depend on them (502/503 often come from the edge, as HTML).
_SERVER_ERRORS: tuple[tuple[int, str, str], ...] = (
    (
        500,
        "application/json",
        '{"errors":[{"message":"Internal error. Looks like something went wrong on our end.",'
        '"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}',
    ),
    (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (503, "text/html", "<html><body><h1>503 Service Unavailable</h1></body></html>"),
)


def create_app(
    *,
    bucket_size: float = 2000,
    restore_rate: float = 100.0,
    access_token: str = DEFAULT_ACCESS_TOKEN,
    api_versions: Iterable[str] = DEFAULT_API_VERSIONS,
    max_query_cost: int = MAX_QUERY_COST,
    webhooks: WebhookSender | None = None,
) -> Flask:
    """A Shopify Admin GraphQL emulator; bucket and restore rate are the shop plan's cost limits.

    With `webhooks`, every customer change through the API is sent as Shopify's webhook (what was
    sent: GET /_sandbox/webhooks)."""
    app = Flask("sandbox.shopify")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Shopify's key order: errors, data, extensions
    api = AdminApi(bucket_size=bucket_size, restore_rate=restore_rate, max_query_cost=max_query_cost)
    versions = frozenset(api_versions)
    oldest_supported = min(versions)

    def served_version(requested: str) -> str:
        return requested if requested in versions else oldest_supported

    rotation = _ServerErrorRotation()

    def render_error() -> Response:
        status, content_type, body = rotation.next_for(controls.faults.config)
        return Response(body, status=status, content_type=content_type)

    def render_throttle() -> Response:
        parsed = _graphql_request(request)
        return jsonify(api.throttled_body(api.estimate(parsed) if parsed else 0, injected=True))

    controls = install_controls(
        app,
        state=lambda: _state(api),
        reset=lambda: _reset(api, webhooks),
        render_throttle=render_throttle,
        render_error=render_error,
        faultable=lambda incoming: incoming.path.endswith("/graphql.json"),
    )

    @app.post(GRAPHQL_PATH)
    def graphql(version: str) -> tuple[Response, int] | Response:
        response, wrote = answer(version)
        if not wrote:
            # A timeout-after-commit fault only means something for a write (the duplicate-maker):
            # every other answer goes out at once.
            answer_at_once()
        return response

    def answer(version: str) -> tuple[Response | tuple[Response, int], bool]:
        """The response to one Admin GraphQL request, and whether it ran a mutation."""
        if request.headers.get("X-Shopify-Access-Token") != access_token:
            return (jsonify({"errors": INVALID_TOKEN}), 401), False
        parsed = _graphql_request(request)
        if parsed is None:
            return (jsonify(MISSING_QUERY), 400), False
        outcome = api.run(parsed, base_url=request.host_url)
        for name in outcome.root_fields:
            controls.counters.increment(f"graphql.{name}")
        if outcome.throttled:
            controls.counters.increment("graphql.throttled")
        return jsonify(outcome.body), outcome.is_mutation and not outcome.throttled

    @app.after_request
    def say_served_version(response: Response) -> Response:
        # Every Admin API answer names the version that served it: refusals and faults too.
        version = (request.view_args or {}).get("version") if request.url_rule else None
        if isinstance(version, str) and request.url_rule and request.url_rule.rule == GRAPHQL_PATH:
            response.headers[VERSION_HEADER] = served_version(version)
        return response

    @app.get(DOWNLOAD_PATH)
    def bulk_download(operation_id: int) -> tuple[Response, int] | Response:
        found = api.bulk_operations.download(operation_id)
        if found.path is None:
            return jsonify({"errors": "Not Found"}), 404
        if found.expired:
            return Response(EXPIRED_BODY, status=403, content_type="application/xml")
        # Streamed from disk: a 100,000-customer file is never one string in memory.
        return send_file(found.path, mimetype="application/jsonl", conditional=False)

    @app.post(f"{CONTROL_PREFIX}/bulk")
    def bulk_controls() -> tuple[Response, int] | Response:
        """{"fail_after_objects": N | null, "clock_offset_seconds": S}: bulk runs fail after writing
        N objects (FAILED with a partialDataUrl); the bulk clock runs S seconds ahead (URL expiry)."""
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "a JSON object is required"}), 400
        bulk = api.bulk_operations
        if "fail_after_objects" in body:
            fail_after = body["fail_after_objects"]
            if fail_after is not None and (not isinstance(fail_after, int) or fail_after < 0):
                return jsonify({"error": "fail_after_objects must be a whole number or null"}), 400
            bulk.fail_after_objects = fail_after
        if "clock_offset_seconds" in body:
            offset = body["clock_offset_seconds"]
            if not isinstance(offset, int | float):
                return jsonify({"error": "clock_offset_seconds must be a number"}), 400
            ahead = datetime.timedelta(seconds=offset)
            bulk.clock = lambda: utc_now() + ahead
        return jsonify({"fail_after_objects": bulk.fail_after_objects})

    if webhooks is not None:
        api.customers.on_change = webhooks.customer_changed
        app.extensions["sandbox.shopify.webhooks"] = webhooks

    @app.get("/_sandbox/webhooks")
    def webhook_deliveries() -> Response:
        return jsonify(webhooks.state() if webhooks is not None else {"url": None, "pending": 0, "sent": []})

    app.extensions["sandbox.shopify"] = api
    return app


def _reset(api: AdminApi, webhooks: WebhookSender | None) -> None:
    """Empty the shop; webhooks not sent yet are dropped with it."""
    api.reset()
    if webhooks is not None:
        webhooks.clear()


class _ServerErrorRotation:
    """Injected 5xx statuses in a fixed rotation that restarts with every fault configuration.

    So a seeded fault run is reproducible down to the status codes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config: object = None
        self._count = 0

    def next_for(self, config: object) -> tuple[int, str, str]:
        with self._lock:
            if config is not self._config:
                self._config, self._count = config, 0
            self._count += 1
            return _SERVER_ERRORS[(self._count - 1) % len(_SERVER_ERRORS)]


def _graphql_request(incoming: Request) -> GraphQLRequest | None:
    """The GraphQL request in a JSON body or an application/graphql body; None if there is no query."""
    if incoming.mimetype == "application/graphql":
        query = incoming.get_data(as_text=True)
        return GraphQLRequest(query) if query.strip() else None
    body = incoming.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
        return None
    variables = body.get("variables")
    operation_name = body.get("operationName")
    return GraphQLRequest(
        body["query"],
        variables if isinstance(variables, dict) else None,
        operation_name if isinstance(operation_name, str) and operation_name else None,
    )


def _state(api: AdminApi) -> dict[str, Any]:
    """GET /_sandbox/state: every customer as stored (plus its global id), and the bucket."""
    return {
        "customers": [
            {"id": customer_gid(record["legacyResourceId"]), **record} for record in api.customers.all()
        ],
        "bulk_operations": [operation for operation in [api.bulk_operations.current()] if operation],
        "throttle_status": api.bucket.throttle_status(),
    }
