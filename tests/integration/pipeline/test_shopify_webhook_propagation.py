"""A profile edited in Shopify reaches Smaregi and HubSpot by itself, over sockets: the sandbox shop's
own signed webhook → our `POST /webhooks/shopify` (a real HTTP server) → a real worker's
`membersync.shopify.customer_changed` → only the drift written. A second identical delivery writes
nothing, and neither does an edit that changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import create_app
from registrations.models import Change
from registrations.states import FINISHED_CHANGE_STATES
from sandbox.common import ThreadedServer
from sandbox.runner import shopify_webhooks
from sandbox.shopify import create_app as create_shop
from tests.support.pipeline import Pipeline, person

SECRET = "shpss_pipeline-webhook-secret-1234567890"
UPDATE_CUSTOMER = """
mutation($input: CustomerInput!) {
  customerUpdate(input: $input) { customer { id lastName } userErrors { field message } }
}"""


@pytest.fixture
def shop_with_webhooks(pipeline: Pipeline) -> Iterator[tuple[str, str]]:
    """Our web app on a real socket, and a Shopify sandbox shop whose webhooks go to it: (shop, web)."""
    pipeline.configure(SHOPIFY_WEBHOOK_SECRET=SECRET)
    web = ThreadedServer(create_app(pipeline.settings, database=pipeline.database), name="web").start()
    sender = shopify_webhooks(
        {
            "SANDBOX_SHOPIFY_WEBHOOK_URL": f"{web.url}/webhooks/shopify",
            "SHOPIFY_WEBHOOK_SECRET": SECRET,
            "SANDBOX_SHOPIFY_WEBHOOK_DUPLICATE_RATE": "0",
        }
    )
    shop = ThreadedServer(create_shop(webhooks=sender), name="shopify").start()
    pipeline.configure(SHOPIFY_ADMIN_URL=shop.url)
    try:
        yield shop.url, web.url
    finally:
        shop.stop()
        sender.stop()
        web.stop()


def wait_for(condition: Callable[[], Any], what: str, pipeline: Pipeline, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} after {timeout}s\n{pipeline.worker_log_tail()}")


def changes(pipeline: Pipeline) -> list[Change]:
    with pipeline.database.session() as session:
        rows = list(session.scalars(select(Change).order_by(Change.id)))
        session.expunge_all()
        return rows


def all_finished(pipeline: Pipeline, count: int) -> bool:
    rows = changes(pipeline)
    return len(rows) >= count and all(row.state in FINISHED_CHANGE_STATES for row in rows)


def writes(sandbox: Any) -> tuple[int, int]:
    """(Smaregi member updates, HubSpot upserts) the emulators answered so far."""
    return (
        sandbox.state("smaregi")["requests"].get("update_member", 0),
        sandbox.state("hubspot")["requests"].get("upsert_contacts", 0),
    )


def mirrors(sandbox: Any, email: str) -> tuple[str | None, str | None]:
    """The last name the Smaregi member and the HubSpot contact hold for `email`."""
    [member] = [m for m in sandbox.state("smaregi")["customers"] if m.get("mailAddress") == email]
    [contact] = [c for c in sandbox.state("hubspot")["contacts"] if c["properties"].get("email") == email]
    return member.get("lastName"), contact["properties"].get("lastname")


def edit_last_name(shop: str, customer_id: str, last_name: str) -> None:
    """The merchant edits the customer in the admin (customerUpdate, as the admin does)."""
    answer = requests.post(
        f"{shop}/admin/api/2026-10/graphql.json",
        headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        json={"query": UPDATE_CUSTOMER, "variables": {"input": {"id": customer_id, "lastName": last_name}}},
        timeout=10,
    ).json()
    assert answer["data"]["customerUpdate"]["userErrors"] == [], answer


def test_a_last_name_edited_in_shopify_reaches_smaregi_and_hubspot_by_itself(
    pipeline: Pipeline, sandbox: Any, shop_with_webhooks: tuple[str, str]
) -> None:
    shop, web = shop_with_webhooks
    pipeline.start_worker(concurrency=4)
    body = person(1)
    registration_id = pipeline.register(body)
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    # The registration's own customers/create came back as a webhook too, and changed nothing.
    wait_for(lambda: all_finished(pipeline, 1), "the registration's webhooks were not processed", pipeline)
    customer_id = pipeline.ops_status(registration_id)["steps"]["shopify"]["external_id"]
    assert mirrors(sandbox, body["email"]) == ("Yamada", "Yamada")
    before = writes(sandbox)

    edit_last_name(shop, customer_id, "Suzuki")

    wait_for(
        lambda: mirrors(sandbox, body["email"]) == ("Suzuki", "Suzuki"),
        "the new last name did not reach both mirrors",
        pipeline,
    )
    wait_for(lambda: all_finished(pipeline, 2), "the change was not finished", pipeline)
    edited = changes(pipeline)[-1]
    assert (edited.topic, edited.subject, edited.attempts) == ("customers/update", customer_id, 1)
    assert "wrote last_name" in (edited.outcome or "")
    assert writes(sandbox) == (before[0] + 1, before[1] + 1)  # one write each, the last name only

    # The same delivery again, byte for byte (Shopify's retry of a delivery we did answer): once.
    [sent] = [
        d
        for d in requests.get(f"{shop}/_sandbox/webhooks", timeout=5).json()["sent"]
        if "Suzuki" in d["body"]
    ]
    again = requests.post(
        f"{web}/webhooks/shopify", data=sent["body"].encode(), headers=sent["headers"], timeout=5
    )
    assert again.status_code == 200
    # And an edit that changes nothing: a new delivery, processed, with nothing to write.
    edit_last_name(shop, customer_id, "Suzuki")
    wait_for(lambda: all_finished(pipeline, 3), "the second edit was not processed", pipeline)
    rows = changes(pipeline)
    assert len(rows) == 3  # the repeated delivery id was not recorded again
    assert "no drift" in (rows[-1].outcome or "") and "wrote" not in (rows[-1].outcome or "")
    assert writes(sandbox) == (before[0] + 1, before[1] + 1)
    assert mirrors(sandbox, body["email"]) == ("Suzuki", "Suzuki")
