"""ShopifyClient.update_marketing_consent against canned answers: what it sends, and how a refused
consent is named whichever way Shopify reports it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import responses

from connectors.errors import PermanentError, TransientError
from connectors.http import HttpClient
from connectors.shopify import ConsentRefused, ShopifyClient, documents
from connectors.shopify.mapping import consent_confirmed, consent_requested, consent_withdrawn

BASE_URL = "https://consent-test.myshopify.com"
ENDPOINT = f"{BASE_URL}/admin/api/2026-10/graphql.json"
GID = "gid://shopify/Customer/1001"
EMAIL = "hanako@example.com"
CONFIRMED_AT = datetime(2026, 11, 29, 10, 30, tzinfo=timezone(timedelta(hours=9)))  # Japan time


@pytest.fixture
def shopify() -> ShopifyClient:
    return ShopifyClient(HttpClient(system="shopify", base_url=BASE_URL), api_version="2026-10")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def customer(state: str, level: str | None = "CONFIRMED_OPT_IN", at: str | None = None) -> dict[str, Any]:
    return {
        "id": GID,
        "defaultEmailAddress": {
            "emailAddress": EMAIL,
            "marketingState": state,
            "marketingOptInLevel": level,
            "marketingUpdatedAt": at,
        },
        "firstName": "Hanako",
        "lastName": "Yamada",
        "defaultPhoneNumber": None,
        "defaultAddress": None,
        "updatedAt": "2026-11-29T01:30:00Z",
    }


def consent_answer(
    node: dict[str, Any] | None, user_errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    payload = {"customer": node, "userErrors": user_errors or []}
    return {"data": {"customerEmailMarketingConsentUpdate": payload}}


def sent_body(api: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    return dict(json.loads(api.calls[index].request.body or b"{}"))


def test_a_confirmation_sends_subscribed_confirmed_opt_in_with_the_confirmation_time_in_utc(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=consent_answer(customer("SUBSCRIBED", at="2026-11-29T01:30:00Z")))

    updated = shopify.update_marketing_consent(
        GID, "SUBSCRIBED", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=CONFIRMED_AT
    )

    body = sent_body(api)
    assert body["query"] == documents.UPDATE_MARKETING_CONSENT
    assert body["variables"] == {
        "input": {
            "customerId": GID,
            "emailMarketingConsent": {
                "marketingState": "SUBSCRIBED",
                "marketingOptInLevel": "CONFIRMED_OPT_IN",
                "consentUpdatedAt": "2026-11-29T01:30:00Z",
            },
        }
    }
    assert (updated.marketing_state, updated.marketing_opt_in_level, updated.marketing_updated_at) == (
        "SUBSCRIBED",
        "CONFIRMED_OPT_IN",
        "2026-11-29T01:30:00Z",
    )


def test_the_three_uses_build_the_three_settable_states() -> None:
    assert consent_requested(CONFIRMED_AT) == {
        "marketingState": "PENDING",
        "marketingOptInLevel": "CONFIRMED_OPT_IN",
        "consentUpdatedAt": "2026-11-29T01:30:00Z",
    }
    assert consent_confirmed(CONFIRMED_AT)["marketingState"] == "SUBSCRIBED"
    assert consent_withdrawn(CONFIRMED_AT) == {
        "marketingState": "UNSUBSCRIBED",
        "consentUpdatedAt": "2026-11-29T01:30:00Z",
    }
    with pytest.raises(ValueError):
        consent_confirmed(datetime(2026, 11, 29, 10, 30))  # a time without a zone is refused


def test_a_withdrawal_without_a_time_sends_only_the_state(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=consent_answer(customer("UNSUBSCRIBED")))

    shopify.update_marketing_consent(GID, "UNSUBSCRIBED")

    assert sent_body(api)["variables"]["input"]["emailMarketingConsent"] == {"marketingState": "UNSUBSCRIBED"}


@pytest.mark.parametrize("state", ["NOT_SUBSCRIBED", "INVALID", "REDACTED", "subscribed"])
def test_a_state_shopify_refuses_as_input_is_refused_before_anything_is_sent(
    shopify: ShopifyClient, api: responses.RequestsMock, state: str
) -> None:
    with pytest.raises(ConsentRefused) as refused:
        shopify.update_marketing_consent(GID, state)
    assert refused.value.reason == "consent_refused"
    assert "NOT_SUBSCRIBED" in str(refused.value) and "UNSUBSCRIBED for a withdrawal" in str(refused.value)
    assert len(api.calls) == 0


def test_an_unknown_opt_in_level_is_a_programming_error(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError):
        shopify.update_marketing_consent(GID, "SUBSCRIBED", opt_in_level="DOUBLE_OPT_IN")
    assert len(api.calls) == 0


def test_a_user_error_on_the_consent_field_is_consent_refused_and_names_the_field(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    refusal = {
        "field": ["emailMarketingConsent", "marketingState"],
        "message": f"Marketing state for {EMAIL} cannot be set",
        "code": "INCLUSION",
    }
    api.post(ENDPOINT, json=consent_answer(None, [refusal]))

    with pytest.raises(ConsentRefused) as refused:
        shopify.update_marketing_consent(GID, "PENDING")

    message = str(refused.value)
    assert "emailMarketingConsent.marketingState [INCLUSION]" in message
    assert "customerEmailMarketingConsentUpdate" in message
    assert EMAIL not in message  # Shopify's wording never reaches the error


def test_a_create_whose_consent_shopify_refuses_is_consent_refused_not_an_adoption(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    """Even beside "Email has already been taken", a refused consent is named as such."""
    errors = [
        {"field": ["email"], "message": "Email has already been taken"},
        {"field": ["emailMarketingConsent", "marketingState"], "message": "Marketing state is invalid"},
    ]
    api.post(ENDPOINT, json={"data": {"customerCreate": {"customer": None, "userErrors": errors}}})

    with pytest.raises(ConsentRefused):
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", accepts_marketing=True)


def test_a_top_level_error_about_the_consent_input_is_consent_refused(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    """How Shopify reports a refused state is UNCONFIRMED: a top-level error is named the same way."""
    error = {
        "message": "Variable $input of type CustomerEmailMarketingConsentUpdateInput! was provided invalid "
        'value for emailMarketingConsent.marketingState ("NOT_SUBSCRIBED" cannot be set)',
        "extensions": {"code": "INVALID_VARIABLE"},
    }
    api.post(ENDPOINT, json={"errors": [error]})

    with pytest.raises(ConsentRefused) as refused:
        shopify.update_marketing_consent(GID, "UNSUBSCRIBED")
    assert refused.value.status == 200
    assert "Shopify refused the email marketing consent" in str(refused.value)


def test_a_top_level_error_that_only_names_the_selected_field_is_not_called_a_consent_refusal(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    """A schema change to the field our documents read is a different problem, named as itself."""
    error = {"message": "Field 'marketingState' doesn't exist on type 'CustomerEmailAddress'"}
    api.post(ENDPOINT, json={"errors": [error]})

    with pytest.raises(PermanentError) as refused:
        shopify.update_marketing_consent(GID, "UNSUBSCRIBED")
    assert type(refused.value) is PermanentError


def test_an_unknown_customer_is_permanent_but_not_a_consent_refusal(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(
        ENDPOINT, json=consent_answer(None, [{"field": ["customerId"], "message": "Customer does not exist"}])
    )

    with pytest.raises(PermanentError) as refused:
        shopify.update_marketing_consent(GID, "SUBSCRIBED")
    assert not isinstance(refused.value, ConsentRefused)
    assert "customerId" in str(refused.value)


def test_an_internal_error_is_retried(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    error = {"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    api.post(ENDPOINT, json={"errors": [error]})

    with pytest.raises(TransientError):
        shopify.update_marketing_consent(GID, "SUBSCRIBED", consent_updated_at=datetime.now(UTC))


def test_update_customer_does_not_change_consent(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    """customerUpdate would put a confirmed SUBSCRIBED back to PENDING: consent has its own call."""
    with pytest.raises(TypeError, match="update_marketing_consent"):
        shopify.update_customer(GID, accepts_marketing=True)
    assert len(api.calls) == 0
