"""The Shopify emulator's email marketing consent over real sockets: the states Shopify refuses as input
are refused, customerEmailMarketingConsentUpdate stores what it is given, and it reads back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.shopify import documents
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app

pytestmark = pytest.mark.integration

TOKEN = "shpat_sandbox"
EMAIL = "hanako@example.jp"
READ_ONLY = ["NOT_SUBSCRIBED", "INVALID", "REDACTED"]
CONSENT_PATH = ["emailMarketingConsent", "marketingState"]
READ_CONSENT = """query ReadConsent($id: ID!) {
  customer(id: $id) { defaultEmailAddress { marketingState marketingOptInLevel marketingUpdatedAt } }
}"""


class Shop:
    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/admin/api/2026-10/graphql.json",
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": TOKEN},
            timeout=5,
        )
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"])

    def create(self, **customer_input: Any) -> dict[str, Any]:
        return dict(self.post(documents.CREATE_CUSTOMER, {"input": customer_input})["customerCreate"])

    def consent(self, customer_id: str, **consent: Any) -> dict[str, Any]:
        variables = {"input": {"customerId": customer_id, "emailMarketingConsent": consent}}
        return dict(
            self.post(documents.UPDATE_MARKETING_CONSENT, variables)["customerEmailMarketingConsentUpdate"]
        )

    def customers(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/_sandbox/state", timeout=5).json()["customers"])


@pytest.fixture(scope="module")
def running() -> Iterator[str]:
    server = ThreadedServer(create_app(), port=0).start()
    yield server.url
    server.stop()


@pytest.fixture
def shop(running: str) -> Shop:
    assert requests.post(f"{running}/_sandbox/reset", timeout=5).status_code == 200
    return Shop(running)


@pytest.mark.parametrize("state", READ_ONLY)
def test_a_create_with_a_read_only_state_is_refused_and_stores_nothing(shop: Shop, state: str) -> None:
    payload = shop.create(email=EMAIL, firstName="Hanako", emailMarketingConsent={"marketingState": state})

    assert payload["customer"] is None
    [error] = payload["userErrors"]
    assert error["field"] == CONSENT_PATH and state in error["message"]
    assert shop.customers() == []


def test_a_create_without_consent_keeps_shopifys_default(shop: Shop) -> None:
    payload = shop.create(email=EMAIL, firstName="Hanako")

    assert payload["userErrors"] == []
    assert payload["customer"]["defaultEmailAddress"]["marketingState"] == "NOT_SUBSCRIBED"
    assert payload["customer"]["defaultEmailAddress"]["marketingUpdatedAt"] is None


def test_consent_without_an_email_is_refused_at_create(shop: Shop) -> None:
    payload = shop.create(firstName="Hanako", emailMarketingConsent={"marketingState": "PENDING"})
    assert payload["customer"] is None and payload["userErrors"][0]["field"] == ["email"]


@pytest.mark.parametrize("state", READ_ONLY)
def test_customer_update_refuses_a_read_only_state(shop: Shop, state: str) -> None:
    created = shop.create(email=EMAIL, emailMarketingConsent={"marketingState": "PENDING"})["customer"]
    variables = {"input": {"id": created["id"], "emailMarketingConsent": {"marketingState": state}}}

    payload = shop.post(documents.UPDATE_CUSTOMER, variables)["customerUpdate"]

    assert payload["customer"] is None and payload["userErrors"][0]["field"] == CONSENT_PATH
    assert shop.customers()[0]["emailMarketingConsent"]["marketingState"] == "PENDING"


@pytest.mark.parametrize("state", READ_ONLY)
def test_the_consent_update_refuses_a_read_only_state_with_its_code(shop: Shop, state: str) -> None:
    created = shop.create(email=EMAIL)["customer"]

    payload = shop.consent(created["id"], marketingState=state)

    assert payload["customer"] is None
    assert payload["userErrors"] == [
        {"field": CONSENT_PATH, "message": payload["userErrors"][0]["message"], "code": "INCLUSION"}
    ]


def test_double_opt_in_round_trips_pending_subscribed_unsubscribed(shop: Shop) -> None:
    created = shop.create(
        email=EMAIL,
        emailMarketingConsent={
            "marketingState": "PENDING",
            "marketingOptInLevel": "CONFIRMED_OPT_IN",
            "consentUpdatedAt": "2026-11-29T01:00:00Z",
        },
    )["customer"]
    assert created["defaultEmailAddress"]["marketingState"] == "PENDING"

    confirmed = shop.consent(
        created["id"],
        marketingState="SUBSCRIBED",
        marketingOptInLevel="CONFIRMED_OPT_IN",
        consentUpdatedAt="2026-11-29T02:30:00Z",
    )
    assert confirmed["userErrors"] == []
    assert confirmed["customer"]["defaultEmailAddress"] == {
        "emailAddress": EMAIL,
        "marketingState": "SUBSCRIBED",
        "marketingOptInLevel": "CONFIRMED_OPT_IN",
        "marketingUpdatedAt": "2026-11-29T02:30:00Z",
    }
    [stored] = shop.customers()
    assert stored["emailMarketingConsent"] == {
        "marketingState": "SUBSCRIBED",
        "marketingOptInLevel": "CONFIRMED_OPT_IN",
        "consentUpdatedAt": "2026-11-29T02:30:00Z",
    }

    withdrawn = shop.consent(created["id"], marketingState="UNSUBSCRIBED")
    assert withdrawn["customer"]["defaultEmailAddress"]["marketingState"] == "UNSUBSCRIBED"
    # Read back through a customer query as well, not only the mutation's answer.
    found = shop.post(READ_CONSENT, {"id": created["id"]})["customer"]
    assert found["defaultEmailAddress"]["marketingState"] == "UNSUBSCRIBED"
    assert found["defaultEmailAddress"]["marketingOptInLevel"] == "CONFIRMED_OPT_IN"


def test_the_consent_update_of_an_unknown_customer_or_one_without_email_is_refused(shop: Shop) -> None:
    unknown = shop.consent("gid://shopify/Customer/999", marketingState="SUBSCRIBED")
    assert unknown["customer"] is None and unknown["userErrors"][0]["field"] == ["customerId"]

    phone_only = shop.create(firstName="Taro", phone="+819012345678")["customer"]
    without_email = shop.consent(phone_only["id"], marketingState="SUBSCRIBED")
    assert without_email["customer"] is None and without_email["userErrors"][0]["field"] == ["customerId"]


def test_an_unknown_state_is_a_top_level_error(shop: Shop) -> None:
    created = shop.create(email=EMAIL)["customer"]
    variables = {
        "input": {"customerId": created["id"], "emailMarketingConsent": {"marketingState": "OPTED_IN"}}
    }
    response = requests.post(
        f"{shop.url}/admin/api/2026-10/graphql.json",
        json={"query": documents.UPDATE_MARKETING_CONSENT, "variables": variables},
        headers={"X-Shopify-Access-Token": TOKEN},
        timeout=5,
    )
    assert response.json()["errors"]
