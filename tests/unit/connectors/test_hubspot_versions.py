"""HubSpotClient on HubSpot's date-versioned API, against `responses`: the path of every call per
HUBSPOT_API_VERSION, an admin's validation rule refusing a write, and Membersync's custom properties
created once before the first write that carries one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from config.settings import ConfigError, Secret, Settings
from connectors.errors import NotFoundError, PermanentError
from connectors.hubspot import HubSpotClient, ValidationRuleRefused
from connectors.hubspot.paths import CrmPaths

API = "https://api.hubspot.test"
EMAIL = "hanako@example.com"
PHONE = "090-0000-0000"
DATED = f"{API}/crm/objects/2026-09/contacts"
PROPERTIES = f"{API}/crm/properties/2026-09/contacts"


def client(version: str | None = None) -> HubSpotClient:
    environ = {"MEMBERSYNC_ENV": "test", **({"HUBSPOT_API_VERSION": version} if version else {})}
    settings = Settings.from_env(environ=environ, hubspot_api_url=API, hubspot_access_token=Secret("pat-1"))
    return HubSpotClient.from_settings(settings)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def contact(contact_id: str = "101", **properties: str) -> dict[str, Any]:
    return {"id": contact_id, "properties": {"email": EMAIL, **properties}, "archived": False}


def upserted(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    inputs = json.loads(request.body or "{}")["inputs"]
    results = [contact(str(n), **item["properties"]) | {"new": True} for n, item in enumerate(inputs)]
    return 200, {}, json.dumps({"status": "COMPLETE", "results": results})


def rule_error(name: str = "phone", error: str = "VALIDATION_RULE_FAILED") -> dict[str, Any]:
    message = f'Validation rule "Digits only" refused the value of {name}'
    return {"isValid": False, "message": message, "error": error, "name": name}


def validation_body(*errors: dict[str, Any], embedded: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": f"Property values were not valid: {json.dumps(list(errors))}",
        "correlationId": "c-1",
        "category": "VALIDATION_ERROR",
    }
    return body if embedded else {**body, "errors": list(errors)}


# --- paths per version --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "objects", "properties"),
    [
        (None, "/crm/objects/2026-09/contacts", "/crm/properties/2026-09/contacts"),
        ("2026-03", "/crm/objects/2026-03/contacts", "/crm/properties/2026-03/contacts"),
        ("v3", "/crm/v3/objects/contacts", "/crm/v3/properties/contacts"),
        (" V3 ", "/crm/v3/objects/contacts", "/crm/v3/properties/contacts"),
    ],
)
def test_every_contacts_call_goes_to_the_configured_version(
    mocked: responses.RequestsMock, version: str | None, objects: str, properties: str
) -> None:
    base = f"{API}{objects}"
    mocked.post(f"{API}{properties}", status=201, json={"name": "x"})
    mocked.post(f"{base}/batch/upsert", json={"status": "COMPLETE", "results": [contact()]})
    mocked.post(base, status=201, json=contact())
    mocked.get(f"{base}/101", json=contact())
    mocked.post(f"{base}/search", json={"total": 1, "results": [contact()]})
    mocked.get(base, json={"results": [contact()]})
    hubspot = client(version)

    hubspot.upsert_contact(email=EMAIL, properties={"membersync_points": "10"})
    hubspot.create_contact({"email": EMAIL})
    hubspot.get_contact("101")
    hubspot.search_contacts_by_email(EMAIL)
    list(hubspot.iter_contacts())
    hubspot.check()

    paths = [(call.request.method, urlsplit(str(call.request.url)).path) for call in mocked.calls]
    assert paths == [
        ("POST", properties),
        ("POST", properties),
        ("POST", properties),
        ("POST", f"{objects}/batch/upsert"),
        ("POST", objects),
        ("GET", f"{objects}/101"),
        ("POST", f"{objects}/search"),
        ("GET", objects),
        ("GET", objects),
    ]


@pytest.mark.parametrize("value", ["latest", "2026-13", "2026-9", "v4", "2026-09-01"])
def test_a_version_that_is_neither_a_date_nor_v3_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="HUBSPOT_API_VERSION"):
        Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "HUBSPOT_API_VERSION": value})
    with pytest.raises(ValueError):
        CrmPaths(value)


def test_the_default_version_is_2026_09() -> None:
    assert Settings.from_env(environ={"MEMBERSYNC_ENV": "test"}).hubspot_api_version == "2026-09"


def test_extra_properties_are_read_besides_the_defaults(mocked: responses.RequestsMock) -> None:
    mocked.get(DATED, json={"results": [contact(membersync_points="40")]})
    mocked.get(f"{DATED}/101", json=contact(membersync_rank="gold"))
    mocked.post(f"{DATED}/search", json={"results": []})
    hubspot = client()
    extra = ("membersync_points", "membersync_rank")

    [listed] = hubspot.iter_contacts(extra_properties=extra)
    found = hubspot.get_contact("101", extra_properties=extra)
    hubspot.search_contacts_by_email(EMAIL, extra_properties=extra)

    assert listed.properties["membersync_points"] == "40"
    assert found is not None and found.properties["membersync_rank"] == "gold"
    for call in mocked.calls[:2]:
        names = parse_qs(urlsplit(str(call.request.url)).query)["properties"][0].split(",")
        assert names == ["email", "firstname", "lastname", "phone", *extra]
    searched = json.loads(mocked.calls[2].request.body or "{}")["properties"]
    assert searched == ["email", "firstname", "lastname", "phone", *extra]


def test_a_404_for_the_path_is_not_a_missing_contact(mocked: responses.RequestsMock) -> None:
    # An API version HubSpot does not serve answers 404 for every path: never "no such contact".
    mocked.get(f"{DATED}/101", status=404, json={"status": "error", "category": "NOT_FOUND", "message": "x"})
    with pytest.raises(NotFoundError, match="HUBSPOT_API_VERSION"):
        client().get_contact("101")


# --- validation rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("embedded", [False, True])
def test_a_write_refused_by_a_validation_rule_is_permanent_and_named(
    mocked: responses.RequestsMock, embedded: bool
) -> None:
    # `embedded`: the list only inside the message, as HubSpot's 2023 announcement shows it.
    mocked.post(
        DATED, status=400, json=validation_body(rule_error("phone", "INVALID_ALPHA"), embedded=embedded)
    )
    with pytest.raises(ValidationRuleRefused) as refused:
        client().create_contact({"email": EMAIL, "phone": PHONE})
    message = str(refused.value)
    assert refused.value.reason == "validation_rule_refused" and refused.value.status == 400
    assert "property phone" in message and "admin" in message and "validation rule" in message
    assert PHONE not in message and "@" not in message


def test_a_batch_input_refused_by_a_rule_names_its_position_and_property(
    mocked: responses.RequestsMock,
) -> None:
    error = validation_body(rule_error("lastname", "REQUIRED_PROPERTY_MISSING"))
    entry = {**error, "context": {"ids": [EMAIL]}}
    body = {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [entry]}
    mocked.post(f"{DATED}/batch/upsert", status=207, json=body)
    with pytest.raises(ValidationRuleRefused) as refused:
        client().upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    message = str(refused.value)
    assert "inputs [0]" in message and "property lastname" in message and "@" not in message
    assert isinstance(refused.value, PermanentError)


@pytest.mark.parametrize("code", ["PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE", "INVALID_EMAIL"])
def test_a_refusal_about_the_property_itself_is_no_rule(mocked: responses.RequestsMock, code: str) -> None:
    mocked.post(DATED, status=400, json=validation_body(rule_error("favourite", code)))
    with pytest.raises(PermanentError) as refused:
        client().create_contact({"email": EMAIL})
    assert type(refused.value) is PermanentError


# --- Membersync's custom properties -----------------------------------------------------------------


def test_member_properties_are_created_once_before_the_first_write_naming_one(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(PROPERTIES, status=201, json={})
    mocked.add_callback(responses.POST, f"{DATED}/batch/upsert", callback=upserted)
    hubspot = client()

    hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})  # no fact: nothing to ensure
    assert [urlsplit(str(call.request.url)).path for call in mocked.calls] == [
        "/crm/objects/2026-09/contacts/batch/upsert"
    ]
    hubspot.upsert_contact(email=EMAIL, properties={"membersync_points": "10"})
    hubspot.upsert_contacts([{"email": EMAIL, "membersync_rank": "gold"}])

    created = [
        json.loads(call.request.body or "{}") for call in mocked.calls if call.request.url == PROPERTIES
    ]
    assert created == [
        {
            "name": name,
            "label": label,
            "type": kind,
            "fieldType": field,
            "groupName": "contactinformation",
            "description": "Kept by Membersync from Smaregi; edits in HubSpot are overwritten.",
        }
        for name, label, kind, field in [
            ("membersync_member_number", "Member number", "string", "text"),
            ("membersync_points", "Member points", "number", "number"),
            ("membersync_rank", "Member rank", "string", "text"),
        ]
    ]
    # Created before the write that needed them, and never again.
    assert [call.request.url for call in mocked.calls][1:5] == [PROPERTIES] * 3 + [f"{DATED}/batch/upsert"]


def test_properties_that_exist_already_are_fine(mocked: responses.RequestsMock) -> None:
    exists = {
        "status": "error",
        "message": "Property named 'x' already exists.",
        "category": "OBJECT_ALREADY_EXISTS",
    }
    mocked.post(PROPERTIES, status=409, json=exists)
    hubspot = client()
    hubspot.ensure_member_properties()
    hubspot.ensure_member_properties()
    assert len(mocked.calls) == 3


def test_a_key_without_the_schema_scope_says_which_scope(mocked: responses.RequestsMock) -> None:
    mocked.post(
        PROPERTIES, status=403, json={"status": "error", "category": "MISSING_SCOPES", "message": "x"}
    )
    with pytest.raises(PermanentError, match=r"crm\.schemas\.contacts\.write"):
        client().upsert_contact(email=EMAIL, properties={"membersync_member_number": "M1"})
    assert all(call.request.url == PROPERTIES for call in mocked.calls)  # the contact was not written
