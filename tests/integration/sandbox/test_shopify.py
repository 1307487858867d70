"""The Shopify emulator over real sockets: shapes, errors, auth, versions, search, pages, reset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.shopify import documents
from connectors.shopify.client import FACT_VARIABLES
from sandbox.common import ThreadedServer
from sandbox.shopify import create_app
from sandbox.shopify.execution import AdminApi

TOKEN = "shpat_sandbox"


class Shop:
    """A running emulator and a tiny client for it."""

    def __init__(self, server: ThreadedServer) -> None:
        self.server = server
        self.url = server.url
        self.api: AdminApi = server.app.extensions["sandbox.shopify"]

    def endpoint(self, version: str = "2026-10") -> str:
        return f"{self.url}/admin/api/{version}/graphql.json"

    def post(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"X-Shopify-Access-Token": TOKEN})
        body = {"query": query, "variables": variables or {}}
        return requests.post(
            kwargs.pop("url", self.endpoint()), json=body, headers=headers, timeout=5, **kwargs
        )

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(query, variables)
        assert response.status_code == 200
        body = response.json()
        assert "errors" not in body, body
        return dict(body["data"])

    def create(self, **customer_input: Any) -> dict[str, Any]:
        payload = self.data(documents.CREATE_CUSTOMER, {"input": customer_input})["customerCreate"]
        assert payload["userErrors"] == []
        return dict(payload["customer"])

    def state(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_sandbox/state", timeout=5).json())


@pytest.fixture(scope="module")
def running_shop() -> Iterator[Shop]:
    server = ThreadedServer(create_app(), port=0).start()
    yield Shop(server)
    server.stop()


@pytest.fixture
def shop(running_shop: Shop) -> Shop:
    """The module's emulator, emptied: every test starts from customer 1 with no counters or faults."""
    assert requests.post(f"{running_shop.url}/_sandbox/reset", timeout=5).status_code == 200
    return running_shop


def member_number(value: str) -> dict[str, str]:
    return {
        "namespace": documents.MEMBER_FACTS_NAMESPACE,
        "key": documents.MEMBER_NUMBER_KEY,
        "type": "single_line_text_field",
        "value": value,
    }


def email_lookup(email: str) -> dict[str, Any]:
    return {
        "email": email,
        "metafieldNamespace": documents.REGISTRATION_NAMESPACE,
        "registrationKey": documents.REGISTRATION_KEY,
        **FACT_VARIABLES,
    }


SEARCH_BY_EMAIL = """query Search($query: String!) {
  customers(first: 5, query: $query) { nodes { id defaultEmailAddress { emailAddress } } }
}"""


def test_create_customer_answers_shopifys_shape(shop: Shop) -> None:
    payload = shop.data(
        documents.CREATE_CUSTOMER,
        {
            "input": {
                "email": "hanako@example.jp",
                "firstName": "Hanako",
                "lastName": "Sato",
                "phone": "+81 90-1234-5678",
                "locale": "ja",
                "tags": ["member", "web"],
                "emailMarketingConsent": {
                    "marketingState": "SUBSCRIBED",
                    "marketingOptInLevel": "SINGLE_OPT_IN",
                },
                "metafields": [member_number("M000001")],
            }
        },
    )["customerCreate"]
    customer = payload["customer"]
    assert payload["userErrors"] == []
    assert customer["id"] == "gid://shopify/Customer/1"
    assert customer["defaultEmailAddress"]["emailAddress"] == "hanako@example.jp"
    assert customer["defaultPhoneNumber"] == {"phoneNumber": "+819012345678"}  # stored in E.164
    assert customer["defaultAddress"] is None
    assert customer["tags"] == ["member", "web"]
    assert customer["state"] == "DISABLED"
    assert customer["defaultEmailAddress"]["marketingState"] == "SUBSCRIBED"
    assert customer["defaultEmailAddress"]["marketingOptInLevel"] == "SINGLE_OPT_IN"
    assert customer["defaultEmailAddress"]["marketingUpdatedAt"].endswith("Z")
    assert customer["createdAt"] == customer["updatedAt"]


def test_a_customer_without_email_or_phone_has_null_default_objects(shop: Shop) -> None:
    customer = shop.create(firstName="Nanashi")
    assert (customer["defaultEmailAddress"], customer["defaultPhoneNumber"]) == (None, None)


def test_deprecated_email_and_phone_are_still_served(shop: Shop) -> None:
    """As on Shopify: 2026-10 deprecates Customer.email and .phone but still answers them."""
    created = shop.create(email="old@example.jp", phone="+819011112222")
    customer = shop.data("query($id: ID!) { customer(id: $id) { email phone } }", {"id": created["id"]})
    assert customer == {"customer": {"email": "old@example.jp", "phone": "+819011112222"}}


def test_duplicate_email_in_any_case_is_taken(shop: Shop) -> None:
    shop.create(email="taro@example.jp", firstName="Taro")
    payload = shop.data(documents.CREATE_CUSTOMER, {"input": {"email": "TARO@Example.JP"}})["customerCreate"]
    assert payload == {
        "customer": None,
        "userErrors": [{"field": ["email"], "message": "Email has already been taken"}],
    }
    assert len(shop.state()["customers"]) == 1


def test_update_to_an_email_already_taken_is_refused(shop: Shop) -> None:
    shop.create(email="first@example.jp")
    second = shop.create(email="second@example.jp")
    payload = shop.data(
        documents.UPDATE_CUSTOMER, {"input": {"id": second["id"], "email": "First@example.jp"}}
    )
    assert payload["customerUpdate"]["customer"] is None
    assert payload["customerUpdate"]["userErrors"] == [
        {"field": ["email"], "message": "Email has already been taken"}
    ]


@pytest.mark.parametrize(
    ("customer_input", "errors"),
    [
        ({"email": "not-an-email"}, [{"field": ["email"], "message": "Email is invalid"}]),
        ({"email": "a@b.jp", "phone": "12"}, [{"field": ["phone"], "message": "Phone is invalid"}]),
        (
            {"note": "nobody"},
            [{"field": None, "message": "Customer must have a name, phone number or email address"}],
        ),
        (
            {"email": "a@b.jp", "metafields": [{**member_number("x"), "type": "number_integer"}]},
            [{"field": ["metafields", "0", "value"], "message": "Value must be an integer."}],
        ),
    ],
)
def test_invalid_customers_get_user_errors(
    shop: Shop, customer_input: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    payload = shop.data(documents.CREATE_CUSTOMER, {"input": customer_input})["customerCreate"]
    assert payload == {"customer": None, "userErrors": errors}
    assert shop.state()["customers"] == []


@pytest.mark.parametrize("email", ["kenji@example.jp", "Kenji@Example.JP"])
def test_customer_by_identifier_finds_the_exact_email_in_any_case(shop: Shop, email: str) -> None:
    shop.create(email="other@example.jp")
    shop.create(email="kenji@example.jp.evil.example")
    created = shop.create(email="kenji@example.jp", metafields=[member_number("M7")])
    found = shop.data(documents.FIND_CUSTOMER_BY_EMAIL, email_lookup(email))["customerByIdentifier"]
    assert found["id"] == created["id"]
    assert found["defaultEmailAddress"]["emailAddress"] == "kenji@example.jp"
    assert found["factMemberNumber"]["value"] == "M7"


@pytest.mark.parametrize("email", ["nobody@example.jp", "kenji", "example.jp", "kenji@example"])
def test_customer_by_identifier_is_null_without_an_exact_match(shop: Shop, email: str) -> None:
    """A lookup, not a search: no tokens, no prefixes; null rather than an empty list."""
    shop.create(email="kenji@example.jp")
    assert shop.data(documents.FIND_CUSTOMER_BY_EMAIL, email_lookup(email)) == {"customerByIdentifier": None}


BY_IDENTIFIER = """query($identifier: CustomerIdentifierInput!) {
  customerByIdentifier(identifier: $identifier) { id }
}"""


def test_customer_by_identifier_by_phone_or_id(shop: Shop) -> None:
    created = shop.create(email="tel@example.jp", phone="+819055556666")
    query = BY_IDENTIFIER
    for identifier in ({"phoneNumber": "+81 90-5555-6666"}, {"id": created["id"]}):
        assert shop.data(query, {"identifier": identifier}) == {"customerByIdentifier": {"id": created["id"]}}
    assert shop.data(query, {"identifier": {"phoneNumber": "+819000000000"}}) == {
        "customerByIdentifier": None
    }


@pytest.mark.parametrize("identifier", [{}, {"emailAddress": "a@example.jp", "phoneNumber": "+819055556666"}])
def test_customer_by_identifier_takes_exactly_one_key(shop: Shop, identifier: dict[str, str]) -> None:
    body = shop.post(BY_IDENTIFIER, {"identifier": identifier}).json()
    assert "Exactly one key must be specified" in body["errors"][0]["message"]
    assert "data" not in body


@pytest.mark.parametrize("search", ['email:"Kenji@Example.jp"', "email:kenji@example.jp"])
def test_search_by_email_quoted_or_not(shop: Shop, search: str) -> None:
    shop.create(email="other@example.jp")
    created = shop.create(email="kenji@example.jp")
    found = shop.data(SEARCH_BY_EMAIL, {"query": search})["customers"]
    assert [node["id"] for node in found["nodes"]] == [created["id"]]


def test_address_create_sets_the_default_and_update_changes_it(shop: Shop) -> None:
    customer_id = shop.create(email="addr@example.jp")["id"]
    first = shop.data(
        documents.ADD_CUSTOMER_ADDRESS,
        {
            "customerId": customer_id,
            "address": {"countryCode": "JP", "zip": "150-0001"},
            "setAsDefault": True,
        },
    )["customerAddressCreate"]
    assert first["userErrors"] == [] and first["address"]["id"].startswith("gid://shopify/MailingAddress/")
    second = shop.data(
        documents.ADD_CUSTOMER_ADDRESS,
        {
            "customerId": customer_id,
            "address": {"countryCode": "JP", "zip": "530-0001"},
            "setAsDefault": True,
        },
    )["customerAddressCreate"]
    read = "query($id: ID!) { customer(id: $id) { defaultAddress { id zip address1 countryCodeV2 } } }"
    assert shop.data(read, {"id": customer_id})["customer"]["defaultAddress"] == {
        "id": second["address"]["id"],
        "zip": "530-0001",
        "address1": None,
        "countryCodeV2": "JP",
    }
    updated = shop.data(
        documents.UPDATE_CUSTOMER_ADDRESS,
        {
            "customerId": customer_id,
            "addressId": second["address"]["id"],
            "address": {"address1": "大阪市北区"},
        },
    )["customerAddressUpdate"]
    assert updated == {"address": {"id": second["address"]["id"]}, "userErrors": []}
    default = shop.data(read, {"id": customer_id})["customer"]["defaultAddress"]
    assert (default["zip"], default["address1"]) == ("530-0001", "大阪市北区")


def test_address_mutations_on_unknown_ids_are_user_errors(shop: Shop) -> None:
    customer_id = shop.create(email="addr@example.jp")["id"]
    address = {"countryCode": "JP", "zip": "150-0001"}
    created = shop.data(
        documents.ADD_CUSTOMER_ADDRESS, {"customerId": "gid://shopify/Customer/99", "address": address}
    )["customerAddressCreate"]
    assert created == {
        "address": None,
        "userErrors": [{"field": ["customerId"], "message": "Customer does not exist"}],
    }
    updated = shop.data(
        documents.UPDATE_CUSTOMER_ADDRESS,
        {"customerId": customer_id, "addressId": "gid://shopify/MailingAddress/99", "address": address},
    )["customerAddressUpdate"]
    assert updated["address"] is None and updated["userErrors"][0]["field"] == ["addressId"]


def test_get_customer_with_member_number_and_unknown_id(shop: Shop) -> None:
    created = shop.create(email="yuki@example.jp", metafields=[member_number("M42")])
    variables = FACT_VARIABLES
    customer = shop.data(documents.GET_CUSTOMER, {"id": created["id"], **variables})["customer"]
    assert customer["factMemberNumber"]["value"] == "M42"
    assert customer["factPoints"] is None
    missing = shop.data(documents.GET_CUSTOMER, {"id": "gid://shopify/Customer/999", **variables})
    assert missing == {"customer": None}


def test_update_changes_only_the_fields_given(shop: Shop) -> None:
    created = shop.create(email="aki@example.jp", firstName="Aki", lastName="Ito", tags=["a"])
    payload = shop.data(
        documents.UPDATE_CUSTOMER, {"input": {"id": created["id"], "lastName": "Kato", "tags": ["b"]}}
    )
    customer = payload["customerUpdate"]["customer"]
    assert (customer["firstName"], customer["lastName"], customer["tags"]) == ("Aki", "Kato", ["b"])
    assert customer["defaultEmailAddress"]["emailAddress"] == "aki@example.jp"


def test_update_of_an_unknown_customer_is_a_user_error(shop: Shop) -> None:
    payload = shop.data(documents.UPDATE_CUSTOMER, {"input": {"id": "gid://shopify/Customer/5", "note": "x"}})
    assert payload["customerUpdate"] == {
        "customer": None,
        "userErrors": [{"field": ["id"], "message": "Customer does not exist"}],
    }


def test_metafields_set_with_compare_digest(shop: Shop) -> None:
    owner = shop.create(email="mika@example.jp")["id"]
    entry = {**member_number("M1"), "ownerId": owner}
    first = shop.data(documents.SET_METAFIELDS, {"metafields": [{**entry, "compareDigest": None}]})[
        "metafieldsSet"
    ]
    assert first["userErrors"] == []
    digest = first["metafields"][0]["compareDigest"]
    second = shop.data(
        documents.SET_METAFIELDS, {"metafields": [{**entry, "value": "M2", "compareDigest": digest}]}
    )
    assert second["metafieldsSet"]["metafields"][0]["value"] == "M2"
    stale = shop.data(
        documents.SET_METAFIELDS, {"metafields": [{**entry, "value": "M3", "compareDigest": digest}]}
    )
    assert stale["metafieldsSet"]["metafields"] is None
    assert [error["code"] for error in stale["metafieldsSet"]["userErrors"]] == ["STALE_OBJECT"]
    (stored,) = shop.state()["customers"][0]["metafields"]
    assert stored["value"] == "M2"


def test_metafields_set_reports_each_bad_entry(shop: Shop) -> None:
    owner = shop.create(email="mika@example.jp")["id"]
    payload = shop.data(
        documents.SET_METAFIELDS,
        {
            "metafields": [
                {**member_number("ok"), "ownerId": owner},
                {**member_number("1.5"), "ownerId": owner, "key": "points", "type": "number_integer"},
                {**member_number("x"), "ownerId": "gid://shopify/Customer/404"},
            ]
        },
    )["metafieldsSet"]
    assert payload["metafields"] is None  # all or nothing
    assert [(error["elementIndex"], error["code"], error["field"]) for error in payload["userErrors"]] == [
        (1, "INVALID_VALUE", ["metafields", "1", "value"]),
        (2, "INVALID_VALUE", ["metafields", "2", "ownerId"]),
    ]
    assert shop.state()["customers"][0]["metafields"] == []


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{ customer(id: 1) { id nickname } }", {}, "Cannot query field 'nickname' on type 'Customer'."),
        ('{ customers(first: "ten") { nodes { id } } }', {}, "Int cannot represent non-integer value"),
        ("query Q($id: ID!) { customer(id: $id) { id } }", {}, "Variable '$id'"),
        ("{ customers(first: 1) { nodes { id } }", {}, "Syntax Error"),
        (
            "mutation { customerCreate(input: {email: 1}) { userErrors { field } } }",
            {},
            "String cannot represent",
        ),
    ],
)
def test_documents_shopify_would_reject_get_graphql_errors(
    shop: Shop, query: str, variables: dict[str, Any], message: str
) -> None:
    response = shop.post(query, variables)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert any(message in error["message"] for error in body["errors"]), body
    assert all(error.get("locations") for error in body["errors"])
    assert body["extensions"]["cost"]["requestedQueryCost"] >= 0
    assert shop.state()["customers"] == []


def test_missing_or_wrong_token_is_401(shop: Shop) -> None:
    for headers in ({}, {"X-Shopify-Access-Token": "shpat_wrong"}):
        response = shop.post("{ customers(first: 1) { nodes { id } } }", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


@pytest.mark.parametrize("version", ["2026-10", "2026-07", "2026-04", "2026-01"])
def test_a_supported_version_serves_itself_and_says_so(shop: Shop, version: str) -> None:
    response = shop.post("{ customers(first: 1) { nodes { id } } }", url=shop.endpoint(version))
    assert response.status_code == 200
    assert response.headers["X-Shopify-API-Version"] == version


@pytest.mark.parametrize("version", ["2025-01", "1999-01", "2025-10", "latest"])
def test_a_retired_or_unknown_version_is_served_by_the_oldest_supported_one(shop: Shop, version: str) -> None:
    """Shopify does not refuse a retired version: it answers with the oldest supported one, and says so."""
    shop.create(email="kept@example.jp")
    response = shop.post(
        documents.FIND_CUSTOMER_BY_EMAIL, email_lookup("kept@example.jp"), url=shop.endpoint(version)
    )
    assert response.status_code == 200
    assert response.headers["X-Shopify-API-Version"] == "2026-01"
    assert response.json()["data"]["customerByIdentifier"]["id"] == "gid://shopify/Customer/1"


def test_every_answer_names_the_serving_version_refusals_and_faults_too(shop: Shop) -> None:
    refused = shop.post("{ customers(first: 1) { nodes { id } } }", headers={}, url=shop.endpoint("2025-01"))
    assert (refused.status_code, refused.headers["X-Shopify-API-Version"]) == (401, "2026-01")
    requests.post(f"{shop.url}/_sandbox/faults", json={"error_rate": 1.0, "seed": 1}, timeout=5)
    failed = shop.post("{ customers(first: 1) { nodes { id } } }")
    assert failed.status_code >= 500 and failed.headers["X-Shopify-API-Version"] == "2026-10"
    assert "X-Shopify-API-Version" not in requests.get(f"{shop.url}/_sandbox/state", timeout=5).headers


def test_application_graphql_body_and_missing_query(shop: Shop) -> None:
    headers = {"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/graphql"}
    response = requests.post(
        shop.endpoint(), data="{ customers(first: 1) { nodes { id } } }", headers=headers, timeout=5
    )
    assert response.json()["data"] == {"customers": {"nodes": []}}
    response = requests.post(
        shop.endpoint(), json={"variables": {}}, headers={"X-Shopify-Access-Token": TOKEN}, timeout=5
    )
    assert response.status_code == 400


def test_pages_through_customers_with_cursors(shop: Shop) -> None:
    ids = [shop.create(email=f"m{number}@example.jp")["id"] for number in range(7)]
    query = """query Page($after: String) { customers(first: 3, after: $after) {
        edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"""
    seen, after, pages = [], None, 0
    while True:
        connection = shop.data(query, {"after": after})["customers"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        pages += 1
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert (seen, pages) == (ids, 3)


def test_last_before_and_reverse(shop: Shop) -> None:
    ids = [shop.create(email=f"m{number}@example.jp")["id"] for number in range(5)]
    newest_first = shop.data("{ customers(first: 2, reverse: true) { nodes { id } } }")["customers"]["nodes"]
    assert [node["id"] for node in newest_first] == [ids[4], ids[3]]
    tail = shop.data("{ customers(last: 2) { nodes { id } pageInfo { hasPreviousPage startCursor } } }")[
        "customers"
    ]
    assert [node["id"] for node in tail["nodes"]] == ids[3:]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    before = shop.data(
        "query($before: String) { customers(last: 2, before: $before) { nodes { id } } }",
        {"before": tail["pageInfo"]["startCursor"]},
    )["customers"]["nodes"]
    assert [node["id"] for node in before] == ids[1:3]


def test_search_by_updated_at_tag_and_negation(shop: Shop) -> None:
    shop.create(email="old@example.jp", tags=["vip"])
    shop.create(email="new@example.jp")
    everyone = shop.data('{ customers(first: 10, query: "updated_at:>2000-01-01") { nodes { email } } }')
    assert len(everyone["customers"]["nodes"]) == 2
    nobody = shop.data(
        "{ customers(first: 10, query: \"updated_at:>'2999-01-01T00:00:00Z'\") { nodes { email } } }"
    )
    assert nobody["customers"]["nodes"] == []
    vip = shop.data('{ customers(first: 10, query: "tag:vip") { nodes { email } } }')["customers"]["nodes"]
    assert vip == [{"email": "old@example.jp"}]
    not_vip = shop.data('{ customers(first: 10, query: "-tag:vip") { nodes { email } } }')["customers"][
        "nodes"
    ]
    assert not_vip == [{"email": "new@example.jp"}]


def test_page_size_rules(shop: Shop) -> None:
    for arguments in ("", "(first: 251)"):
        body = shop.post(f"{{ customers{arguments} {{ nodes {{ id }} }} }}").json()
        assert body["errors"] and body["data"] is None


def test_state_and_reset(shop: Shop) -> None:
    created = shop.create(email="rei@example.jp", metafields=[member_number("M9")])
    state = shop.state()
    (customer,) = state["customers"]
    assert customer["id"] == created["id"]
    assert customer["email"] == "rei@example.jp"
    assert customer["metafields"][0]["value"] == "M9"
    assert state["requests"]["graphql.customerCreate"] == 1
    assert requests.post(f"{shop.url}/_sandbox/reset", timeout=5).status_code == 200
    state = shop.state()
    assert state["customers"] == [] and state["requests"] == {}
    assert shop.create(email="rei@example.jp")["id"] == "gid://shopify/Customer/1"


def test_sort_by_name_pages_with_its_own_cursors(shop: Shop) -> None:
    for first_name in ("Chie", "Aoi", "Daichi", "Ban"):
        shop.create(firstName=first_name)
    query = """query($after: String) { customers(first: 2, after: $after, sortKey: NAME) {
        nodes { firstName } pageInfo { hasNextPage endCursor } } }"""
    page = shop.data(query)["customers"]
    assert [node["firstName"] for node in page["nodes"]] == ["Aoi", "Ban"]
    rest = shop.data(query, {"after": page["pageInfo"]["endCursor"]})["customers"]
    assert [node["firstName"] for node in rest["nodes"]] == ["Chie", "Daichi"]
    assert rest["pageInfo"]["hasNextPage"] is False


def test_customer_metafields_connection_filters_and_pages(shop: Shop) -> None:
    metafields = [{**member_number(f"v{key}"), "key": f"k{key}"} for key in range(3)]
    metafields.append({**member_number("other"), "namespace": "loyalty"})
    owner = shop.create(email="mf@example.jp", metafields=metafields)["id"]
    query = """query($id: ID!, $after: String) { customer(id: $id) {
        metafields(first: 2, after: $after, namespace: "$app:membersync") {
            nodes { key value } pageInfo { hasNextPage endCursor } } } }"""
    first = shop.data(query, {"id": owner})["customer"]["metafields"]
    assert [node["key"] for node in first["nodes"]] == ["k0", "k1"]
    second = shop.data(query, {"id": owner, "after": first["pageInfo"]["endCursor"]})["customer"][
        "metafields"
    ]
    assert [node["key"] for node in second["nodes"]] == ["k2"]
    assert second["pageInfo"]["hasNextPage"] is False
