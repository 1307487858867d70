"""Every enum value we send to Shopify is one its 2026-10 schema lets a client set.

The walk runs the real ShopifyClient for every call it makes (and every case of the consent: no
opt-in, a request, a confirmation, a withdrawal, each opt-in level), captures the variables it sends,
and checks each value against the operation's variable types in Shopify's published schema: valid
input, and no enum value whose description says it cannot be set or is read-only (as
CustomerEmailMarketingState's NOT_SUBSCRIBED, INVALID and REDACTED do).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    coerce_input_value,
    parse,
    type_from_ast,
)
from hypothesis import given
from hypothesis import strategies as st

from connectors.http import HttpClient
from connectors.shopify import ShopifyClient, documents
from connectors.shopify.answers import OPERATION_NAMES
from connectors.shopify.mapping import (
    OPT_IN_LEVELS,
    READ_ONLY_MARKETING_STATES,
    SETTABLE_MARKETING_STATES,
    consent_confirmed,
    consent_requested,
    consent_withdrawn,
    customer_input,
)
from sandbox.shopify.customers import READ_ONLY_CONSENT_STATES

ENDPOINT = "https://walk.myshopify.com/admin/api/2026-10/graphql.json"
GID = "gid://shopify/Customer/1"
ADDRESS_GID = "gid://shopify/MailingAddress/2?model_name=CustomerAddress"
# What a schema description says of a value a client may not send.
REFUSED_WORDS = ("cannot be set", "read-only", "read only", "internally-set", "internally set")
NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


def refused_as_input(description: str | None) -> bool:
    """Whether an enum value's description says a client cannot set it."""
    text = (description or "").lower()
    return any(words in text for words in REFUSED_WORDS)


def enum_values(value: Any, kind: GraphQLInputType, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, enum type, value) of every enum value inside `value`, typed as `kind`."""
    if isinstance(kind, GraphQLNonNull):
        yield from enum_values(value, kind.of_type, path)
    elif value is None:
        return
    elif isinstance(kind, GraphQLList):
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            yield from enum_values(item, kind.of_type, f"{path}[{index}]")
    elif isinstance(kind, GraphQLInputObjectType):
        for name, item in value.items():
            yield from enum_values(item, kind.fields[name].type, f"{path}.{name}")
    elif isinstance(kind, GraphQLEnumType):
        yield path, kind.name, value


def variable_types(schema: GraphQLSchema, document: str) -> dict[str, GraphQLInputType]:
    operation = next(
        node for node in parse(document).definitions if isinstance(node, OperationDefinitionNode)
    )
    types = {}
    for definition in operation.variable_definitions:
        kind = type_from_ast(schema, definition.type)
        assert kind is not None, f"{definition.variable.name.value}: a type Shopify does not have"
        types[definition.variable.name.value] = kind  # type: ignore[assignment]
    return types


def _node(**overrides: Any) -> dict[str, Any]:
    return {
        "id": GID,
        "defaultEmailAddress": {"emailAddress": "a@example.com", "marketingState": "PENDING"},
        "firstName": "Hanako",
        "lastName": "Yamada",
        "defaultPhoneNumber": None,
        "defaultAddress": {"id": ADDRESS_GID},
        "updatedAt": "2026-11-29T01:00:00Z",
        **overrides,
    }


# The answer each operation gets, enough for the client to carry on.
ANSWERS: dict[str, dict[str, Any]] = {
    "CreateCustomer": {"customerCreate": {"customer": _node(defaultAddress=None), "userErrors": []}},
    "UpdateCustomer": {"customerUpdate": {"customer": _node(), "userErrors": []}},
    "UpdateMarketingConsent": {
        "customerEmailMarketingConsentUpdate": {"customer": _node(), "userErrors": []}
    },
    "AddCustomerAddress": {"customerAddressCreate": {"address": {"id": ADDRESS_GID}, "userErrors": []}},
    "UpdateCustomerAddress": {"customerAddressUpdate": {"address": {"id": ADDRESS_GID}, "userErrors": []}},
    "SetMetafields": {"metafieldsSet": {"metafields": [], "userErrors": []}},
    # The member facts' definitions, created before the first member-number write (TAKEN: there already).
    "CreateMetafieldDefinition": {
        "metafieldDefinitionCreate": {
            "createdDefinition": None,
            "userErrors": [{"field": ["definition", "key"], "message": "Key is in use.", "code": "TAKEN"}],
        }
    },
    "FindCustomerByEmail": {"customerByIdentifier": _node()},
    "GetCustomer": {"customer": _node(defaultAddress=None)},
}


def sent_by_the_client() -> list[tuple[str, dict[str, Any]]]:
    """(document, variables) of every request the client makes, over every consent case."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        sent.append((body["query"], body["variables"]))
        return 200, {}, json.dumps({"data": ANSWERS[OPERATION_NAMES[body["query"]]]})

    shopify = ShopifyClient(
        HttpClient(system="shopify", base_url=ENDPOINT.split("/admin")[0]), api_version="2026-10"
    )
    profile = {
        "email": "a@example.com",
        "first_name": "Hanako",
        "last_name": "Yamada",
        "phone": "+819012345678",
    }
    with responses.RequestsMock() as api:
        api.add_callback(responses.POST, ENDPOINT, callback=answer)
        for accepts_marketing in (False, True):
            shopify.create_customer(
                **profile,
                locale="ja",
                accepts_marketing=accepts_marketing,
                postal_code="150-0001",
                address="渋谷",
            )
        shopify.add_address(GID, postal_code="150-0001", address="渋谷")
        shopify.update_customer(GID, last_name="Sato", phone=None, postal_code="530-0001")
        shopify.update_customer(GID, address="梅田")  # no own field: read, then the address
        shopify.find_customers_by_email("a@example.com")
        shopify.get_customer(GID)
        shopify.set_member_number(GID, "1234567890123456")
        for state in sorted(SETTABLE_MARKETING_STATES):
            for level in [None, *sorted(OPT_IN_LEVELS)]:
                for moment in (None, NOW):
                    shopify.update_marketing_consent(
                        GID, state, opt_in_level=level, consent_updated_at=moment
                    )
        for consent in (consent_requested(NOW), consent_confirmed(NOW), consent_withdrawn(NOW)):
            moment = datetime.fromisoformat(consent["consentUpdatedAt"])
            level = consent.get("marketingOptInLevel")
            shopify.update_marketing_consent(
                GID, consent["marketingState"], opt_in_level=level, consent_updated_at=moment
            )
    # The bulk export's documents are sent with fixed variables (no client method builds them yet).
    sent.append((documents.START_BULK_CUSTOMER_EXPORT, {"query": documents.BULK_CUSTOMERS_QUERY}))
    sent.append((documents.POLL_BULK_OPERATION, {"id": "gid://shopify/BulkOperation/1"}))
    return sent


@pytest.fixture(scope="module")
def sent() -> list[tuple[str, dict[str, Any]]]:
    return sent_by_the_client()


def test_every_document_with_variables_is_walked(sent: list[tuple[str, dict[str, Any]]]) -> None:
    walked = {OPERATION_NAMES[document] for document, _ in sent}
    with_variables = {
        name
        for name, document in documents.ALL_DOCUMENTS.items()
        if next(
            node for node in parse(document).definitions if isinstance(node, OperationDefinitionNode)
        ).variable_definitions
    }
    assert with_variables <= walked


def test_every_value_we_send_is_valid_input_for_shopifys_schema(
    sent: list[tuple[str, dict[str, Any]]], real_schema: GraphQLSchema
) -> None:
    problems = []
    for document, variables in sent:
        for name, kind in variable_types(real_schema, document).items():
            coerce_input_value(
                variables.get(name),
                kind,
                lambda path, value, error, name=name: problems.append(f"${name}{path}: {error.message}"),  # type: ignore[misc]
            )
    assert problems == []


def test_no_enum_value_we_send_is_one_shopify_refuses_as_input(
    sent: list[tuple[str, dict[str, Any]]], real_schema: GraphQLSchema
) -> None:
    seen: set[tuple[str, str]] = set()
    refused = []
    for document, variables in sent:
        for name, kind in variable_types(real_schema, document).items():
            for path, enum_name, value in enum_values(variables.get(name), kind, f"${name}"):
                seen.add((enum_name, value))
                enum = real_schema.get_type(enum_name)
                assert isinstance(enum, GraphQLEnumType)
                if refused_as_input(enum.values[value].description):
                    refused.append(f"{OPERATION_NAMES[document]} {path} = {value}")
    assert refused == []
    # Not vacuous: every consent state and opt-in level we use went through the check.
    states = {value for enum_name, value in seen if enum_name == "CustomerEmailMarketingState"}
    levels = {value for enum_name, value in seen if enum_name == "CustomerMarketingOptInLevel"}
    assert states == SETTABLE_MARKETING_STATES
    assert levels == OPT_IN_LEVELS
    assert ("CountryCode", "JP") in seen


def test_the_walk_finds_a_refused_value(real_schema: GraphQLSchema) -> None:
    """The check would catch the value that broke the create: NOT_SUBSCRIBED at customerCreate."""
    kind = variable_types(real_schema, documents.CREATE_CUSTOMER)["input"]
    old_input = {"email": "a@example.com", "emailMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"}}
    [(path, enum_name, value)] = list(enum_values(old_input, kind, "$input"))
    enum = real_schema.get_type(enum_name)
    assert isinstance(enum, GraphQLEnumType)
    assert path == "$input.emailMarketingConsent.marketingState"
    assert refused_as_input(enum.values[value].description)


def test_our_lists_of_settable_and_refused_states_are_shopifys(real_schema: GraphQLSchema) -> None:
    enum = real_schema.get_type("CustomerEmailMarketingState")
    assert isinstance(enum, GraphQLEnumType)
    refused = {name for name, value in enum.values.items() if refused_as_input(value.description)}
    assert refused == READ_ONLY_MARKETING_STATES == set(READ_ONLY_CONSENT_STATES)
    assert set(enum.values) - refused == SETTABLE_MARKETING_STATES
    consent_input = real_schema.get_type("CustomerEmailMarketingConsentInput")
    assert isinstance(consent_input, GraphQLInputObjectType)
    description = consent_input.fields["marketingState"].description or ""
    assert all(state in description for state in READ_ONLY_MARKETING_STATES | SETTABLE_MARKETING_STATES)


@given(
    accepts_marketing=st.booleans(),
    phone=st.none() | st.just("+819012345678"),
    locale=st.none() | st.sampled_from(["ja", "en"]),
)
def test_a_create_never_subscribes_and_never_sends_a_refused_state(
    accepts_marketing: bool, phone: str | None, locale: str | None
) -> None:
    fields: dict[str, Any] = {"email": "a@example.com", "first_name": "A", "last_name": "B"}
    fields |= {"accepts_marketing": accepts_marketing, "phone": phone, "locale": locale}
    sent = customer_input({name: value for name, value in fields.items() if value is not None}, now=NOW)  # type: ignore[arg-type]
    consent = sent.get("emailMarketingConsent")
    if not accepts_marketing:
        assert consent is None  # no consent at all, not NOT_SUBSCRIBED
    else:
        assert consent == {
            "marketingState": "PENDING",
            "marketingOptInLevel": "CONFIRMED_OPT_IN",
            "consentUpdatedAt": "2026-11-29T01:00:00Z",
        }
