"""ShopifyClient against the sandbox Shopify emulator over a real socket, built from Settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.errors import NotFoundError, PermanentError, ThrottledError, TransientError
from connectors.shopify import EmailTaken, PhoneTaken, ShopifyClient
from connectors.shopify.versions import VERSION_MISMATCH
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app

pytestmark = pytest.mark.integration

TOKEN = "shpat_sandbox"
EMAIL = "hanako.yamada@example.com"


class ObservingLimiter:
    """Lets every call through; keeps what Shopify reported about its bucket."""

    def __init__(self) -> None:
        self.observed: list[float] = []

    def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        self.observed.append(available)

    def pause(self, seconds: float) -> None:
        return None


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "shopify_admin_url": url,
        "shopify_access_token": Secret(TOKEN),
        "shopify_api_version": "2026-10",
        "http_read_timeout_seconds": 5.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def shop_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(create_app(), port=0).start()
    yield server
    server.stop()


@pytest.fixture
def shop_url(shop_server: ThreadedServer) -> str:
    """The module's emulator, emptied (customers, counters, faults) for each test."""
    assert requests.post(f"{shop_server.url}/_sandbox/reset", timeout=5).status_code == 200
    return shop_server.url


@pytest.fixture
def limiter() -> ObservingLimiter:
    return ObservingLimiter()


@pytest.fixture
def shopify(shop_url: str, limiter: ObservingLimiter) -> ShopifyClient:
    return ShopifyClient.from_settings(settings_for(shop_url), limiter=limiter)


def stored_customers(shop_url: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{shop_url}/_sandbox/state", timeout=5).json()["customers"])


def create_hanako(shopify: ShopifyClient, **overrides: Any) -> Any:
    fields: dict[str, Any] = {"email": EMAIL, "first_name": "Hanako", "last_name": "Yamada", **overrides}
    return shopify.create_customer(**fields)


def test_create_stores_the_customer_as_sent(
    shopify: ShopifyClient, shop_url: str, limiter: ObservingLimiter
) -> None:
    customer = create_hanako(
        shopify,
        phone="+819012345678",
        locale="ja",
        accepts_marketing=True,
        postal_code="150-0001",
        address="東京都渋谷区神宮前1-2-3",
    )

    assert customer.id.startswith("gid://shopify/Customer/")
    assert (customer.email, customer.first_name, customer.last_name, customer.phone) == (
        EMAIL,
        "Hanako",
        "Yamada",
        "+819012345678",
    )
    [stored] = stored_customers(shop_url)
    assert stored["id"] == customer.id
    assert stored["tags"] == ["membersync"] and stored["locale"] == "ja"
    # Asked for marketing email: a double opt-in request until the owner confirms, never SUBSCRIBED.
    assert stored["emailMarketingConsent"]["marketingState"] == "PENDING"
    assert stored["emailMarketingConsent"]["marketingOptInLevel"] == "CONFIRMED_OPT_IN"
    assert customer.marketing_state == "PENDING"
    [address] = stored["addresses"]
    assert (address["address1"], address["zip"], address["countryCodeV2"]) == (
        "東京都渋谷区神宮前1-2-3",
        "150-0001",
        "JP",
    )
    assert customer.address_id == address["id"]
    assert limiter.observed and limiter.observed[-1] < 2000


def test_add_address_gives_an_adopted_customer_its_default_address(
    shopify: ShopifyClient, shop_url: str
) -> None:
    created = create_hanako(shopify)
    assert created.address_id is None

    address_id = shopify.add_address(created.id, postal_code="150-0001", address=None)

    [found] = shopify.find_customers_by_email(EMAIL)
    assert found.address_id == address_id
    [stored] = stored_customers(shop_url)
    assert [(address["zip"], address["countryCodeV2"]) for address in stored["addresses"]] == [
        ("150-0001", "JP")
    ]


def test_email_taken_then_find_adopts_the_existing_customer(shopify: ShopifyClient, shop_url: str) -> None:
    existing = create_hanako(shopify)

    with pytest.raises(EmailTaken):
        create_hanako(shopify, email=EMAIL.upper(), first_name="Hana")

    found = shopify.find_customers_by_email(EMAIL.upper())
    assert [customer.id for customer in found] == [existing.id]
    assert len(stored_customers(shop_url)) == 1


def test_find_does_not_return_near_misses(shopify: ShopifyClient) -> None:
    create_hanako(shopify, email="hanako.yamada@example.co.jp")

    assert shopify.find_customers_by_email(EMAIL) == []


def test_get_returns_the_customer_or_none(shopify: ShopifyClient) -> None:
    created = create_hanako(shopify)

    assert shopify.get_customer(created.id) == created
    assert shopify.get_customer("gid://shopify/Customer/999999") is None


def test_update_changes_only_the_given_fields(shopify: ShopifyClient) -> None:
    created = create_hanako(shopify, phone="+819012345678")

    updated = shopify.update_customer(created.id, last_name="Sato", phone="+819087654321")

    assert (updated.id, updated.email, updated.first_name) == (created.id, EMAIL, "Hanako")
    assert (updated.last_name, updated.phone) == ("Sato", "+819087654321")
    assert shopify.get_customer(created.id) == updated


def test_update_of_the_address_changes_the_default_address_in_place(
    shopify: ShopifyClient, shop_url: str
) -> None:
    created = create_hanako(shopify, postal_code="150-0001", address="東京都渋谷区神宮前1-2-3")

    updated = shopify.update_customer(created.id, postal_code="530-0001", address="大阪市北区梅田1-1")

    assert updated.address_id == created.address_id
    [stored] = stored_customers(shop_url)
    assert [(address["zip"], address["address1"]) for address in stored["addresses"]] == [
        ("530-0001", "大阪市北区梅田1-1")
    ]


def test_update_of_a_missing_customer_is_not_found(shopify: ShopifyClient) -> None:
    with pytest.raises(NotFoundError):
        shopify.update_customer("gid://shopify/Customer/999999", last_name="Sato")


def test_set_member_number_then_find_shows_it(shopify: ShopifyClient) -> None:
    created = create_hanako(shopify)
    assert shopify.find_customers_by_email(EMAIL)[0].member_number is None

    shopify.set_member_number(created.id, "M000123")

    [found] = shopify.find_customers_by_email(EMAIL)
    assert found.member_number == "M000123"
    fetched = shopify.get_customer(created.id)
    assert fetched is not None and fetched.member_number == "M000123"


def test_set_member_number_on_a_missing_customer_is_permanent(shopify: ShopifyClient) -> None:
    with pytest.raises(PermanentError, match="ownerId"):
        shopify.set_member_number("gid://shopify/Customer/999999", "M000123")


def test_phone_taken_is_permanent(shopify: ShopifyClient) -> None:
    create_hanako(shopify, phone="+819012345678")

    with pytest.raises(PhoneTaken):
        create_hanako(shopify, email="taro@example.com", first_name="Taro", phone="+819012345678")


def test_injected_throttle_is_throttled_with_a_wait(
    shopify: ShopifyClient, shop_url: str, limiter: ObservingLimiter
) -> None:
    faults = requests.post(f"{shop_url}/_sandbox/faults", json={"throttle_rate": 1}, timeout=5)
    assert faults.status_code == 200

    with pytest.raises(ThrottledError) as raised:
        create_hanako(shopify)

    assert raised.value.retry_after is not None and raised.value.retry_after > 0
    assert limiter.observed  # the throttled answer still corrected the bucket
    assert stored_customers(shop_url) == []


def test_a_spent_bucket_is_throttled_until_it_refills(limiter: ObservingLimiter) -> None:
    # A bucket of 10 points restored at 1 per second: one customerCreate (10 points) empties it.
    with ThreadedServer(create_app(bucket_size=10, restore_rate=1.0), port=0) as server:
        shopify = ShopifyClient.from_settings(settings_for(server.url), limiter=limiter)
        create_hanako(shopify)

        with pytest.raises(ThrottledError) as raised:
            create_hanako(shopify, email="taro@example.com", first_name="Taro")

    assert raised.value.retry_after is not None and 5 < raised.value.retry_after <= 10
    assert limiter.observed[-1] < 5


def test_injected_server_errors_are_transient(shopify: ShopifyClient, shop_url: str) -> None:
    requests.post(f"{shop_url}/_sandbox/faults", json={"error_rate": 1}, timeout=5)

    for _ in range(3):  # the emulator rotates 500 (JSON), 502 and 503 (HTML)
        with pytest.raises(TransientError):
            shopify.get_customer("gid://shopify/Customer/1")


def test_bad_token_is_permanent(shop_url: str) -> None:
    shopify = ShopifyClient.from_settings(settings_for(shop_url, shopify_access_token=Secret("shpat_wrong")))

    with pytest.raises(PermanentError) as raised:
        create_hanako(shopify)

    assert raised.value.status == 401
    assert stored_customers(shop_url) == []


@pytest.mark.parametrize("retired", ["2025-01", "1999-01"])
def test_a_retired_version_still_works_and_the_mismatch_is_counted(shop_url: str, retired: str) -> None:
    """Shopify serves a retired or unknown version with the oldest supported one: no failure, a signal."""
    shopify = ShopifyClient.from_settings(settings_for(shop_url, shopify_api_version=retired))
    counted = VERSION_MISMATCH.labels(requested=retired, served="2026-01")
    before = counted._value.get()

    created = create_hanako(shopify)

    assert [customer.id for customer in shopify.find_customers_by_email(EMAIL)] == [created.id]
    assert counted._value.get() == before + 2


def test_the_configured_version_counts_no_mismatch(shopify: ShopifyClient) -> None:
    def total() -> float:
        return sum(sample.value for metric in VERSION_MISMATCH.collect() for sample in metric.samples)

    before = total()
    create_hanako(shopify)
    assert total() == before
