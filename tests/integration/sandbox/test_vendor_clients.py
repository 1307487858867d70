"""The vendors' own client libraries work against the emulators unchanged, apart from the base URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import shopify
from hubspot.crm.contacts import (
    ApiClient,
    BasicApi,
    BatchApi,
    BatchInputSimplePublicObjectBatchInputUpsert,
    Configuration,
    PublicObjectSearchRequest,
    SearchApi,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException

from sandbox import hubspot
from sandbox import shopify as shopify_emulator
from sandbox.common import ThreadedServer

Serve = Callable[..., ThreadedServer]


def hubspot_client(url: str, token: str = "pat-sandbox") -> ApiClient:
    configuration = Configuration(host=url)
    configuration.access_token = token
    return ApiClient(configuration=configuration)


def test_hubspot_api_client_round_trip(serve: Serve) -> None:
    client = hubspot_client(serve(hubspot.create_app()).url)
    contacts = BasicApi(client)

    created = contacts.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"email": "hanako@example.com", "firstname": "Hanako"}
        )
    )
    assert created.id and created.properties["email"] == "hanako@example.com" and created.created_at

    with pytest.raises(ApiException) as conflict:
        contacts.create(
            simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                properties={"email": "HANAKO@example.com"}
            )
        )
    assert conflict.value.status == 409
    assert f"Existing ID: {created.id}" in json.loads(conflict.value.body)["message"]

    found = SearchApi(client).do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "hanako@example.com"}]}
            ]
        )
    )
    assert found.total == 1 and found.results[0].id == created.id

    upserted = BatchApi(client).upsert(
        batch_input_simple_public_object_batch_input_upsert=BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(
                    id="hanako@example.com", id_property="email", properties={"lastname": "Yamada"}
                )
            ]
        )
    )
    assert upserted.status == "COMPLETE" and upserted.results[0].id == created.id

    read = contacts.get_by_id(contact_id=created.id, properties=["email", "lastname"])
    assert read.properties["lastname"] == "Yamada"


def test_hubspot_api_client_sees_a_bad_token_as_401(serve: Serve) -> None:
    client = hubspot_client(serve(hubspot.create_app()).url, token="pat-wrong")
    with pytest.raises(ApiException) as denied:
        BasicApi(client).get_page()
    assert denied.value.status == 401


@pytest.fixture
def shopify_graphql(serve: Serve) -> Any:
    """ShopifyAPI's GraphQL client with a sandbox session, its endpoint moved to the emulator."""
    server = serve(shopify_emulator.create_app())
    session = shopify.Session("sandbox.myshopify.com", "2026-10", "shpat_sandbox")
    shopify.ShopifyResource.activate_session(session)
    client = shopify.GraphQL()
    assert client.endpoint == "https://sandbox.myshopify.com/admin/api/2026-10/graphql.json"
    client.endpoint = f"{server.url}/admin/api/2026-10/graphql.json"
    yield client
    shopify.ShopifyResource.clear_session()


def test_shopify_python_api_round_trip(shopify_graphql: Any) -> None:
    from connectors.shopify import documents
    from connectors.shopify.client import FACT_VARIABLES

    created = json.loads(
        shopify_graphql.execute(
            documents.CREATE_CUSTOMER,
            variables={"input": {"email": "hanako@example.com", "firstName": "Hanako", "lastName": "Yamada"}},
        )
    )
    customer = created["data"]["customerCreate"]["customer"]
    assert customer["id"].startswith("gid://shopify/Customer/")
    assert created["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000.0

    again = json.loads(
        shopify_graphql.execute(
            documents.CREATE_CUSTOMER, variables={"input": {"email": "hanako@example.com"}}
        )
    )
    assert again["data"]["customerCreate"]["customer"] is None
    assert again["data"]["customerCreate"]["userErrors"] == [
        {"field": ["email"], "message": "Email has already been taken"}
    ]

    found = json.loads(
        shopify_graphql.execute(
            documents.FIND_CUSTOMER_BY_EMAIL,
            variables={
                "email": "hanako@example.com",
                "metafieldNamespace": documents.REGISTRATION_NAMESPACE,
                "registrationKey": documents.REGISTRATION_KEY,
                **FACT_VARIABLES,
            },
        )
    )
    assert found["data"]["customerByIdentifier"]["id"] == customer["id"]
    assert (
        found["data"]["customerByIdentifier"]["defaultEmailAddress"]["emailAddress"] == "hanako@example.com"
    )
