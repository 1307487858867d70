"""The Shopify sandbox's app-owned metafields, as Shopify has them: `$app:<name>` stored as
`app--<app id>--<name>` and read back with either spelling, definitions that type the values, and at
most 25 metafields per metafieldsSet. In-process (the emulator's AdminApi), through the connector's
own documents."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.shopify import documents
from connectors.shopify.client import FACT_VARIABLES
from sandbox.shopify import metafields as mf
from sandbox.shopify.execution import AdminApi, GraphQLRequest

STORED = f"app--{mf.APP_ID}--membersync"


@pytest.fixture
def api() -> AdminApi:
    return AdminApi(bucket_size=1_000_000, restore_rate=1_000_000)


def run(api: AdminApi, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = api.run(GraphQLRequest(query, variables or {}), base_url="http://sandbox/").body
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def customer(api: AdminApi, email: str = "hanako@example.jp") -> str:
    created = run(api, documents.CREATE_CUSTOMER, {"input": {"email": email}})["customerCreate"]
    gid: str = created["customer"]["id"]
    return gid


def set_fields(api: AdminApi, *metafields: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = run(api, documents.SET_METAFIELDS, {"metafields": list(metafields)})[
        "metafieldsSet"
    ]
    return payload


def define(api: AdminApi, key: str, type_name: str, namespace: str = "$app:membersync") -> dict[str, Any]:
    definition = {"namespace": namespace, "key": key, "name": key, "type": type_name, "ownerType": "CUSTOMER"}
    payload: dict[str, Any] = run(api, documents.CREATE_METAFIELD_DEFINITION, {"definition": definition})
    return payload["metafieldDefinitionCreate"]


def points(owner: str, value: str, namespace: str = "$app:membersync", **extra: Any) -> dict[str, Any]:
    return {
        "ownerId": owner,
        "namespace": namespace,
        "key": "points",
        "type": "number_integer",
        "value": value,
        **extra,
    }


def test_app_namespace_is_stored_under_the_app_id_and_read_with_either_spelling(api: AdminApi) -> None:
    owner = customer(api)

    written = set_fields(api, points(owner, "120"))

    assert written["userErrors"] == []
    assert written["metafields"][0]["namespace"] == STORED
    read = run(api, documents.GET_CUSTOMER, {"id": owner, **FACT_VARIABLES})["customer"]
    assert read["factPoints"] == {"value": "120"}
    stored_spelling = {**FACT_VARIABLES, "factsNamespace": STORED}
    assert run(api, documents.GET_CUSTOMER, {"id": owner, **stored_spelling})["customer"]["factPoints"] == {
        "value": "120"
    }
    # Written with the stored spelling, it is the same metafield (replaced, not a second one).
    set_fields(api, points(owner, "130", namespace=STORED))
    listed = run(
        api,
        'query($id: ID!) { customer(id: $id) { metafields(first: 5, namespace: "$app:membersync") '
        "{ nodes { namespace key value } } } }",
        {"id": owner},
    )["customer"]["metafields"]["nodes"]
    assert listed == [{"namespace": STORED, "key": "points", "value": "130"}]


def test_another_apps_reserved_namespace_is_refused(api: AdminApi) -> None:
    owner = customer(api)

    refused = set_fields(api, points(owner, "1", namespace="app--999--membersync"))

    assert refused["metafields"] is None
    assert [error["code"] for error in refused["userErrors"]] == ["APP_NOT_AUTHORIZED"]


def test_a_definition_is_created_once_and_types_every_value(api: AdminApi) -> None:
    owner = customer(api)

    created = define(api, "points", "number_integer")
    again = define(api, "points", "number_integer", namespace=STORED)  # the same definition

    assert created["userErrors"] == []
    assert created["createdDefinition"]["namespace"] == STORED
    assert created["createdDefinition"]["type"] == {"name": "number_integer"}
    assert again["createdDefinition"] is None
    assert [(error["code"], error["field"]) for error in again["userErrors"]] == [
        ("TAKEN", ["definition", "key"])
    ]
    not_a_number = set_fields(api, points(owner, "12.5"))
    assert [(error["code"], error["field"]) for error in not_a_number["userErrors"]] == [
        ("INVALID_VALUE", ["metafields", "0", "value"])
    ]
    wrong_type = set_fields(api, {**points(owner, "12"), "type": "single_line_text_field"})
    assert [error["code"] for error in wrong_type["userErrors"]] == ["INVALID_TYPE"]
    # Without a type the definition's applies.
    untyped = set_fields(api, {key: value for key, value in points(owner, "12").items() if key != "type"})
    assert untyped["userErrors"] == [] and untyped["metafields"][0]["type"] == "number_integer"


def test_metafields_set_takes_at_most_25_and_writes_nothing_beyond(api: AdminApi) -> None:
    owners = [customer(api, f"m{number}@example.jp") for number in range(26)]

    refused = set_fields(api, *[points(owner, "1") for owner in owners])
    accepted = set_fields(api, *[points(owner, "2") for owner in owners[:25]])

    assert refused["metafields"] is None
    assert [(error["code"], error["field"]) for error in refused["userErrors"]] == [
        ("LESS_THAN_OR_EQUAL_TO", ["metafields"])
    ]
    assert accepted["userErrors"] == [] and len(accepted["metafields"]) == 25
    last = run(api, documents.GET_CUSTOMER, {"id": owners[25], **FACT_VARIABLES})["customer"]
    assert last["factPoints"] is None
