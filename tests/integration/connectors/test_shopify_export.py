"""ShopifyClient.export_customers against the sandbox over a real socket: every customer, each with its own
member facts and address, from the bulk operation's JSONL (which never groups children for us)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.shopify import ShopifyClient
from connectors.shopify.bulk import BulkExportFailed
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app
from sandbox.shopify.execution import AdminApi

pytestmark = pytest.mark.integration

CUSTOMERS = 300


@pytest.fixture(scope="module")
def shop() -> Iterator[tuple[str, AdminApi]]:
    server = ThreadedServer(create_app(), port=0).start()
    api: AdminApi = server.app.extensions["sandbox.shopify"]
    for number in range(CUSTOMERS):
        facts = {"member_number": f"MS{number:08d}", "points": str(number * 3)}
        if number % 2:
            facts["rank"] = "gold"
        created = api.customers.create(
            {
                "email": f"export{number}@example.jp",
                "firstName": "Hanako",
                "lastName": f"Sato{number}",
                "metafields": [
                    {
                        "namespace": "$app:membersync",
                        "key": key,
                        "type": "number_integer" if key == "points" else "single_line_text_field",
                        "value": value,
                    }
                    for key, value in facts.items()
                ]
                + [
                    # Another app's metafield with a fact's key: never taken for ours.
                    {"namespace": "loyalty", "key": "points", "type": "number_integer", "value": "999999"}
                ],
            }
        )
        assert created.customer is not None
        if number % 3 == 0:
            gid = f"gid://shopify/Customer/{created.customer['legacyResourceId']}"
            address = {"zip": f"100-{number:04d}", "address1": f"Chiyoda {number}", "countryCode": "JP"}
            assert api.customers.add_address(gid, address, default=True)[1] == []
    yield server.url, api
    server.stop()


def client_for(url: str) -> ShopifyClient:
    settings = Settings(
        environment="test",
        shopify_admin_url=url,
        shopify_access_token=Secret("shpat_sandbox"),
        shopify_api_version="2026-10",
    )
    return ShopifyClient.from_settings(settings)


def test_every_customer_comes_once_with_its_own_facts_and_address(shop: tuple[str, AdminApi]) -> None:
    url, _ = shop
    exported = list(client_for(url).export_customers())
    assert len(exported) == CUSTOMERS
    by_email: dict[str, Any] = {customer.email: customer for customer in exported}
    assert len(by_email) == CUSTOMERS
    for number in range(CUSTOMERS):
        customer = by_email[f"export{number}@example.jp"]
        assert customer.last_name == f"Sato{number}"
        assert (customer.member_number, customer.points) == (f"MS{number:08d}", number * 3)
        assert customer.rank == ("gold" if number % 2 else None)
        expected = (f"100-{number:04d}", f"Chiyoda {number}") if number % 3 == 0 else (None, None)
        assert (customer.postal_code, customer.address) == expected


def test_a_failed_operation_raises_instead_of_handing_on_part_of_the_shop(shop: tuple[str, AdminApi]) -> None:
    url, _ = shop
    requests.post(f"{url}/_sandbox/bulk", json={"fail_after_objects": 120}, timeout=5).raise_for_status()
    try:
        received: list[Any] = []
        with pytest.raises(BulkExportFailed, match="FAILED"):
            received.extend(client_for(url).export_customers())
        assert received == []
    finally:
        requests.post(f"{url}/_sandbox/bulk", json={"fail_after_objects": None}, timeout=5)
