"""Every Shopify customer through a bulk operation: start it, poll it, stream its JSONL result.

Ordinary connection pagination stops at 25,000 objects, so a full read of the shop (the nightly
reconciliation) runs `bulkOperationRunQuery` (https://shopify.dev/docs/api/usage/bulk-operations/queries):
Shopify runs the query in the background, `bulkOperation(id:)` reports its status (the deprecated
`currentBulkOperation` is not used), and a COMPLETED operation's `url` serves one JSON object per line.

- The query (`documents.BULK_CUSTOMERS_QUERY`) reads the member facts and the registration mark as
  aliased single metafields, so every line is one whole customer: no `__parentId` child lines, which
  since 2026-10 are not grouped after their parent, and no join holding customers in memory. A child
  line therefore means the query and this reader disagree: PermanentError.
- The file is read as a stream (`requests` stream=True, line by line) and customers are yielded one
  at a time: memory stays flat at 100,000 customers. The download goes to Shopify's storage URL
  with a client of its own, without the Admin API token and outside the Admin API's cost bucket.
- FAILED (with or without a `partialDataUrl`), CANCELED or EXPIRED is a TransientError
  (`BulkExportFailed`): partial data is never passed on as if it were the whole shop. A file shorter
  than the operation's `objectCount` raises after its last line, so a caller that consumed the stream
  learns it was incomplete.
- Up to 5 bulk queries may run at once per app and shop; beyond that Shopify answers a userError
  (LIMIT_REACHED, or OPERATION_IN_PROGRESS from older versions): a TransientError (`BulkExportBusy`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests

from connectors.errors import ConnectorError, PermanentError, ThrottledError, TransientError
from connectors.http import STATUS_ERRORS, AnswerPolicy, Call, HttpClient, json_object
from connectors.ratelimit import RateLimiter
from connectors.shopify import documents
from connectors.shopify.answers import SYSTEM, ShopifyPolicy
from connectors.shopify.mapping import ShopifyCustomer, customer_from_node

if TYPE_CHECKING:
    from connectors.shopify.client import ShopifyClient

# Production polls every few seconds: a 100,000-customer export takes minutes on Shopify's side.
DEFAULT_POLL_SECONDS = 3.0
# A bulk query may run up to 10 days; a nightly run gives up long before and tries again next night.
DEFAULT_TIMEOUT_SECONDS = 6 * 3600.0
# Polls in a row that may fail (a 5xx, a timeout) while the operation runs on at Shopify.
POLL_FAILURES_TOLERATED = 5
# The mutation costs 10 points; bulkOperation(id:) reads one object.
START_COST = 10.0
POLL_COST = 1.0
BUSY_CODES = frozenset({"LIMIT_REACHED", "OPERATION_IN_PROGRESS"})
RUNNING = frozenset({"CREATED", "RUNNING"})
DOWNLOAD_CHUNK_BYTES = 64 * 1024


class BulkExportFailed(TransientError):
    """The bulk operation ended without a complete result (FAILED, CANCELED, EXPIRED, cut short)."""

    reason = "bulk_export_failed"


class BulkExportBusy(TransientError):
    """Shopify runs as many bulk queries for this app and shop as it allows: start again later."""

    reason = "bulk_export_busy"


class _StartPolicy(ShopifyPolicy):
    """bulkOperationRunQuery's answer: a busy shop is worth another try, any other refusal is not."""

    def body_error(
        self, response: requests.Response, call: Call, limiter: RateLimiter
    ) -> ConnectorError | None:
        payload = (json_object(response).get("data") or {}).get("bulkOperationRunQuery") or {}
        codes = {str(error.get("code")) for error in payload.get("userErrors") or []}
        if codes and codes <= BUSY_CODES:
            return BulkExportBusy(
                f"{SYSTEM} bulkOperationRunQuery: {', '.join(sorted(codes))} (bulk queries already running)",
                system=SYSTEM,
            )
        return super().body_error(response, call, limiter)


class _DownloadPolicy(AnswerPolicy):
    """The result file at Shopify's storage URL: a refusal means the URL lapsed (7 days) or is gone,
    which a new export mends, so worth another run."""

    statuses = {**STATUS_ERRORS, 403: BulkExportFailed, 404: BulkExportFailed}

    def where(self, call: Call) -> str:
        # The path only: a signed URL's query string is a credential.
        return f"{SYSTEM} bulk result download"


def export_customers(
    client: ShopifyClient,
    *,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ShopifyCustomer]:
    """Every customer of the shop, one at a time, from a new bulk operation (started on first next()).

    Raises BulkExportBusy, BulkExportFailed (both TransientError) or PermanentError; after a raise,
    what was yielded before is not the whole shop.
    """
    operation_id = _start(client)
    operation = _wait(client, operation_id, poll_seconds, timeout_seconds, sleep, clock)
    url = operation.get("url")
    if not url:
        return  # COMPLETED with nothing matched: Shopify gives no file
    expected = int(operation.get("objectCount") or 0)
    read = 0
    for line in _lines(client, str(url)):
        if "__parentId" in line:
            raise PermanentError(
                f"{SYSTEM} bulk export: a child line in a query that selects no connection", system=SYSTEM
            )
        read += 1
        yield customer_from_node(line)
    if read < expected:
        raise BulkExportFailed(
            f"{SYSTEM} bulk export: the result ended after {read} of {expected} objects", system=SYSTEM
        )


def _start(client: ShopifyClient) -> str:
    body = {
        "query": documents.START_BULK_CUSTOMER_EXPORT,
        "variables": {"query": documents.BULK_CUSTOMERS_QUERY},
    }
    response = client.http.using(_StartPolicy).request("POST", client.path, json=body, cost=START_COST)
    payload = json_object(response)["data"]["bulkOperationRunQuery"] or {}
    operation = payload.get("bulkOperation")
    if not isinstance(operation, Mapping) or not operation.get("id"):
        raise PermanentError(
            f"{SYSTEM} bulkOperationRunQuery: answer has neither an operation nor userErrors", system=SYSTEM
        )
    return str(operation["id"])


def _wait(
    client: ShopifyClient,
    operation_id: str,
    poll_seconds: float,
    timeout_seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Mapping[str, Any]:
    """Poll bulkOperation(id:) until it ends; the COMPLETED operation, else BulkExportFailed."""
    deadline = clock() + timeout_seconds
    failures = 0
    while True:
        try:
            operation = _poll(client, operation_id)
            failures = 0
        except ThrottledError as throttled:  # our budget or Shopify's: wait, the operation runs on
            sleep(max(throttled.retry_after or 0.0, poll_seconds))
            continue
        except TransientError:
            failures += 1
            if failures > POLL_FAILURES_TOLERATED:
                raise
            sleep(poll_seconds)
            continue
        status = operation.get("status")
        if status == "COMPLETED":
            return operation
        if status not in RUNNING:
            partial = " (its partial data is not used)" if operation.get("partialDataUrl") else ""
            raise BulkExportFailed(
                f"{SYSTEM} bulk export {status}: errorCode {operation.get('errorCode')}{partial}",
                system=SYSTEM,
            )
        if clock() >= deadline:
            raise BulkExportFailed(
                f"{SYSTEM} bulk export still {status} after {timeout_seconds:.0f} s", system=SYSTEM
            )
        sleep(poll_seconds)


def _poll(client: ShopifyClient, operation_id: str) -> Mapping[str, Any]:
    body = {"query": documents.POLL_BULK_OPERATION, "variables": {"id": operation_id}}
    response = client.http.request("POST", client.path, json=body, cost=POLL_COST)
    operation = json_object(response)["data"].get("bulkOperation")
    if not isinstance(operation, Mapping):
        raise PermanentError(f"{SYSTEM} bulkOperation: no such operation", system=SYSTEM)
    return operation


def _lines(client: ShopifyClient, url: str) -> Iterator[dict[str, Any]]:
    """The JSONL file's objects, read as they arrive."""
    download = HttpClient(
        system=SYSTEM, base_url="", timeouts=client.http.timeouts, policy=_DownloadPolicy(), pool_size=1
    )
    response = download.request("GET", url, stream=True)
    try:
        for raw in response.iter_lines(chunk_size=DOWNLOAD_CHUNK_BYTES):
            if raw.strip():
                yield json.loads(raw)
    except requests.RequestException as error:
        raise BulkExportFailed(
            f"{SYSTEM} bulk result download broke off ({type(error).__name__})", system=SYSTEM
        ) from None
    except ValueError:
        raise BulkExportFailed(f"{SYSTEM} bulk result: a line is not JSON", system=SYSTEM) from None
    finally:
        response.close()
        download.session.close()
