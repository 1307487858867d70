"""The Smaregi sandbox sends webhooks as Smaregi does: to the configured endpoint
(SANDBOX_SMAREGI_WEBHOOK_URL, as `membersync dev` wires it to the dev web), ids only, with the
`Smaregi-Event` header, one attempt each (no retry after a failure), from the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, request

from cli.devserver import dev_environment
from sandbox.common import ThreadedServer
from sandbox.runner import DEFAULT_PORTS, start_sandbox

SCOPES = "pos.customers:read pos.customers:write pos.transactions:read"


class Receiver:
    """An endpoint that records what it is sent and answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/webhooks/smaregi/<token>")
        def receive(token: str) -> tuple[str, int]:
            with self.lock:
                self.received.append((dict(request.headers), request.get_json()))
            return "", self.status

        self.server = ThreadedServer(app, name="receiver").start()

    def events(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} events, not {count}: {self.received}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.stop()


@pytest.fixture
def smaregi(receiver: Receiver) -> Iterator[str]:
    """A Smaregi sandbox configured as `membersync dev` configures it, sending to the receiver."""
    env = dev_environment({"SMAREGI_WEBHOOK_TOKEN": "the-token"})
    assert env["SANDBOX_SMAREGI_WEBHOOK_URL"] == "http://127.0.0.1:8000/webhooks/smaregi/the-token"
    assert "pos.transactions:read" in env["SMAREGI_SCOPES"].split()
    url = f"{receiver.server.url}/webhooks/smaregi/the-token"
    running = start_sandbox(ports=dict.fromkeys(DEFAULT_PORTS, 0), env={"SANDBOX_SMAREGI_WEBHOOK_URL": url})
    yield running.urls["smaregi"]
    running.stop()


def call(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    token = requests.post(
        f"{base}/app/sandbox/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "client_credentials", "scope": SCOPES},
        timeout=5,
    ).json()["access_token"]
    return requests.request(
        method, f"{base}/sandbox{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=5
    )


def test_member_changes_and_point_movements_are_sent_as_ids_only(smaregi: str, receiver: Receiver) -> None:
    created = call(
        smaregi, "POST", "/pos/customers", {"customerCode": "C1", "lastName": "山田", "firstName": "花子"}
    )
    customer_id = created.json()["customerId"]
    call(smaregi, "PATCH", f"/pos/customers/{customer_id}", {"lastName": "鈴木"})
    moved = call(smaregi, "POST", f"/pos/customers/{customer_id}/point/add", {"point": "30"}).json()
    call(smaregi, "DELETE", f"/pos/customers/{customer_id}")

    events = receiver.events(5)

    assert [body for _, body in events] == [
        {
            "contractId": "sandbox",
            "event": "pos:customers",
            "action": "created",
            "customerIds": [customer_id],
        },
        {"contractId": "sandbox", "event": "pos:customers", "action": "edited", "customerIds": [customer_id]},
        {"contractId": "sandbox", "event": "pos:customers", "action": "edited", "customerIds": [customer_id]},
        {
            "contractId": "sandbox",
            "event": "pos:transactions",
            "action": "created",
            "transactionHeadIds": moved["transactionHeadIds"],
        },
        {
            "contractId": "sandbox",
            "event": "pos:customers",
            "action": "deleted",
            "customerIds": [customer_id],
        },
    ]
    headers = [headers for headers, _ in events]
    assert [h["Smaregi-Event"] for h in headers] == [body["event"] for _, body in events]
    assert all(h["Smaregi-Contract-Id"] == "sandbox" and h["Smaregi-Event-Id"] for h in headers)
    assert len({h["Smaregi-Event-Id"] for h in headers}) == 5


def test_a_failed_delivery_is_not_retried_and_the_endpoint_can_be_changed(
    smaregi: str, receiver: Receiver
) -> None:
    receiver.status = 500
    call(smaregi, "POST", "/pos/customers", {"customerCode": "C1", "lastName": "山田", "firstName": "花子"})
    receiver.events(1)
    time.sleep(1.0)  # long enough for a retry, were there one
    assert len(receiver.received) == 1
    state = requests.get(f"{smaregi}/_sandbox/state", timeout=5).json()["webhook"]
    assert [delivery["outcome"] for delivery in state["deliveries"]] == ["500"]

    only_transactions = {"url": state["url"], "events": ["pos:transactions"]}
    requests.post(f"{smaregi}/_sandbox/webhook", json=only_transactions, timeout=5).raise_for_status()
    call(smaregi, "POST", "/pos/customers", {"customerCode": "C2", "lastName": "山田", "firstName": "花子"})
    requests.post(f"{smaregi}/_sandbox/webhook", json={"url": None}, timeout=5).raise_for_status()
    call(smaregi, "POST", "/pos/customers", {"customerCode": "C3", "lastName": "山田", "firstName": "花子"})
    time.sleep(0.5)
    assert len(receiver.received) == 1
