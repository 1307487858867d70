"""The sandbox keeps its records across a restart when SANDBOX_STATE_DIR is set (`membersync dev`),
and starts empty without it (tests, `membersync sandbox`)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import requests

from connectors.shopify import documents
from sandbox.runner import PORT_VARIABLES, Sandbox, start_sandbox

ALL_FREE = dict.fromkeys(PORT_VARIABLES, 0)
SHOPIFY_HEADERS = {"X-Shopify-Access-Token": "shpat_sandbox"}


def shopify_create(sandbox: Sandbox, email: str) -> dict[str, Any]:
    response = requests.post(
        f"{sandbox.urls['shopify']}/admin/api/2025-01/graphql.json",
        json={"query": documents.CREATE_CUSTOMER, "variables": {"input": {"email": email}}},
        headers=SHOPIFY_HEADERS,
        timeout=5,
    )
    payload = response.json()["data"]["customerCreate"]
    return {"errors": payload["userErrors"], "customer": payload["customer"]}


def smaregi_create(sandbox: Sandbox, code: str) -> requests.Response:
    url = sandbox.urls["smaregi"]
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    token = requests.post(
        f"{url}/app/sandbox/token",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials", "scope": "pos.customers:read pos.customers:write"},
        timeout=5,
    ).json()["access_token"]
    return requests.post(
        f"{url}/sandbox/pos/customers",
        json={"customerCode": code, "lastName": "a", "firstName": "b"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def hubspot_create(sandbox: Sandbox, email: str) -> requests.Response:
    return requests.post(
        f"{sandbox.urls['hubspot']}/crm/v3/objects/contacts",
        json={"properties": {"email": email}},
        headers={"Authorization": "Bearer pat-sandbox"},
        timeout=5,
    )


def state(sandbox: Sandbox, name: str) -> dict[str, Any]:
    return dict(requests.get(f"{sandbox.urls[name]}/_sandbox/state", timeout=5).json())


def test_records_survive_a_restart_and_ids_continue(tmp_path: Path) -> None:
    env = {"SANDBOX_STATE_DIR": str(tmp_path / "sandbox")}
    first = start_sandbox(ports=ALL_FREE, env=env)
    try:
        before = [shopify_create(first, f"p{n}@example.com")["customer"]["id"] for n in (1, 2)]
        assert smaregi_create(first, "M-1").status_code == 200
        assert hubspot_create(first, "p1@example.com").status_code == 201
    finally:
        first.stop()
    assert {path.name for path in (tmp_path / "sandbox").iterdir()} >= {"shopify.json", "smaregi.json"}

    second = start_sandbox(ports=ALL_FREE, env=env)
    try:
        assert [customer["id"] for customer in state(second, "shopify")["customers"]] == before
        # The unique indexes are rebuilt: a known e-mail is still taken, a known code still refused.
        assert shopify_create(second, "P1@example.com")["errors"]
        assert smaregi_create(second, "M-1").status_code == 400
        assert hubspot_create(second, "p1@example.com").status_code == 409
        # A new record gets the next id, never one that a synced registration already points at.
        created = shopify_create(second, "p3@example.com")["customer"]["id"]
        assert created not in before and created.rsplit("/", 1)[1] == "3"
        assert [m["customerCode"] for m in state(second, "smaregi")["customers"]] == ["M-1"]
        # A reset is saved too.
        assert requests.post(f"{second.urls['hubspot']}/_sandbox/reset", timeout=5).status_code == 200
    finally:
        second.stop()

    third = start_sandbox(ports=ALL_FREE, env=env)
    try:
        assert state(third, "hubspot")["contacts"] == []
        assert len(state(third, "shopify")["customers"]) == 3
    finally:
        third.stop()


def test_without_a_state_dir_the_sandbox_starts_empty(tmp_path: Path) -> None:
    first = start_sandbox(ports=ALL_FREE, env={})
    try:
        shopify_create(first, "p1@example.com")
    finally:
        first.stop()
    second = start_sandbox(ports=ALL_FREE, env={})
    try:
        assert state(second, "shopify")["customers"] == []
    finally:
        second.stop()
    assert list(tmp_path.iterdir()) == []
