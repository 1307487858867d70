"""The sandbox shop sends Shopify's customer webhooks: REST-shaped bodies signed over the raw bytes,
Shopify's headers, from a background thread, retried with the original payload and webhook id, and
now and then sent twice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, Response, request

from sandbox.common import ThreadedServer
from sandbox.runner import shopify_webhooks
from sandbox.shopify import create_app as create_shop
from sandbox.shopify.webhooks import WebhookSender

SECRET = "sandbox-webhook-secret"
CREATE = """
mutation($input: CustomerInput!) {
  customerCreate(input: $input) { customer { id } userErrors { field message } }
}"""


class Receiver:
    """A webhook endpoint that refuses its first `failures` deliveries with a 500."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/hook")
        def hook() -> Response:
            with self.lock:
                self.received.append((dict(request.headers), request.get_data()))
                failing = len(self.received) <= self.failures
            return Response(status=500 if failing else 200)

        self.server = ThreadedServer(app, name="receiver").start()

    def wait(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.received)} deliveries, expected {count}")


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", 0))
    yield made
    made.server.stop()


def shop(receiver: Receiver, **options: Any) -> tuple[ThreadedServer, WebhookSender]:
    sender = WebhookSender(f"{receiver.server.url}/hook", SECRET, **{"duplicate_rate": 0.0, **options})
    return ThreadedServer(create_shop(webhooks=sender), name="shopify").start(), sender


def create_customer(server: ThreadedServer, email: str = "hanako@example.com") -> str:
    answer = requests.post(
        f"{server.url}/admin/api/2026-10/graphql.json",
        headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        json={
            "query": CREATE,
            "variables": {"input": {"email": email, "firstName": "Hanako", "lastName": "Yamada"}},
        },
        timeout=5,
    ).json()
    customer_id: str = answer["data"]["customerCreate"]["customer"]["id"]
    return customer_id


def test_a_customer_create_is_sent_signed_with_shopify_headers(receiver: Receiver) -> None:
    server, sender = shop(receiver)
    try:
        customer_id = create_customer(server)
        [(headers, raw)] = receiver.wait(1)
    finally:
        server.stop()
        sender.stop()
    expected = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    assert headers["X-Shopify-Hmac-Sha256"] == expected
    assert headers["X-Shopify-Topic"] == "customers/create"
    assert headers["X-Shopify-Shop-Domain"] == "sandbox.myshopify.com"
    assert headers["X-Shopify-Api-Version"] == "2026-10"
    assert (
        headers["X-Shopify-Webhook-Id"]
        and headers["X-Shopify-Event-Id"]
        and headers["X-Shopify-Triggered-At"]
    )
    body = json.loads(raw)
    assert body["admin_graphql_api_id"] == customer_id
    assert body["id"] == int(customer_id.rpartition("/")[2])
    assert (body["email"], body["first_name"], body["last_name"]) == (
        "hanako@example.com",
        "Hanako",
        "Yamada",
    )
    assert body["updated_at"]


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_a_failed_delivery_is_retried_with_the_original_payload_and_webhook_id(receiver: Receiver) -> None:
    server, sender = shop(receiver, retry_seconds=(0.05, 0.05, 0.05))
    try:
        create_customer(server)
        deliveries = receiver.wait(3)
        time.sleep(0.2)  # answered 200 on the third: no fourth
        assert len(receiver.received) == 3
        state = requests.get(f"{server.url}/_sandbox/webhooks", timeout=5).json()
    finally:
        server.stop()
        sender.stop()
    assert len({headers["X-Shopify-Webhook-Id"] for headers, _ in deliveries}) == 1
    assert len({raw for _, raw in deliveries}) == 1
    assert [entry["status"] for entry in state["sent"]] == [500, 500, 200]


def test_a_delivery_is_now_and_then_sent_twice(receiver: Receiver) -> None:
    server, sender = shop(receiver, duplicate_rate=1.0)
    try:
        create_customer(server)
        first, second = receiver.wait(2)
    finally:
        server.stop()
        sender.stop()
    assert first[0]["X-Shopify-Webhook-Id"] == second[0]["X-Shopify-Webhook-Id"] and first[1] == second[1]


def test_the_runner_sends_webhooks_only_when_a_url_is_configured() -> None:
    assert shopify_webhooks({}) is None
    with pytest.raises(ValueError, match="SHOPIFY_WEBHOOK_SECRET"):
        shopify_webhooks({"SANDBOX_SHOPIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    sender = shopify_webhooks(
        {
            "SANDBOX_SHOPIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "SHOPIFY_WEBHOOK_SECRET": SECRET,
            "SANDBOX_SHOPIFY_WEBHOOK_RETRY_SECONDS": "1,2",
        }
    )
    try:
        assert sender.duplicate_rate == 0.02 and sender.retry_seconds == (1.0, 2.0)
    finally:
        sender.stop()


def test_make_dev_wires_the_sandbox_shop_to_the_dev_web() -> None:
    from cli.devserver import dev_environment

    env = dev_environment({})
    assert env["SANDBOX_SHOPIFY_WEBHOOK_URL"] == "http://127.0.0.1:8000/webhooks/shopify"
    assert env["SHOPIFY_WEBHOOK_SECRET"]  # the same secret signs (sandbox) and verifies (web)
    assert dev_environment({"PORT": "9000"})["SANDBOX_SHOPIFY_WEBHOOK_URL"].startswith(
        "http://127.0.0.1:9000/"
    )


def test_a_customer_delete_is_sent_with_the_customer_ids_only(receiver: Receiver) -> None:
    server, sender = shop(receiver)
    try:
        customer_id = create_customer(server)
        answer = requests.post(
            f"{server.url}/admin/api/2026-10/graphql.json",
            headers={"X-Shopify-Access-Token": "shpat_sandbox"},
            json={
                "query": "mutation($input: CustomerDeleteInput!) { customerDelete(input: $input) "
                "{ deletedCustomerId shop { name } userErrors { field message } } }",
                "variables": {"input": {"id": customer_id}},
            },
            timeout=5,
        ).json()
        _, (headers, raw) = receiver.wait(2)
        gone = requests.get(f"{server.url}/_sandbox/state", timeout=5).json()["customers"]
    finally:
        server.stop()
        sender.stop()
    assert answer["data"]["customerDelete"]["deletedCustomerId"] == customer_id
    assert gone == []
    assert headers["X-Shopify-Topic"] == "customers/delete"
    body = json.loads(raw)
    assert body["admin_graphql_api_id"] == customer_id and "email" not in body
