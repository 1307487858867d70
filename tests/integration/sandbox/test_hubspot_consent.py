"""The HubSpot emulator's marketing consent over real sockets: marketing-status properties refused on
every write path with HubSpot's error shape, and the Communication Preferences v3 calls."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.hubspot import HubSpotSettings, create_app

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer pat-sandbox"}
CONTACTS = "/crm/v3/objects/contacts"
PREFERENCES = "/communication-preferences/v3"
EMAIL = "hanako@example.jp"
READ_ONLY = ["hs_marketable_status", "hs_marketable_reason_type", "hs_email_optout", "hs_email_optout_1001"]


class HubSpot:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", AUTH)
        return requests.request(method, f"{self.url}{path}", timeout=5, **kwargs)

    def change(self, verb: str, **body: Any) -> requests.Response:
        return self.call(
            "POST", f"{PREFERENCES}/{verb}", json={"emailAddress": EMAIL, "subscriptionId": "1001", **body}
        )

    def subscribe(self, **body: Any) -> requests.Response:
        basis = {"legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "Confirmed by the mailed link"}
        return self.change("subscribe", **{**basis, **body})

    def status(self, email: str = EMAIL) -> dict[str, Any]:
        response = self.call("GET", f"{PREFERENCES}/status/email/{email}")
        assert response.status_code == 200
        [status] = [entry for entry in response.json()["subscriptionStatuses"] if entry["id"] == "1001"]
        return dict(status)

    def state(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_sandbox/state", timeout=5).json())


@pytest.fixture
def hubspot(serve) -> HubSpot:
    return HubSpot(serve(create_app(HubSpotSettings(requests_per_window=10_000))).url)


def assert_read_only_refusal(response: requests.Response, name: str) -> None:
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert name in body["message"]
    assert [(error["name"], error["error"]) for error in body["errors"]] == [(name, "READ_ONLY_VALUE")]


@pytest.mark.parametrize("name", READ_ONLY)
def test_a_marketing_status_property_is_refused_on_create_and_update(hubspot: HubSpot, name: str) -> None:
    created = hubspot.call("POST", CONTACTS, json={"properties": {"email": EMAIL, name: "true"}})
    assert_read_only_refusal(created, name)
    assert hubspot.state()["contacts"] == []

    contact = hubspot.call("POST", CONTACTS, json={"properties": {"email": EMAIL}}).json()
    updated = hubspot.call("PATCH", f"{CONTACTS}/{contact['id']}", json={"properties": {name: "false"}})
    assert_read_only_refusal(updated, name)
    assert name not in hubspot.state()["contacts"][0]["properties"]


def test_a_marketing_status_property_fails_its_batch_input(hubspot: HubSpot) -> None:
    inputs = [
        {"id": EMAIL, "idProperty": "email", "properties": {"hs_marketable_status": "true"}},
        {"id": "taro@example.jp", "idProperty": "email", "properties": {"firstname": "Taro"}},
    ]
    response = hubspot.call("POST", f"{CONTACTS}/batch/upsert", json={"inputs": inputs})

    assert response.status_code == 207
    [error] = response.json()["errors"]
    assert error["category"] == "VALIDATION_ERROR" and "hs_marketable_status" in error["message"]
    assert [contact["properties"]["email"] for contact in hubspot.state()["contacts"]] == ["taro@example.jp"]


def test_the_definitions_list_one_marketing_type_and_an_internal_one(hubspot: HubSpot) -> None:
    definitions = hubspot.call("GET", f"{PREFERENCES}/definitions").json()["subscriptionDefinitions"]
    assert [(entry["id"], entry["isInternal"], entry["isActive"]) for entry in definitions] == [
        ("1001", False, True),
        ("1002", True, True),
    ]


def test_subscribe_keeps_the_legal_basis_and_shows_it_in_the_status_and_the_state(hubspot: HubSpot) -> None:
    assert hubspot.status()["status"] == "NOT_SUBSCRIBED"

    subscribed = hubspot.subscribe()

    assert subscribed.status_code == 200
    assert subscribed.json()["status"] == "SUBSCRIBED"
    status = hubspot.status("HANAKO@example.jp")  # the status belongs to the address, any case
    assert (status["status"], status["legalBasis"], status["legalBasisExplanation"]) == (
        "SUBSCRIBED",
        "CONSENT_WITH_NOTICE",
        "Confirmed by the mailed link",
    )
    [record] = hubspot.state()["subscriptions"]
    assert record["address"] == EMAIL
    assert record["statuses"]["1001"]["legalBasis"] == "CONSENT_WITH_NOTICE"


def test_subscribe_twice_is_a_400_and_changes_nothing(hubspot: HubSpot) -> None:
    assert hubspot.subscribe().status_code == 200
    again = hubspot.subscribe(legalBasisExplanation="another text")
    assert again.status_code == 400 and again.json()["category"] == "VALIDATION_ERROR"
    assert hubspot.status()["legalBasisExplanation"] == "Confirmed by the mailed link"


def test_an_unsubscribed_address_is_never_subscribed_again(hubspot: HubSpot) -> None:
    assert hubspot.subscribe().status_code == 200
    unsubscribed = hubspot.change("unsubscribe", legalBasisExplanation="Withdrawn through the link")
    assert unsubscribed.status_code == 200 and unsubscribed.json()["status"] == "NOT_SUBSCRIBED"

    assert hubspot.change("unsubscribe").status_code == 400  # already unsubscribed
    assert hubspot.subscribe().status_code == 400  # v3 does not resubscribe an opt-out
    assert hubspot.status()["status"] == "NOT_SUBSCRIBED"


@pytest.mark.parametrize(
    "body",
    [
        {"legalBasis": None},  # a GDPR-enabled portal wants the legal basis
        {"legalBasisExplanation": " "},
        {"legalBasis": "BECAUSE"},
        {"subscriptionId": "1003"},
        {"emailAddress": "not an address"},
        {"emailAddress": None},
    ],
)
def test_an_incomplete_subscribe_is_a_validation_error(hubspot: HubSpot, body: dict[str, Any]) -> None:
    response = hubspot.subscribe(**body)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    assert hubspot.state()["subscriptions"] == []


def test_the_preferences_need_the_token_and_count_against_the_limit(serve) -> None:
    hubspot = HubSpot(serve(create_app(HubSpotSettings(requests_per_window=2))).url)
    assert hubspot.call("GET", f"{PREFERENCES}/definitions", headers={}).status_code == 401
    first = hubspot.call("GET", f"{PREFERENCES}/definitions")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "2"
    hubspot.call("GET", f"{PREFERENCES}/definitions")
    assert hubspot.call("GET", f"{PREFERENCES}/definitions").status_code == 429


def test_reset_forgets_every_status(hubspot: HubSpot) -> None:
    hubspot.subscribe()
    assert requests.post(f"{hubspot.url}/_sandbox/reset", timeout=5).status_code == 200
    assert hubspot.state()["subscriptions"] == []
    assert hubspot.status()["status"] == "NOT_SUBSCRIBED"
