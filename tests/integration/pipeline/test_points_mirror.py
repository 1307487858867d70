"""Points added at the register reach the Shopify customer and the HubSpot contact by themselves, over
sockets: the Smaregi sandbox's own webhooks (pos:customers and pos:transactions, ids only) → our
`POST /webhooks/smaregi/<token>` (a real HTTP server) → a real worker's re-read → the mirror task →
only the drift written ($app:membersync points, membersync_points). A second delivery of the same
event writes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from app import create_app
from sandbox.common import ThreadedServer
from sandbox.shopify.metafields import APP_ID
from tests.support.pipeline import Pipeline, person

TOKEN = "pipeline-smaregi-webhook-token-0123456789"
SCOPES = "pos.customers:read pos.customers:write pos.transactions:read"
STORED_NAMESPACE = f"app--{APP_ID}--membersync"


@pytest.fixture
def web(pipeline: Pipeline, sandbox: Any) -> Iterator[str]:
    """Our web app on a real socket; the Smaregi sandbox sends its webhooks there, as configured."""
    pipeline.configure(SMAREGI_WEBHOOK_TOKEN=TOKEN, SMAREGI_SCOPES=SCOPES)
    server = ThreadedServer(create_app(pipeline.settings, database=pipeline.database), name="web").start()
    endpoint = f"{server.url}/webhooks/smaregi/{TOKEN}"
    requests.post(
        f"{sandbox.urls['smaregi']}/_sandbox/webhook", json={"url": endpoint}, timeout=5
    ).raise_for_status()
    try:
        yield endpoint
    finally:
        requests.post(f"{sandbox.urls['smaregi']}/_sandbox/webhook", json={"url": None}, timeout=5)
        server.stop()


def wait_for(condition: Callable[[], Any], what: str, pipeline: Pipeline, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout}s\n{pipeline.worker_log_tail()}")


def add_points_at_the_till(sandbox: Any, customer_id: str, points: int) -> None:
    """POST /pos/customers/{id}/point/add, as the register does (not a call of Membersync's)."""
    base = sandbox.urls["smaregi"]
    token = requests.post(
        f"{base}/app/sandbox/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "client_credentials", "scope": SCOPES},
        timeout=5,
    ).json()["access_token"]
    answer = requests.post(
        f"{base}/sandbox/pos/customers/{customer_id}/point/add",
        headers={"Authorization": f"Bearer {token}"},
        json={"point": str(points)},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text


def mirrored_points(sandbox: Any, email: str) -> tuple[str | None, str | None]:
    """The points the Shopify customer's app-owned metafield and the HubSpot contact hold."""
    [customer] = [c for c in sandbox.state("shopify")["customers"] if c.get("email") == email]
    shopify = next(
        (
            field["value"]
            for field in customer["metafields"]
            if (field["namespace"], field["key"]) == (STORED_NAMESPACE, "points")
        ),
        None,
    )
    [contact] = [c for c in sandbox.state("hubspot")["contacts"] if c["properties"].get("email") == email]
    return shopify, contact["properties"].get("membersync_points")


def mirror_runs(pipeline: Pipeline, customer_id: str) -> int:
    """How many mirror tasks for this member the worker has finished (its log line, ids only)."""
    return pipeline.worker_log_tail(chars=10**7).count(f"smaregi mirror of member {customer_id}:")


def writes(sandbox: Any) -> tuple[int, int]:
    """(Shopify metafieldsSet calls, HubSpot upserts) the emulators answered so far."""
    return (
        sandbox.state("shopify")["requests"].get("graphql.metafieldsSet", 0),
        sandbox.state("hubspot")["requests"].get("upsert_contacts", 0),
    )


def settled(pipeline: Pipeline, sandbox: Any, customer_id: str, quiet: float = 2.0) -> int:
    """Wait until every webhook the sandbox sent was answered and no mirror run started for `quiet`
    seconds; the number of mirror runs so far."""

    def delivered() -> bool:
        deliveries = sandbox.state("smaregi")["webhook"]["deliveries"]
        return bool(deliveries) and all(delivery["outcome"] == "200" for delivery in deliveries)

    wait_for(delivered, "the sandbox's webhooks were not all answered 200", pipeline)
    runs, since = mirror_runs(pipeline, customer_id), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.2)
        now = mirror_runs(pipeline, customer_id)
        if now != runs:
            runs, since = now, time.monotonic()
    return runs


def test_points_added_at_the_register_reach_shopify_and_hubspot_by_themselves(
    pipeline: Pipeline, sandbox: Any, web: str
) -> None:
    pipeline.start_worker(concurrency=4)
    body = person(1)
    registration_id = pipeline.register(body)
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    [member] = [m for m in sandbox.state("smaregi")["customers"] if m.get("mailAddress") == body["email"]]
    customer_id = member["customerId"]
    # (The registration's own member create came back as pos:customers too; its mirror run may have
    # come before the HubSpot step made the contact, so the balance of 0 is not asserted here.)

    add_points_at_the_till(sandbox, customer_id, 120)

    wait_for(
        lambda: mirrored_points(sandbox, body["email"]) == ("120", "120"),
        "the points did not reach both mirrors",
        pipeline,
    )
    [customer] = [c for c in sandbox.state("shopify")["customers"] if c.get("email") == body["email"]]
    [points] = [
        f for f in customer["metafields"] if (f["namespace"], f["key"]) == (STORED_NAMESPACE, "points")
    ]
    assert points["type"] == "number_integer"  # typed by the metafield definition
    runs = settled(pipeline, sandbox, customer_id)
    before = writes(sandbox)
    deliveries = sandbox.state("smaregi")["webhook"]["deliveries"]
    [event] = [delivery for delivery in deliveries if delivery["event"] == "pos:transactions"]

    # Smaregi may deliver an event twice: the same body again.
    again = {key: value for key, value in event.items() if key != "outcome"}
    answer = requests.post(
        web,
        data=json.dumps(again),
        headers={"Content-Type": "application/json", "Smaregi-Event": "pos:transactions"},
        timeout=5,
    )
    assert answer.status_code == 200

    wait_for(
        lambda: mirror_runs(pipeline, customer_id) > runs, "the second delivery was not mirrored", pipeline
    )
    assert writes(sandbox) == before
    assert mirrored_points(sandbox, body["email"]) == ("120", "120")
