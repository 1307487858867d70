"""The HubSpot emulator over real sockets: the legacy v3 and the date-versioned contacts paths, the
Properties API, and a portal admin's validation rules refusing writes."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.hubspot import HubSpotSettings, create_app

AUTH = {"Authorization": "Bearer pat-sandbox"}
LEGACY = "/crm/v3/objects/contacts"
DATED = "/crm/objects/2026-09/contacts"
POINTS = {
    "name": "membersync_points",
    "label": "Member points",
    "type": "number",
    "fieldType": "number",
    "groupName": "contactinformation",
}


class HubSpot:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", headers=AUTH, timeout=5, **kwargs)

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}/_sandbox{path}", timeout=5, **kwargs)


@pytest.fixture
def hubspot(serve) -> HubSpot:
    return HubSpot(
        serve(create_app(HubSpotSettings(requests_per_window=10_000, search_per_second=10_000))).url
    )


def without_stamps(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without the times and ids that differ between two contacts."""
    properties = {k: v for k, v in body["properties"].items() if k not in {"createdate", "lastmodifieddate"}}
    return {
        **{k: v for k, v in body.items() if k not in {"createdAt", "updatedAt"}},
        "properties": properties,
    }


def test_legacy_and_dated_paths_serve_the_same_contacts_with_the_same_bodies(hubspot: HubSpot) -> None:
    created = hubspot.call("POST", DATED, json={"properties": {"email": "a@example.jp", "firstname": "A"}})
    assert created.status_code == 201
    contact_id = created.json()["id"]

    by_legacy = hubspot.call("GET", f"{LEGACY}/{contact_id}", params={"properties": "email,firstname"})
    by_date = hubspot.call("GET", f"{DATED}/{contact_id}", params={"properties": "email,firstname"})
    assert by_legacy.status_code == by_date.status_code == 200
    assert by_legacy.json() == by_date.json()

    upsert = {"inputs": [{"id": "a@example.jp", "idProperty": "email", "properties": {"lastname": "B"}}]}
    legacy_upsert = hubspot.call("POST", f"{LEGACY}/batch/upsert", json=upsert).json()["results"][0]
    dated_upsert = hubspot.call("POST", f"{DATED}/batch/upsert", json=upsert).json()["results"][0]
    assert without_stamps(legacy_upsert) == without_stamps(dated_upsert)
    assert dated_upsert["id"] == contact_id and dated_upsert["new"] is False

    search = {
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "A@example.jp"}]}]
    }
    for prefix in (LEGACY, "/crm/objects/2026-03/contacts", DATED):
        assert [c["id"] for c in hubspot.call("POST", f"{prefix}/search", json=search).json()["results"]] == [
            contact_id
        ]
        assert [c["id"] for c in hubspot.call("GET", prefix).json()["results"]] == [contact_id]
    patched = hubspot.call("PATCH", f"{DATED}/{contact_id}", json={"properties": {"phone": "0312345678"}})
    assert patched.status_code == 200 and patched.json()["properties"]["phone"] == "0312345678"


@pytest.mark.parametrize(
    "path", ["/crm/objects/2025-09/contacts", "/crm/objects/2027-03/contacts", "/crm/objects/v3/contacts"]
)
def test_a_version_hubspot_does_not_serve_is_a_404(hubspot: HubSpot, path: str) -> None:
    response = hubspot.call("GET", path)
    assert response.status_code == 404 and response.json()["category"] != "OBJECT_NOT_FOUND"
    assert hubspot.call("POST", path, json={"properties": {"email": "a@example.jp"}}).status_code == 404
    assert hubspot.control("GET", "/state").json()["contacts"] == []


def test_unknown_properties_are_refused_until_created_once(hubspot: HubSpot) -> None:
    write = {"properties": {"email": "a@example.jp", "membersync_points": 120}}
    refused = hubspot.call("POST", DATED, json=write)
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
    assert refused.json()["errors"] == [
        {
            "isValid": False,
            "message": 'Property "membersync_points" does not exist',
            "error": "PROPERTY_DOESNT_EXIST",
            "name": "membersync_points",
        }
    ]

    created = hubspot.call("POST", "/crm/properties/2026-09/contacts", json=POINTS)
    assert created.status_code == 201
    assert {key: created.json()[key] for key in POINTS} == POINTS
    again = hubspot.call("POST", "/crm/v3/properties/contacts", json=POINTS)  # the legacy form, same store
    assert again.status_code == 409 and again.json()["category"] == "OBJECT_ALREADY_EXISTS"
    standard = hubspot.call("POST", "/crm/properties/2026-09/contacts", json={**POINTS, "name": "email"})
    assert standard.status_code == 409
    mismatched = {**POINTS, "name": "membersync_rank", "fieldType": "text"}
    assert hubspot.call("POST", "/crm/properties/2026-09/contacts", json=mismatched).status_code == 400

    listed = hubspot.call("GET", "/crm/properties/2026-09/contacts").json()["results"]
    assert {"email", "zip", "hs_language", "membersync_points"} <= {p["name"] for p in listed}
    assert hubspot.call("GET", "/crm/v3/properties/contacts/membersync_points").json()["type"] == "number"
    assert hubspot.call("GET", "/crm/properties/2026-09/contacts/nothing_here").status_code == 404

    accepted = hubspot.call("POST", DATED, json=write)
    assert accepted.status_code == 201
    assert accepted.json()["properties"]["membersync_points"] == "120"


def test_validation_rules_refuse_writes_and_name_the_rule(hubspot: HubSpot) -> None:
    rule = {"property": "phone", "pattern": r"\+?[0-9]+", "name": "Phone digits only"}
    assert hubspot.control("POST", "/validation-rules", json=rule).status_code == 201
    assert hubspot.control("POST", "/validation-rules", json={"property": "lastname", "required": True}).ok
    assert hubspot.control("POST", "/validation-rules", json={"property": "phone"}).status_code == 400

    bad_phone = {"email": "a@example.jp", "lastname": "Yamada", "phone": "03-1234-5678"}
    refused = hubspot.call("POST", DATED, json={"properties": bad_phone})
    assert refused.status_code == 400
    body = refused.json()
    assert body["category"] == "VALIDATION_ERROR" and "Phone digits only" in body["message"]
    assert [(e["name"], e["error"]) for e in body["errors"]] == [("phone", "VALIDATION_RULE_FAILED")]
    assert "03-1234-5678" not in refused.text

    # Required properties are enforced from 2026-09 on; the legacy v3 paths do not enforce them.
    upsert = {"inputs": [{"id": "b@example.jp", "idProperty": "email", "properties": {"firstname": "B"}}]}
    batch = hubspot.call("POST", f"{DATED}/batch/upsert", json=upsert)
    assert batch.status_code == 207
    [error] = batch.json()["errors"]
    assert error["category"] == "VALIDATION_ERROR" and error["context"] == {"ids": ["b@example.jp"]}
    assert [(e["name"], e["error"]) for e in error["errors"]] == [("lastname", "REQUIRED_PROPERTY_MISSING")]
    assert hubspot.call("POST", f"{LEGACY}/batch/upsert", json=upsert).status_code == 200

    state = hubspot.control("GET", "/state").json()
    assert [c["properties"]["email"] for c in state["contacts"]] == ["b@example.jp"]
    assert [r["name"] for r in state["validation_rules"]] == ["Phone digits only", "lastname is required"]
    hubspot.control("POST", "/reset")
    assert hubspot.call("POST", DATED, json={"properties": bad_phone}).status_code == 201
