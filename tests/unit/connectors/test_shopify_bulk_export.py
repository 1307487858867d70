"""ShopifyClient.export_customers against canned answers: start, poll, stream, and every way it must not
hand on a partial shop as the whole one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from connectors.errors import PermanentError, RateLimited, TransientError
from connectors.http import HttpClient
from connectors.shopify import ShopifyClient, documents
from connectors.shopify.bulk import BulkExportBusy, BulkExportFailed, export_customers

BASE_URL = "https://membersync-test.myshopify.com"
ENDPOINT = f"{BASE_URL}/admin/api/2026-10/graphql.json"
RESULT_URL = "https://storage.googleapis.com/shopify-tiers-assets/bulk/1.jsonl?X-Goog-Signature=secret"
TOKEN = "shpat_unit_test"
OPERATION = "gid://shopify/BulkOperation/7"
COST = {"throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}


class Limiter:
    """Lets every call through but the ones numbered in `refuse` (1 = the first call)."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = refuse
        self.calls = 0

    def acquire(self, cost: float = 1.0) -> None:
        self.calls += 1
        if self.calls in self.refuse:
            raise RateLimited("shopify budget spent", system="shopify", retry_after=4.0)

    def observe(self, **_: Any) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None


def client(limiter: Limiter | None = None) -> ShopifyClient:
    http = HttpClient(
        system="shopify", base_url=BASE_URL, headers={"X-Shopify-Access-Token": TOKEN}, limiter=limiter
    )
    return ShopifyClient(http, api_version="2026-10")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def started(user_errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation = (
        None if user_errors else {"id": OPERATION, "status": "CREATED", "createdAt": "2026-12-06T03:00:00Z"}
    )
    payload = {"bulkOperation": operation, "userErrors": user_errors or []}
    return {"data": {"bulkOperationRunQuery": payload}, "extensions": {"cost": COST}}


def polled(status: str, **fields: Any) -> dict[str, Any]:
    operation = {
        "id": OPERATION,
        "status": status,
        "errorCode": None,
        "objectCount": "0",
        "rootObjectCount": "0",
        "fileSize": None,
        "url": None,
        "partialDataUrl": None,
        "createdAt": "2026-12-06T03:00:00Z",
        "completedAt": None,
        **fields,
    }
    return {"data": {"bulkOperation": operation}, "extensions": {"cost": COST}}


def customer_line(number: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/Customer/{number}",
        "defaultEmailAddress": {"emailAddress": f"m{number}@example.jp", "marketingState": "SUBSCRIBED"},
        "firstName": "Hanako",
        "lastName": f"Sato{number}",
        "defaultPhoneNumber": None,
        "defaultAddress": {
            "id": f"gid://shopify/MailingAddress/{number}",
            "zip": "100-0001",
            "address1": "Chiyoda 1",
        },
        "updatedAt": "2026-12-01T00:00:00Z",
        "factMemberNumber": {"value": f"MS{number:08d}"},
        "factPoints": {"value": str(number * 10)},
        "factRank": None,
        "registration": None,
        **extra,
    }


def jsonl(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(item) + "\n" for item in objects)


def graphql(api: responses.RequestsMock, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        api.post(ENDPOINT, json=body)


def export(shopify: ShopifyClient, sleeps: list[float] | None = None) -> Iterator[Any]:
    slept = [] if sleeps is None else sleeps
    return export_customers(shopify, poll_seconds=2.5, sleep=slept.append)


def test_starts_polls_until_completed_and_streams_each_customer(api: responses.RequestsMock) -> None:
    graphql(
        api,
        started(),
        polled("CREATED"),
        polled("RUNNING", objectCount="1"),
        polled("COMPLETED", objectCount="2", rootObjectCount="2", url=RESULT_URL),
    )
    api.get(RESULT_URL, body=jsonl(customer_line(1), customer_line(2)))
    sleeps: list[float] = []
    customers = list(export(client(), sleeps))
    assert [(c.id, c.email, c.member_number, c.points, c.postal_code) for c in customers] == [
        ("gid://shopify/Customer/1", "m1@example.jp", "MS00000001", 10, "100-0001"),
        ("gid://shopify/Customer/2", "m2@example.jp", "MS00000002", 20, "100-0001"),
    ]
    assert sleeps == [2.5, 2.5]  # after CREATED and RUNNING
    start = json.loads(api.calls[0].request.body)
    assert start["query"] == documents.START_BULK_CUSTOMER_EXPORT
    assert start["variables"] == {"query": documents.BULK_CUSTOMERS_QUERY}
    assert json.loads(api.calls[1].request.body)["variables"] == {"id": OPERATION}
    download = api.calls[-1].request
    assert "X-Shopify-Access-Token" not in download.headers  # the storage URL never sees the token


def test_nothing_is_started_before_the_first_customer_is_asked_for(api: responses.RequestsMock) -> None:
    export(client())
    assert len(api.calls) == 0
    api.assert_all_requests_are_fired = False


def test_a_failed_operation_is_a_transient_error_and_its_partial_data_is_not_read(
    api: responses.RequestsMock,
) -> None:
    partial = "https://storage.googleapis.com/shopify-tiers-assets/bulk/1-partial.jsonl"
    failed = polled("FAILED", errorCode="INTERNAL_SERVER_ERROR", objectCount="3", partialDataUrl=partial)
    graphql(api, started(), failed)
    customers: list[Any] = []
    with pytest.raises(BulkExportFailed, match="FAILED: errorCode INTERNAL_SERVER_ERROR") as raised:
        customers.extend(export(client()))
    assert isinstance(raised.value, TransientError)
    assert "partial data is not used" in str(raised.value)
    assert customers == []
    assert all(call.request.url == ENDPOINT for call in api.calls)  # the partial file was never fetched


@pytest.mark.parametrize("status", ["CANCELED", "EXPIRED"])
def test_an_operation_that_ends_otherwise_is_a_transient_error(
    api: responses.RequestsMock, status: str
) -> None:
    graphql(api, started(), polled(status))
    with pytest.raises(BulkExportFailed, match=status):
        list(export(client()))


@pytest.mark.parametrize("code", ["LIMIT_REACHED", "OPERATION_IN_PROGRESS"])
def test_a_shop_already_running_its_bulk_queries_is_busy_not_refused(
    api: responses.RequestsMock, code: str
) -> None:
    graphql(api, started([{"field": None, "message": "Bulk operations limit reached.", "code": code}]))
    with pytest.raises(BulkExportBusy) as raised:
        list(export(client()))
    assert isinstance(raised.value, TransientError)


def test_an_invalid_query_is_permanent(api: responses.RequestsMock) -> None:
    graphql(api, started([{"field": ["query"], "message": "Invalid bulk query", "code": "INVALID"}]))
    with pytest.raises(PermanentError):
        list(export(client()))


def test_an_expired_result_url_is_worth_a_new_export(api: responses.RequestsMock) -> None:
    graphql(api, started(), polled("COMPLETED", objectCount="1", url=RESULT_URL))
    api.get(
        RESULT_URL, status=403, body="<Error><Code>AccessDenied</Code><Details>Request has expired</Details>"
    )
    with pytest.raises(BulkExportFailed, match="bulk result download") as raised:
        list(export(client()))
    assert "X-Goog-Signature" not in str(raised.value)


def test_a_file_shorter_than_the_object_count_raises_after_its_last_line(api: responses.RequestsMock) -> None:
    graphql(api, started(), polled("COMPLETED", objectCount="3", url=RESULT_URL))
    api.get(RESULT_URL, body=jsonl(customer_line(1), customer_line(2)))
    customers: list[Any] = []
    with pytest.raises(BulkExportFailed, match="after 2 of 3 objects"):
        customers.extend(export(client()))
    assert len(customers) == 2


def test_a_child_line_means_the_query_and_the_reader_disagree(api: responses.RequestsMock) -> None:
    graphql(api, started(), polled("COMPLETED", objectCount="2", url=RESULT_URL))
    child = {"key": "points", "value": "10", "__parentId": "gid://shopify/Customer/1"}
    api.get(RESULT_URL, body=jsonl(customer_line(1), child))
    with pytest.raises(PermanentError, match="child line"):
        list(export(client()))


def test_a_completed_export_of_an_empty_shop_has_no_file(api: responses.RequestsMock) -> None:
    graphql(api, started(), polled("COMPLETED", objectCount="0", url=None))
    assert list(export(client())) == []


def test_throttled_and_failing_polls_wait_while_the_operation_runs_on(api: responses.RequestsMock) -> None:
    graphql(api, started())
    api.post(ENDPOINT, status=502, body="<html>Bad Gateway</html>")
    graphql(api, polled("COMPLETED", objectCount="0"))
    sleeps: list[float] = []
    # The start takes a token; the first poll is refused by our own budget, the next gets a 502.
    assert list(export(client(Limiter(refuse=frozenset({2}))), sleeps)) == []
    assert sleeps == [4.0, 2.5]


def test_polls_that_keep_failing_give_up(api: responses.RequestsMock) -> None:
    graphql(api, started())
    for _ in range(6):
        api.post(ENDPOINT, status=503, body="unavailable")
    with pytest.raises(TransientError):
        list(export(client()))


def test_an_operation_running_past_the_timeout_is_given_up(api: responses.RequestsMock) -> None:
    graphql(api, started(), polled("RUNNING"), polled("RUNNING"))
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(BulkExportFailed, match="still RUNNING"):
        list(
            export_customers(
                client(), poll_seconds=60, timeout_seconds=100, sleep=sleep, clock=lambda: now[0]
            )
        )


def test_a_download_that_breaks_off_is_a_transient_error(
    api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphql(api, started(), polled("COMPLETED", objectCount="2", url=RESULT_URL))
    api.get(RESULT_URL, body=jsonl(customer_line(1), customer_line(2)))

    def broken(self: requests.Response, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield json.dumps(customer_line(1)).encode()
        raise requests.exceptions.ChunkedEncodingError("connection reset")

    monkeypatch.setattr(requests.Response, "iter_lines", broken)
    customers: list[Any] = []
    with pytest.raises(BulkExportFailed, match="broke off"):
        customers.extend(export(client()))
    assert len(customers) == 1
