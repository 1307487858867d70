"""The Shopify emulator's bulk query operations over HTTP, as Shopify runs them in 2026-10: five at once,
children not grouped after their parent unless asked, a result URL that expires, partial data on failure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.shopify import documents
from sandbox.common import ThreadedServer
from sandbox.shopify import bulk as sandbox_bulk
from sandbox.shopify import create_app
from sandbox.shopify.execution import AdminApi

HEADERS = {"X-Shopify-Access-Token": "shpat_sandbox"}
SEVEN_DAYS = 7 * 24 * 3600
WITH_METAFIELDS = (
    "{ customers { edges { node { id firstName "
    'metafields(namespace: "membersync") { edges { node { key value } } } } } } }'
)
START = """
mutation Start($query: String!, $group: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $group) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""


class Shop:
    """A running emulator with just enough client to drive its bulk operations."""

    def __init__(self) -> None:
        self.server = ThreadedServer(create_app(), port=0).start()
        self.url = self.server.url
        self.api: AdminApi = self.server.app.extensions["sandbox.shopify"]
        self.endpoint = f"{self.url}/admin/api/2026-10/graphql.json"

    def post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"query": query, "variables": variables or {}}
        answer: dict[str, Any] = requests.post(self.endpoint, json=body, headers=HEADERS, timeout=5).json()
        return answer

    def start(self, query: str = WITH_METAFIELDS, *, group: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = self.post(START, {"query": query, "group": group})["data"][
            "bulkOperationRunQuery"
        ]
        return payload

    def wait(self, operation_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            operation = self.post(documents.POLL_BULK_OPERATION, {"id": operation_id})["data"][
                "bulkOperation"
            ]
            if operation["status"] not in {"CREATED", "RUNNING"} or time.monotonic() > deadline:
                return dict(operation)
            time.sleep(0.02)

    def run(self, query: str = WITH_METAFIELDS, *, group: bool = False) -> dict[str, Any]:
        started = self.start(query, group=group)
        assert started["userErrors"] == []
        return self.wait(started["bulkOperation"]["id"])

    def controls(self, **settings: Any) -> None:
        response = requests.post(f"{self.url}/_sandbox/bulk", json=settings, timeout=5)
        assert response.status_code == 200

    def seed(self, count: int, metafields_each: int = 2) -> None:
        for number in range(count):
            outcome = self.api.customers.create(
                {
                    "email": f"bulk{number}@example.jp",
                    "firstName": f"F{number}",
                    "metafields": [
                        {
                            "namespace": "membersync",
                            "key": f"k{index}",
                            "type": "single_line_text_field",
                            "value": f"{number}-{index}",
                        }
                        for index in range(metafields_each)
                    ],
                }
            )
            assert outcome.user_errors == []


def lines(url: str) -> list[dict[str, Any]]:
    download = requests.get(url, timeout=5)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("application/jsonl")
    return [json.loads(line) for line in download.text.splitlines()]


@pytest.fixture(scope="module")
def running_shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.server.stop()


@pytest.fixture
def shop(running_shop: Shop) -> Shop:
    requests.post(f"{running_shop.url}/_sandbox/reset", timeout=5)
    return running_shop


def test_five_bulk_queries_run_at_once_and_a_sixth_is_refused(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.seed(1)
    records, release = shop.api.customers.records, threading.Event()
    read_page = records.page

    def held_page(offset: int, limit: int) -> list[dict[str, Any]]:
        release.wait(10)
        return read_page(offset, limit)

    monkeypatch.setattr(records, "page", held_page)
    started = [shop.start() for _ in range(5)]
    assert all(payload["userErrors"] == [] for payload in started)
    assert {payload["bulkOperation"]["status"] for payload in started} == {"RUNNING"}
    sixth = shop.start()
    assert sixth["bulkOperation"] is None
    assert [error["code"] for error in sixth["userErrors"]] == ["LIMIT_REACHED"]
    release.set()
    finished = [shop.wait(payload["bulkOperation"]["id"]) for payload in started]
    assert {operation["status"] for operation in finished} == {"COMPLETED"}
    assert shop.start()["userErrors"] == []  # room again once they finished


def test_children_are_not_placed_after_their_parent_by_default(shop: Shop) -> None:
    shop.seed(3)
    operation = shop.run()
    assert operation["status"] == "COMPLETED"
    assert (operation["objectCount"], operation["rootObjectCount"]) == ("9", "3")
    assert operation["completedAt"] is not None and operation["createdAt"] is not None
    assert int(operation["fileSize"]) == len(requests.get(operation["url"], timeout=5).content)
    found = lines(operation["url"])
    parents = [line for line in found if "__parentId" not in line]
    assert [line["firstName"] for line in parents] == ["F0", "F1", "F2"]
    assert found[:3] == parents  # every parent first, then the children
    children = found[3:]
    by_parent = {parent["id"]: parent["firstName"][1:] for parent in parents}
    assert sorted((child["__parentId"], child["value"]) for child in children) == sorted(
        (parent_id, f"{number}-{index}") for parent_id, number in by_parent.items() for index in range(2)
    )


def test_group_objects_places_every_child_right_after_its_parent(shop: Shop) -> None:
    shop.seed(3)
    found = lines(shop.run(group=True)["url"])
    parent_id = None
    for line in found:
        if "__parentId" not in line:
            parent_id = line["id"]
        else:
            assert line["__parentId"] == parent_id
    assert [line.get("firstName") for line in found if "__parentId" not in line] == ["F0", "F1", "F2"]


def test_ungrouped_files_are_written_a_slice_at_a_time(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_bulk, "SLICE", 2)
    shop.seed(3, metafields_each=1)
    found = lines(shop.run()["url"])
    assert [("__parentId" in line, line.get("firstName") or line["value"]) for line in found] == [
        (False, "F0"),
        (False, "F1"),
        (True, "0-0"),
        (True, "1-0"),
        (False, "F2"),
        (True, "2-0"),
    ]


def test_the_result_url_expires_seven_days_after_completion(shop: Shop) -> None:
    shop.seed(1)
    operation = shop.run()
    shop.controls(clock_offset_seconds=SEVEN_DAYS - 60)
    assert requests.get(operation["url"], timeout=5).status_code == 200
    assert shop.wait(operation["id"])["status"] == "COMPLETED"
    shop.controls(clock_offset_seconds=SEVEN_DAYS + 1)
    expired = requests.get(operation["url"], timeout=5)
    assert expired.status_code == 403
    assert "expired" in expired.text
    assert shop.wait(operation["id"])["status"] == "EXPIRED"


def test_a_failed_operation_offers_only_its_partial_data(shop: Shop) -> None:
    shop.seed(4)
    shop.controls(fail_after_objects=5)
    failed = shop.run()
    assert (failed["status"], failed["errorCode"], failed["url"]) == ("FAILED", "INTERNAL_SERVER_ERROR", None)
    assert failed["completedAt"] is None
    assert failed["objectCount"] == "5"
    assert len(lines(failed["partialDataUrl"])) == 5
    shop.controls(fail_after_objects=0)
    nothing = shop.run()
    assert (nothing["status"], nothing["partialDataUrl"]) == ("FAILED", None)
    shop.controls(fail_after_objects=None)
    assert shop.run()["status"] == "COMPLETED"


def test_a_query_that_matches_nothing_completes_without_a_url(shop: Shop) -> None:
    operation = shop.run()
    assert (operation["status"], operation["objectCount"], operation["url"]) == ("COMPLETED", "0", None)


def test_bulk_query_that_shopify_would_refuse_is_a_user_error(shop: Shop) -> None:
    nested_without_id = "{ customers { edges { node { firstName metafields { edges { node { key } } } } } } }"
    five_nested = " ".join(f"m{n}: metafields {{ edges {{ node {{ key }} }} }}" for n in range(5))
    six_connections = f"{{ customers {{ edges {{ node {{ id {five_nested} }} }} }} }}"
    four_nested = " ".join(f"m{n}: metafields {{ edges {{ node {{ key }} }} }}" for n in range(4))
    assert shop.start(f"{{ customers {{ edges {{ node {{ id {four_nested} }} }} }} }}")["userErrors"] == []
    invalid = (
        "{ customers { edges { node { nickname } } } }",
        nested_without_id,
        six_connections,
        "not graphql",
    )
    for query in invalid:
        result = shop.start(query)
        assert result["bulkOperation"] is None
        assert result["userErrors"][0]["field"] == ["query"]
        assert result["userErrors"][0]["code"] == "INVALID"
    unknown = shop.post(documents.POLL_BULK_OPERATION, {"id": "gid://shopify/BulkOperation/99"})
    assert unknown["data"] == {"bulkOperation": None}


def test_a_reset_during_a_bulk_run_keeps_the_old_run_out_of_the_new_shop(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, records = shop.api.bulk_operations, shop.api.customers.records
    shop.seed(1, metafields_each=0)
    first_read_may_go, read_page = threading.Event(), records.page
    calls: list[int] = []

    def held_first_read(offset: int, limit: int) -> list[dict[str, Any]]:
        calls.append(1)
        if len(calls) == 1:  # the run started before the reset reads last
            first_read_may_go.wait(10)
        return read_page(offset, limit)

    monkeypatch.setattr(records, "page", held_first_read)
    bulk.start("{ customers { edges { node { email } } } }", base_url=shop.url)
    shop.api.reset()
    shop.api.customers.create({"email": "new@example.jp"})
    started, _ = bulk.start("{ customers { edges { node { id } } } }", base_url=shop.url)
    assert started is not None
    deadline = time.monotonic() + 10
    while (bulk.current() or {}).get("status") != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.01)
    first_read_may_go.set()
    for runner in [t for t in threading.enumerate() if t.name.startswith("shopify-bulk-")]:
        runner.join(timeout=10)
    current = bulk.current()
    assert current is not None and current["status"] == "COMPLETED"
    assert current["query"] == started["query"] and current["objectCount"] == "1"
    assert lines(current["url"]) == [{"id": "gid://shopify/Customer/1"}]
