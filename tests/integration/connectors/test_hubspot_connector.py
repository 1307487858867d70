"""HubSpotClient against the sandbox HubSpot emulator over a real socket, built from Settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.errors import ConflictError, PermanentError, ThrottledError
from connectors.hubspot import HubSpotClient, ValidationRuleRefused
from sandbox import hubspot as hubspot_emulator
from sandbox.common import ThreadedServer

pytestmark = pytest.mark.integration

EMAIL = "hanako.yamada@example.com"


class ObservingLimiter:
    """Lets every call through; keeps what HubSpot reported and asked for."""

    def __init__(self) -> None:
        self.observed: list[tuple[float, float | None, float | None]] = []
        self.pauses: list[float] = []

    def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        self.observed.append((available, capacity, per_second))

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "hubspot_api_url": url,
        "hubspot_access_token": Secret("pat-sandbox"),
        "http_read_timeout_seconds": 5.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def hubspot_server() -> Iterator[ThreadedServer]:
    emulator = hubspot_emulator.create_app(hubspot_emulator.HubSpotSettings(search_per_second=1000))
    with ThreadedServer(emulator, port=0) as server:
        yield server


@pytest.fixture
def hubspot_url(hubspot_server: ThreadedServer) -> str:
    requests.post(f"{hubspot_server.url}/_sandbox/reset", timeout=5).raise_for_status()
    return hubspot_server.url


@pytest.fixture
def limiter() -> ObservingLimiter:
    return ObservingLimiter()


@pytest.fixture
def hubspot(hubspot_url: str, limiter: ObservingLimiter) -> HubSpotClient:
    return HubSpotClient.from_settings(settings_for(hubspot_url), limiter=limiter)


def test_upsert_twice_is_one_contact(hubspot: HubSpotClient) -> None:
    first = hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako", "lastname": "Yamada"})
    second = hubspot.upsert_contact(email=EMAIL, properties={"phone": "+819012345678"})

    assert first.created is True and second.created is False
    assert first.id == second.id and first.email == EMAIL
    stored = hubspot.get_contact(first.id)
    assert stored is not None
    assert (stored.properties["firstname"], stored.properties["phone"]) == ("Hanako", "+819012345678")


def test_create_conflict_names_the_existing_contact(hubspot: HubSpotClient) -> None:
    existing = hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    with pytest.raises(ConflictError) as conflict:
        hubspot.create_contact({"email": EMAIL.upper(), "firstname": "Hanako"})
    assert conflict.value.existing_id == existing.id and "@" not in str(conflict.value)


def test_create_and_search_by_email(hubspot: HubSpotClient) -> None:
    created = hubspot.create_contact({"email": EMAIL, "firstname": "Hanako"})
    hubspot.create_contact({"email": "taro@example.com", "firstname": "Taro"})

    found = hubspot.search_contacts_by_email(EMAIL.upper())

    assert [contact.id for contact in found] == [created.id]
    assert found[0].properties["firstname"] == "Hanako"
    assert hubspot.search_contacts_by_email("nobody@example.com") == []
    assert hubspot.get_contact("999999") is None


def test_a_batch_of_many_contacts(hubspot: HubSpotClient) -> None:
    contacts = [{"email": f"member{i}@example.com", "firstname": f"M{i}"} for i in range(150)]
    upserted = hubspot.upsert_contacts(contacts)
    assert len(upserted) == 150 and all(contact.created for contact in upserted)
    assert len({contact.id for contact in upserted}) == 150


def test_an_invalid_input_of_a_batch_is_permanent(hubspot: HubSpotClient) -> None:
    with pytest.raises(PermanentError) as refused:
        hubspot.upsert_contacts([{"email": EMAIL}, {"email": "taro@example.com", "nickname": "T"}])
    message = str(refused.value)
    assert "VALIDATION_ERROR" in message and "inputs [1]" in message and "@" not in message


def test_answers_report_the_rate_limit(hubspot: HubSpotClient, limiter: ObservingLimiter) -> None:
    hubspot.upsert_contact(email=EMAIL, properties={})
    hubspot.get_contact("999999")  # an error answer reports it too
    assert len(limiter.observed) == 2
    (available, capacity, per_second), _ = limiter.observed
    assert 2 * capacity + per_second * 11 == pytest.approx(100)  # the plan, as a rolling-window bucket
    assert 0 <= available < 100


def test_the_ten_second_limit_is_throttling(limiter: ObservingLimiter) -> None:
    emulator = hubspot_emulator.create_app(hubspot_emulator.HubSpotSettings(requests_per_window=3))
    with ThreadedServer(emulator, port=0) as server:
        hubspot = HubSpotClient.from_settings(settings_for(server.url), limiter=limiter)
        with pytest.raises(ThrottledError) as throttled:
            for _ in range(5):
                hubspot.get_contact("1")
    assert throttled.value.status == 429 and throttled.value.retry_after == 1.0
    assert limiter.pauses == [1.0] and "TEN_SECONDLY_ROLLING" in str(throttled.value)
    assert limiter.observed[-1][0] == 0


def test_a_wrong_token_is_permanent(hubspot_url: str) -> None:
    hubspot = HubSpotClient.from_settings(settings_for(hubspot_url, hubspot_access_token=Secret("pat-wrong")))
    with pytest.raises(PermanentError) as refused:
        hubspot.upsert_contact(email=EMAIL, properties={})
    assert refused.value.status == 401 and "pat-wrong" not in str(refused.value)


def test_iter_contacts_lists_every_contact(hubspot: HubSpotClient) -> None:
    upserted = hubspot.upsert_contacts(
        [{"email": f"member{i}@example.com", "firstname": f"M{i}"} for i in range(3)]
    )
    listed = list(hubspot.iter_contacts(page_size=2))
    assert [contact.id for contact in listed] == [contact.id for contact in upserted]
    assert [contact.email for contact in listed] == [f"member{i}@example.com" for i in range(3)]
    assert [contact.properties["firstname"] for contact in listed] == ["M0", "M1", "M2"]


def test_member_facts_travel_in_custom_properties_created_on_first_use(hubspot_url: str) -> None:
    facts = {"membersync_member_number": "M0001", "membersync_points": "120", "membersync_rank": "gold"}
    first = HubSpotClient.from_settings(settings_for(hubspot_url))
    first.upsert_contact(email=EMAIL, properties={"firstname": "Hanako", **facts})
    # Another worker's client finds them there already (409) and writes on.
    second = HubSpotClient.from_settings(settings_for(hubspot_url))
    second.upsert_contact(email=EMAIL, properties={"membersync_points": "150"})

    [contact] = second.iter_contacts(extra_properties=tuple(facts))
    assert {name: contact.properties[name] for name in facts} == {**facts, "membersync_points": "150"}
    state = requests.get(f"{hubspot_url}/_sandbox/state", timeout=5).json()
    assert sorted(p["name"] for p in state["properties"]) == sorted(facts)


def test_an_admin_validation_rule_refusal_is_permanent_and_named(
    hubspot: HubSpotClient, hubspot_url: str
) -> None:
    rule = {"property": "phone", "pattern": r"\+?[0-9]+", "name": "Digits only"}
    requests.post(f"{hubspot_url}/_sandbox/validation-rules", json=rule, timeout=5).raise_for_status()
    with pytest.raises(ValidationRuleRefused) as refused:
        hubspot.upsert_contact(email=EMAIL, properties={"phone": "03-1234-5678"})
    message = str(refused.value)
    assert "property phone" in message and "admin" in message and "03-1234" not in message
    assert refused.value.reason == "validation_rule_refused"


def test_the_legacy_v3_paths_still_work(hubspot_url: str) -> None:
    legacy = HubSpotClient.from_settings(settings_for(hubspot_url, hubspot_api_version="v3"))
    created = legacy.upsert_contact(email=EMAIL, properties={"membersync_rank": "silver"})
    found = legacy.get_contact(created.id, extra_properties=["membersync_rank"])
    assert found is not None and found.properties["membersync_rank"] == "silver"
    assert legacy.paths.objects == "/crm/v3/objects/contacts"


def test_a_version_hubspot_does_not_serve_fails_the_check(hubspot_url: str) -> None:
    unserved = HubSpotClient.from_settings(settings_for(hubspot_url, hubspot_api_version="2025-09"))
    with pytest.raises(PermanentError) as refused:
        unserved.check()
    assert refused.value.status == 404 and "/crm/objects/2025-09/contacts" in str(refused.value)
    with pytest.raises(PermanentError, match="HUBSPOT_API_VERSION"):
        unserved.get_contact("1")
