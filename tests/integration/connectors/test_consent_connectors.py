"""Marketing consent through the real connectors against the sandbox emulators over real sockets: what
each vendor stores at create, and the consent changes that follow a confirmation or a withdrawal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.hubspot import HubSpotClient, SubscriptionRefused
from connectors.shopify import ConsentRefused, ShopifyClient, documents
from connectors.smaregi import SmaregiClient, member_code
from registrations import profiles
from registrations.steps.base import Registrant
from sandbox import hubspot as hubspot_emulator
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app as shopify_emulator
from sandbox.smaregi import SmaregiSettings
from sandbox.smaregi import create_app as smaregi_emulator

pytestmark = pytest.mark.integration

EMAIL = "hanako.yamada@example.com"
CONFIRMED_AT = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
EXPLANATION = "Confirmed through the link mailed at registration (consent text v1)"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    apps = {
        "shopify": shopify_emulator(),
        "smaregi": smaregi_emulator(SmaregiSettings(rate_per_second=1000)),
        "hubspot": hubspot_emulator.create_app(),
    }
    started = {name: ThreadedServer(app, port=0).start() for name, app in apps.items()}
    yield {name: server.url for name, server in started.items()}
    for server in started.values():
        server.stop()


@pytest.fixture
def settings(servers: dict[str, str]) -> Settings:
    for url in servers.values():
        requests.post(f"{url}/_sandbox/reset", timeout=5).raise_for_status()
    return Settings(
        environment="test",
        shopify_admin_url=servers["shopify"],
        shopify_access_token=Secret("shpat_sandbox"),
        smaregi_api_url=servers["smaregi"],
        smaregi_id_url=servers["smaregi"],
        hubspot_api_url=servers["hubspot"],
        http_read_timeout_seconds=5.0,
    )


def state(settings: Settings, system: str) -> dict[str, Any]:
    url = {
        "shopify": settings.shopify_admin_url,
        "smaregi": settings.smaregi_api_url,
        "hubspot": settings.hubspot_api_url,
    }[system]
    return dict(requests.get(f"{url}/_sandbox/state", timeout=5).json())


def registrant(accepts_marketing: bool) -> Registrant:
    return Registrant(
        email=EMAIL,
        first_name="花子",
        last_name="山田",
        last_name_kana="ヤマダ",
        first_name_kana="ハナコ",
        phone="+819012345678",
        accepts_marketing=accepts_marketing,
    )


# --- Shopify ----------------------------------------------------------------------------------------


def test_a_registrant_who_does_not_opt_in_is_created_with_no_consent_sent(settings: Settings) -> None:
    """The create that real Shopify would refuse (NOT_SUBSCRIBED) is never sent; the create succeeds."""
    shopify = ShopifyClient.from_settings(settings)

    customer = shopify.create_customer(**profiles.shopify_customer(registrant(accepts_marketing=False)))

    assert customer.marketing_state == "NOT_SUBSCRIBED"  # Shopify's own default, not something we sent
    [stored] = state(settings, "shopify")["customers"]
    assert stored["emailMarketingConsent"]["marketingState"] == "NOT_SUBSCRIBED"
    assert stored["emailMarketingConsent"]["consentUpdatedAt"] is None


def test_the_sandbox_refuses_not_subscribed_at_create_as_shopify_does(settings: Settings) -> None:
    """What the connector used to send, sent by hand: refused, named, and nothing stored."""
    shopify = ShopifyClient.from_settings(settings)
    old_input = {
        "email": EMAIL,
        "firstName": "花子",
        "emailMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"},
    }

    with pytest.raises(ConsentRefused):
        shopify._execute(documents.CREATE_CUSTOMER, {"input": old_input}, cost_estimate=10)
    assert state(settings, "shopify")["customers"] == []


def test_double_opt_in_round_trips_through_shopify(settings: Settings) -> None:
    shopify = ShopifyClient.from_settings(settings)
    created = shopify.create_customer(**profiles.shopify_customer(registrant(accepts_marketing=True)))
    assert (created.marketing_state, created.marketing_opt_in_level) == ("PENDING", "CONFIRMED_OPT_IN")

    confirmed = shopify.update_marketing_consent(
        created.id, "SUBSCRIBED", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=CONFIRMED_AT
    )
    assert (confirmed.marketing_state, confirmed.marketing_opt_in_level, confirmed.marketing_updated_at) == (
        "SUBSCRIBED",
        "CONFIRMED_OPT_IN",
        "2026-11-29T01:30:00Z",
    )
    again = shopify.update_marketing_consent(
        created.id, "SUBSCRIBED", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=CONFIRMED_AT
    )
    assert again.marketing_state == "SUBSCRIBED"  # a repeated confirmation changes nothing

    withdrawn = shopify.update_marketing_consent(
        created.id, "UNSUBSCRIBED", consent_updated_at=datetime.now(UTC)
    )
    assert withdrawn.marketing_state == "UNSUBSCRIBED"
    [found] = shopify.find_customers_by_email(EMAIL)
    assert found.marketing_state == "UNSUBSCRIBED"


def test_a_refused_state_sent_to_the_sandbox_comes_back_as_consent_refused(settings: Settings) -> None:
    shopify = ShopifyClient.from_settings(settings)
    created = shopify.create_customer(email=EMAIL, first_name="花子", last_name="山田")
    variables = {"input": {"customerId": created.id, "emailMarketingConsent": {"marketingState": "REDACTED"}}}

    with pytest.raises(ConsentRefused) as refused:
        shopify._execute(documents.UPDATE_MARKETING_CONSENT, variables, cost_estimate=10)
    assert "emailMarketingConsent.marketingState [INCLUSION]" in str(refused.value)


# --- Smaregi ----------------------------------------------------------------------------------------


def test_smaregi_members_start_without_marketing_mail_and_the_flag_follows_consent(
    settings: Settings,
) -> None:
    smaregi = SmaregiClient.from_settings(settings)
    fields = profiles.smaregi_member(registrant(accepts_marketing=True))
    member = smaregi.create_member(customer_code=member_code(EMAIL, key=b"k"), **fields)
    [stored] = state(settings, "smaregi")["customers"]
    assert stored["mailReceiveFlag"] == "0"  # asked, not yet confirmed

    assert smaregi.set_mail_receive_flag(member.customer_id, True).mail_receive_flag is True
    assert state(settings, "smaregi")["customers"][0]["mailReceiveFlag"] == "1"
    assert smaregi.set_mail_receive_flag(member.customer_id, False).mail_receive_flag is False
    assert state(settings, "smaregi")["customers"][0]["mailReceiveFlag"] == "0"


# --- HubSpot ----------------------------------------------------------------------------------------


def test_a_hubspot_contact_carries_no_marketing_property(settings: Settings) -> None:
    hubspot = HubSpotClient.from_settings(settings)
    hubspot.upsert_contact(
        email=EMAIL, properties=profiles.hubspot_properties(registrant(accepts_marketing=True))
    )

    [contact] = state(settings, "hubspot")["contacts"]
    assert not [name for name in contact["properties"] if "marketing" in name or "optout" in name]
    assert state(settings, "hubspot")["subscriptions"] == []


def test_subscription_round_trips_with_its_legal_basis(settings: Settings) -> None:
    hubspot = HubSpotClient.from_settings(settings)  # no HUBSPOT_SUBSCRIPTION_ID: learnt from definitions
    assert not hubspot.subscription_status(EMAIL).subscribed

    subscribed = hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)
    repeated = hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)

    assert subscribed.subscribed and repeated.subscribed
    assert hubspot.subscription_id == "1001"
    [record] = state(settings, "hubspot")["subscriptions"]
    assert record["statuses"]["1001"]["legalBasis"] == "CONSENT_WITH_NOTICE"
    assert record["statuses"]["1001"]["legalBasisExplanation"] == EXPLANATION

    withdrawn = hubspot.unsubscribe(EMAIL, explanation="Withdrawn through the unsubscribe link")
    assert not withdrawn.subscribed
    assert not hubspot.unsubscribe(EMAIL, explanation="Withdrawn twice").subscribed
    with pytest.raises(SubscriptionRefused):
        hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation=EXPLANATION)
