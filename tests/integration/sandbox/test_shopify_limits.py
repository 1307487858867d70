"""The Shopify emulator under pressure: cost, the leaky bucket, faults, concurrency, scale (bulk export:
test_shopify_bulk.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.shopify import documents
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app
from sandbox.shopify.cost import CostBucket
from sandbox.shopify.customers import CustomerStore, normalise_email
from sandbox.shopify.execution import AdminApi
from sandbox.shopify.pagination import encode_cursor

HEADERS = {"X-Shopify-Access-Token": "shpat_sandbox"}
CHEAP_QUERY = "{ __typename }"  # costs nothing: reads the bucket without draining it


class Shop:
    """A running emulator with just enough client to drive it."""

    def __init__(self, **config: Any) -> None:
        self.server = ThreadedServer(create_app(**config), port=0).start()
        self.url = self.server.url
        self.api: AdminApi = self.server.app.extensions["sandbox.shopify"]
        self.endpoint = f"{self.url}/admin/api/2026-10/graphql.json"

    def post(
        self, query: str, variables: dict[str, Any] | None = None, timeout: float = 5
    ) -> requests.Response:
        body = {"query": query, "variables": variables or {}}
        return requests.post(self.endpoint, json=body, headers=HEADERS, timeout=timeout)

    def create(self, timeout: float = 5, **customer_input: Any) -> dict[str, Any]:
        return dict(self.post(documents.CREATE_CUSTOMER, {"input": customer_input}, timeout=timeout).json())

    def faults(self, **faults: Any) -> None:
        assert requests.post(f"{self.url}/_sandbox/faults", json=faults, timeout=5).status_code == 200

    def state(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_sandbox/state", timeout=5).json())


@pytest.fixture(scope="module")
def running_shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.server.stop()


@pytest.fixture
def shop(running_shop: Shop) -> Shop:
    requests.post(f"{running_shop.url}/_sandbox/reset", timeout=5)
    return running_shop


def test_every_kind_of_response_carries_the_cost(shop: Shop) -> None:
    shop.create(email="a@example.jp")
    answers = [
        shop.post("{ customers(first: 10) { edges { node { id } } } }"),
        shop.post(documents.CREATE_CUSTOMER, {"input": {"email": "a@example.jp"}}),  # user error
        shop.post("{ customers(first: 1) { nodes { unknownField } } }"),  # validation error
        shop.post(
            "{ customers(first: 250) { nodes { metafields(first: 250) { nodes { id } } } } }"
        ),  # too costly
    ]
    for answer in answers:
        cost = answer.json()["extensions"]["cost"]
        assert set(cost) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
        status = cost["throttleStatus"]
        assert isinstance(status["maximumAvailable"], float) and status["maximumAvailable"] == 2000.0
        assert isinstance(status["currentlyAvailable"], int)
        assert isinstance(status["restoreRate"], float) and status["restoreRate"] == 100.0


def test_connection_cost_is_two_plus_page_size_and_the_unused_part_is_refunded(shop: Shop) -> None:
    for number in range(3):
        shop.create(email=f"m{number}@example.jp")
    cost = shop.post("{ customers(first: 10) { edges { node { id defaultAddress { city } } } } }").json()
    cost = cost["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 10 * 2
    # Three customers; a null object still costs its own point, its sub-fields nothing.
    assert cost["actualQueryCost"] == 2 + 3 * 2
    mutation = shop.create(email="m9@example.jp")
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 10


def test_a_query_over_1000_points_is_refused_before_running(shop: Shop) -> None:
    body = shop.post("{ customers(first: 250) { nodes { metafields(first: 5) { nodes { id } } } } }").json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + 250 * (1 + 2 + 5)
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert "data" not in body


class SteppedClock:
    """A clock that moves only when told: a burst is one instant however slow the host is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_drains_to_throttled_then_refills_at_the_restore_rate() -> None:
    shop = Shop(bucket_size=50, restore_rate=20.0)
    clock = SteppedClock()
    shop.api.bucket = CostBucket(50, 20.0, clock)  # the shop's own bucket, on a clock the test steps
    try:
        for _ in range(5):  # 5 mutations of 10 points empty a 50-point bucket
            assert "errors" not in shop.create(firstName="Drain")
        throttled = shop.create(firstName="One too many")
        assert throttled["errors"] == [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ]
        assert "data" not in throttled
        cost = throttled["extensions"]["cost"]
        assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (10, None)
        assert len(shop.state()["customers"]) == 5
        before = shop.post(CHEAP_QUERY).json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        clock.now += 0.4  # 8 points back: still short of a 10-point mutation
        assert shop.create(firstName="Too soon")["errors"][0]["extensions"]["code"] == "THROTTLED"
        clock.now += 0.2
        after = shop.post(CHEAP_QUERY).json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        assert after - before == 12  # restore_rate x 0.6 s
        assert "errors" not in shop.create(firstName="After the wait")
    finally:
        shop.server.stop()


def test_error_faults_answer_shopifys_server_errors(shop: Shop) -> None:
    shop.faults(error_rate=1.0, seed=7)
    statuses = {shop.post(CHEAP_QUERY).status_code for _ in range(3)}
    assert statuses == {500, 502, 503}
    shop.faults()
    assert shop.post(CHEAP_QUERY).status_code == 200


def test_faults_are_reproducible_for_a_seed(shop: Shop) -> None:
    def run() -> list[int]:
        shop.faults(error_rate=0.5, seed=42)
        return [shop.post(CHEAP_QUERY).status_code for _ in range(12)]

    first = run()
    assert 200 in first and set(first) - {200}
    assert run() == first


def test_throttle_faults_use_the_throttled_shape(shop: Shop) -> None:
    shop.faults(throttle_rate=1.0)
    response = shop.post(documents.CREATE_CUSTOMER, {"input": {"email": "t@example.jp"}})
    assert response.status_code == 200
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    # A client waits (requested - available) / restoreRate: the bucket must look too low, never full.
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 10
    assert shop.state()["customers"] == []


def test_latency_fault_slows_every_answer(shop: Shop) -> None:
    shop.faults(latency_ms=200)
    started = time.monotonic()
    shop.post(CHEAP_QUERY)
    assert time.monotonic() - started >= 0.2


def test_timeout_after_commit_stores_the_customer_and_never_answers(shop: Shop) -> None:
    shop.faults(timeout_after_commit_rate=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        shop.create(timeout=0.5, email="ghost@example.jp")
    assert shop.post(CHEAP_QUERY, timeout=2).status_code == 200  # reads are not held
    shop.faults()  # also releases the held request
    (customer,) = shop.state()["customers"]
    assert customer["email"] == "ghost@example.jp"
    # The client's retry is exactly what makes duplicates elsewhere; here Shopify refuses it.
    retry = shop.create(email="ghost@example.jp")["data"]["customerCreate"]
    assert retry["userErrors"] == [{"field": ["email"], "message": "Email has already been taken"}]


def test_concurrent_creates_of_one_email_make_one_customer(shop: Shop) -> None:
    spellings = ["race@example.jp", "RACE@example.jp", "Race@Example.JP", "race@EXAMPLE.jp"] * 5
    start = threading.Barrier(len(spellings))

    def create(email: str) -> dict[str, Any]:
        start.wait()
        return dict(shop.create(email=email)["data"]["customerCreate"])

    with ThreadPoolExecutor(max_workers=len(spellings)) as pool:
        outcomes = list(pool.map(create, spellings))
    assert sum(outcome["customer"] is not None for outcome in outcomes) == 1
    assert all(
        outcome["userErrors"] == [{"field": ["email"], "message": "Email has already been taken"}]
        for outcome in outcomes
        if outcome["customer"] is None
    )
    assert len(shop.state()["customers"]) == 1


def test_lookups_stay_fast_with_100000_customers(shop: Shop) -> None:
    records = shop.api.customers.records
    now = "2025-01-01T00:00:00Z"
    for number in range(100_000):
        records.insert(
            {
                "email": f"member{number}@example.jp",
                "firstName": None,
                "lastName": None,
                "phone": None,
                "note": None,
                "locale": "ja",
                "tags": [],
                "taxExempt": False,
                "addresses": [],
                "metafields": [],
                "state": "DISABLED",
                "verifiedEmail": True,
                "numberOfOrders": "0",
                "emailMarketingConsent": None,
                "createdAt": now,
                "updatedAt": now,
            }
        )
    started = time.monotonic()
    found = shop.post('{ customers(first: 1, query: "email:\\"MEMBER99998@example.jp\\"") { nodes { id } } }')
    by_id = shop.post('{ customer(id: "gid://shopify/Customer/99999") { email } }')
    cursor = shop.post(
        "query($after: String) { customers(first: 1, after: $after) { nodes { id } } }",
        {"after": encode_cursor((99_998, 99_998))},
    )
    duplicate = shop.create(email="member5@EXAMPLE.jp")
    elapsed = time.monotonic() - started
    assert found.json()["data"]["customers"]["nodes"] == [{"id": "gid://shopify/Customer/99999"}]
    assert by_id.json()["data"]["customer"] == {"email": "member99998@example.jp"}
    assert duplicate["data"]["customerCreate"]["userErrors"][0]["message"] == "Email has already been taken"
    assert cursor.json()["data"]["customers"]["nodes"] == [{"id": "gid://shopify/Customer/99999"}]
    assert elapsed < 1.0


# A small pool of addresses in changing case makes collisions the common case, not the rare one.
_EMAILS = st.sampled_from(["kei@example.jp", "ren@example.jp", "sora@example.jp"]).flatmap(
    lambda email: st.lists(st.booleans(), min_size=len(email), max_size=len(email)).map(
        lambda upper: "".join(char.upper() if flag else char for char, flag in zip(email, upper, strict=True))
    )
)
_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), _EMAILS, st.just(0)),
        st.tuples(st.just("update"), _EMAILS, st.integers(min_value=1, max_value=4)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(_OPERATIONS, st.integers(min_value=1, max_value=4))
def test_never_two_customers_with_one_email(operations: list[tuple[str, str, int]], threads: int) -> None:
    """Whatever the order, casing and interleaving of creates and updates: one email, one customer."""
    store = CustomerStore()

    def apply(operation: tuple[str, str, int]) -> None:
        kind, email, target = operation
        if kind == "create":
            store.create({"email": email})
        else:
            store.update({"id": f"gid://shopify/Customer/{target}", "email": email})

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(apply, operations))
    emails = [normalise_email(customer["email"]) for customer in store.all() if customer["email"]]
    assert len(emails) == len(set(emails))
    for customer in store.all():
        assert store.find_by_email(customer["email"]) == customer
