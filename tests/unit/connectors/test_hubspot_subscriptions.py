"""HubSpotClient's marketing consent against `responses`: the Communication Preferences calls it sends,
how it settles a 400 by reading the status back, and that no marketing property ever leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from config.settings import Secret, Settings
from connectors.errors import PermanentError, TransientError
from connectors.hubspot import HubSpotClient, SubscriptionRefused, SubscriptionStatus
from connectors.hubspot.subscriptions import (
    NoSubscriptionType,
    is_marketing_property,
    refuse_marketing_properties,
)

API = "https://api.hubspot.test"
PREFERENCES = f"{API}/communication-preferences/v3"
EMAIL = "hanako+news@example.com"
STATUS_URL = f"{PREFERENCES}/status/email/hanako%2Bnews@example.com"
EXPLANATION = "Confirmed through the link mailed on 2026-11-29 (consent text v1)"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def client(subscription_id: str | None = "1001") -> HubSpotClient:
    settings = Settings(
        environment="test",
        hubspot_api_url=API,
        hubspot_access_token=Secret("pat-1"),
        hubspot_subscription_id=subscription_id,
    )
    return HubSpotClient.from_settings(settings)


def status_json(status: str = "SUBSCRIBED", subscription_id: str = "1001", **extra: Any) -> dict[str, Any]:
    return {
        "id": subscription_id,
        "name": "Marketing Information",
        "description": "News and offers",
        "status": status,
        "sourceOfStatus": "SUBSCRIPTION_STATUS",
        **extra,
    }


def statuses_json(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {"recipient": EMAIL, "subscriptionStatuses": list(statuses)}


def definition(subscription_id: str, *, internal: bool = False, active: bool = True) -> dict[str, Any]:
    return {
        "id": subscription_id,
        "name": f"type {subscription_id}",
        "isActive": active,
        "isInternal": internal,
    }


def validation_error() -> dict[str, Any]:
    return {"status": "error", "message": f"{EMAIL} is already subscribed", "category": "VALIDATION_ERROR"}


def body(mocked: responses.RequestsMock, index: int) -> Any:
    return json.loads(mocked.calls[index].request.body or b"{}")


def test_subscribe_sends_the_address_the_subscription_and_the_legal_basis(
    mocked: responses.RequestsMock,
) -> None:
    answer = status_json(legalBasis="CONSENT_WITH_NOTICE", legalBasisExplanation=EXPLANATION)
    mocked.post(f"{PREFERENCES}/subscribe", json=answer)

    status = client().subscribe(f" {EMAIL} ", legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)

    request = mocked.calls[0].request
    assert request.headers["Authorization"] == "Bearer pat-1"
    assert body(mocked, 0) == {
        "emailAddress": EMAIL,
        "subscriptionId": "1001",
        "legalBasis": "CONSENT_WITH_NOTICE",
        "legalBasisExplanation": EXPLANATION,
    }
    assert status == SubscriptionStatus(
        "1001", "SUBSCRIBED", "SUBSCRIPTION_STATUS", "CONSENT_WITH_NOTICE", EXPLANATION
    )
    assert status.subscribed


def test_without_a_configured_id_the_one_marketing_type_is_learnt_once(
    mocked: responses.RequestsMock,
) -> None:
    definitions = [definition("7"), definition("8", internal=True), definition("9", active=False)]
    mocked.get(f"{PREFERENCES}/definitions", json={"subscriptionDefinitions": definitions})
    mocked.post(f"{PREFERENCES}/subscribe", json=status_json(subscription_id="7"))
    mocked.post(f"{PREFERENCES}/unsubscribe", json=status_json("NOT_SUBSCRIBED", subscription_id="7"))
    hubspot = client(subscription_id=None)

    hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)
    hubspot.unsubscribe(EMAIL, explanation="Withdrawn through the unsubscribe link")

    assert body(mocked, 1)["subscriptionId"] == "7"
    assert body(mocked, 2)["subscriptionId"] == "7"
    assert len(mocked.calls) == 3  # the definitions were read once


@pytest.mark.parametrize(
    "definitions", [[], [definition("7"), definition("8")], [definition("8", internal=True)]]
)
def test_no_single_marketing_type_asks_for_the_setting(
    mocked: responses.RequestsMock, definitions: list[dict[str, Any]]
) -> None:
    mocked.get(f"{PREFERENCES}/definitions", json={"subscriptionDefinitions": definitions})

    with pytest.raises(NoSubscriptionType, match="HUBSPOT_SUBSCRIPTION_ID"):
        client(subscription_id=None).subscribe(
            EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION
        )


def test_a_400_for_an_address_already_subscribed_is_success(mocked: responses.RequestsMock) -> None:
    """A retry after a lost answer, or a second confirmation: read back, SUBSCRIBED, done."""
    mocked.post(f"{PREFERENCES}/subscribe", status=400, json=validation_error())
    mocked.get(STATUS_URL, json=statuses_json(status_json(legalBasis="CONSENT_WITH_NOTICE")))

    status = client().subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)

    assert status.subscribed and status.legal_basis == "CONSENT_WITH_NOTICE"


def test_a_400_for_an_address_that_opted_out_is_a_named_refusal_without_the_address(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{PREFERENCES}/subscribe", status=400, json=validation_error())
    mocked.get(
        STATUS_URL, json=statuses_json(status_json("NOT_SUBSCRIBED", sourceOfStatus="PORTAL_WIDE_STATUS"))
    )

    with pytest.raises(SubscriptionRefused) as refused:
        client().subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)

    message = str(refused.value)
    assert refused.value.reason == "subscription_refused" and refused.value.status == 400
    assert "PORTAL_WIDE_STATUS" in message and "never resubscribes" in message
    assert "hanako" not in message  # neither HubSpot's wording nor the status path's address


def test_an_unsubscribe_of_an_address_already_unsubscribed_is_success(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{PREFERENCES}/unsubscribe", status=400, json=validation_error())
    mocked.get(STATUS_URL, json=statuses_json(status_json("NOT_SUBSCRIBED")))

    status = client().unsubscribe(EMAIL, explanation="Withdrawn through the unsubscribe link")

    assert not status.subscribed
    assert body(mocked, 0) == {
        "emailAddress": EMAIL,
        "subscriptionId": "1001",
        "legalBasisExplanation": "Withdrawn through the unsubscribe link",
    }


def test_a_status_read_for_a_type_the_answer_does_not_list_is_not_subscribed(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(STATUS_URL, json=statuses_json(status_json(subscription_id="1002")))
    mocked.get(
        STATUS_URL, status=404, json={"status": "error", "category": "OBJECT_NOT_FOUND", "message": ""}
    )

    hubspot = client()
    assert hubspot.subscription_status(EMAIL) == SubscriptionStatus("1001", "NOT_SUBSCRIBED")
    assert hubspot.subscription_status(EMAIL) == SubscriptionStatus("1001", "NOT_SUBSCRIBED")


def test_a_failed_status_read_never_names_the_address(mocked: responses.RequestsMock) -> None:
    mocked.get(
        STATUS_URL, status=502, json={"status": "error", "category": "INTERNAL_ERROR", "message": EMAIL}
    )

    with pytest.raises(TransientError) as failed:
        client().subscription_status(EMAIL)
    assert "/status/email/{email}" in str(failed.value)
    assert "hanako" not in str(failed.value)


def test_other_refusals_are_not_settled_by_a_read(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{PREFERENCES}/subscribe", status=403, json={"status": "error", "category": "MISSING_SCOPES"}
    )

    with pytest.raises(PermanentError) as refused:
        client().subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)
    assert refused.value.status == 403 and not isinstance(refused.value, SubscriptionRefused)


@pytest.mark.parametrize(
    ("legal_basis", "explanation"), [("CONSENT", EXPLANATION), ("CONSENT_WITH_NOTICE", " ")]
)
def test_a_subscription_needs_a_documented_legal_basis_and_its_explanation(
    mocked: responses.RequestsMock, legal_basis: str, explanation: str
) -> None:
    with pytest.raises(ValueError):
        client().subscribe(EMAIL, legal_basis=legal_basis, explanation=explanation)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "name", ["hs_marketable_status", "hs_marketable_reason_id", "hs_email_optout", "hs_email_optout_1001"]
)
def test_a_marketing_status_property_never_leaves(mocked: responses.RequestsMock, name: str) -> None:
    hubspot = client()
    with pytest.raises(ValueError, match=name):
        hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako", name: "true"})
    with pytest.raises(ValueError, match=name):
        hubspot.create_contact({"email": EMAIL, name: "true"})
    assert len(mocked.calls) == 0


@given(
    st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True).filter(
        lambda name: not name.startswith(("hs_marketable_", "hs_email_optout"))
    )
)
def test_ordinary_properties_pass(name: str) -> None:
    assert not is_marketing_property(name)
    refuse_marketing_properties(["email", name])


@given(st.integers(min_value=0, max_value=10**12))
def test_every_per_subscription_opt_out_is_refused(subscription_id: int) -> None:
    with pytest.raises(ValueError, match=f"hs_email_optout_{subscription_id}"):
        refuse_marketing_properties(["firstname", f"hs_email_optout_{subscription_id}"])
