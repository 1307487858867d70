"""The full reads reconciliation streams (Smaregi members, HubSpot contacts) page at each vendor's largest
documented page and ask for the next page only once the previous one is used up: memory holds one page,
whatever the number of members (the bulk export: test_shopify_bulk_export.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from config.settings import Secret, Settings
from connectors.hubspot import HubSpotClient
from connectors.smaregi import MAX_PAGE_SIZE, SmaregiClient

SMAREGI = "https://api.smaregi.test"
HUBSPOT = "https://api.hubspot.test"
CUSTOMERS = f"{SMAREGI}/c1/pos/customers"
CONTACTS = f"{HUBSPOT}/crm/objects/2026-09/contacts"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def settings() -> Settings:
    return Settings.from_env(
        environ={"MEMBERSYNC_ENV": "test"},
        smaregi_api_url=SMAREGI,
        smaregi_id_url=SMAREGI,
        smaregi_contract_id="c1",
        smaregi_client_id="client",
        smaregi_client_secret=Secret("secret"),
        hubspot_api_url=HUBSPOT,
        hubspot_access_token=Secret("pat-1"),
    )


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)


def member(number: int) -> dict[str, Any]:
    return {"customerId": str(number), "customerCode": f"MS{number}", "mailAddress": f"m{number}@example.jp"}


def test_smaregi_members_are_read_500_at_a_time_one_page_ahead_of_nothing(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{SMAREGI}/app/c1/token", json={"access_token": "t", "expires_in": 3600})
    mocked.get(CUSTOMERS, json=[member(number) for number in range(MAX_PAGE_SIZE)])
    mocked.get(CUSTOMERS, json=[member(MAX_PAGE_SIZE)])
    members = SmaregiClient.from_settings(settings()).iter_members()
    assert MAX_PAGE_SIZE == 500
    assert next(members).customer_id == "0"
    assert len(mocked.calls) == 2  # the token and the first page only
    assert sum(1 for _ in members) == MAX_PAGE_SIZE
    assert [query(call)["limit"] for call in mocked.calls[1:]] == [["500"], ["500"]]
    assert [query(call)["page"] for call in mocked.calls[1:]] == [["1"], ["2"]]


def test_hubspot_contacts_are_read_100_at_a_time_one_page_ahead_of_nothing(
    mocked: responses.RequestsMock,
) -> None:
    first = [{"id": str(number), "properties": {"email": f"c{number}@example.jp"}} for number in range(100)]
    mocked.get(CONTACTS, json={"results": first, "paging": {"next": {"after": "100"}}})
    mocked.get(CONTACTS, json={"results": [{"id": "100", "properties": {"email": "c100@example.jp"}}]})
    contacts = HubSpotClient.from_settings(settings()).iter_contacts()
    assert next(contacts).id == "0"
    assert len(mocked.calls) == 1
    assert sum(1 for _ in contacts) == 100
    assert [query(call)["limit"] for call in mocked.calls] == [["100"], ["100"]]
    assert query(mocked.calls[1])["after"] == ["100"]
