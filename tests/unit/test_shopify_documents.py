"""The connector's GraphQL documents are valid for Shopify's real 2026-10 schema and for the sandbox's,
and select nothing Shopify deprecates in 2026-10."""

from __future__ import annotations

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.language import Visitor
from graphql.validation import NoDeprecatedCustomRule

from connectors.shopify import documents
from sandbox.shopify.cost import MAX_QUERY_COST, requested_cost
from sandbox.shopify.schema import build_admin_schema

# Variables the connector sends with the documents whose cost depends on them.
TYPICAL_VARIABLES = {"first": 5}


DOCUMENTS = sorted(documents.ALL_DOCUMENTS.items())


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_validates_against_shopifys_schema(
    name: str, document: str, real_schema: GraphQLSchema
) -> None:
    assert [error.message for error in validate(real_schema, parse(document))] == []


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_uses_nothing_deprecated_in_2026_10(
    name: str, document: str, real_schema: GraphQLSchema
) -> None:
    errors = validate(real_schema, parse(document), [NoDeprecatedCustomRule])
    assert [error.message for error in errors] == []


def test_the_deprecation_check_is_not_vacuous(real_schema: GraphQLSchema) -> None:
    """The 2025-01 reads (Customer.email, .phone, currentBulkOperation) are deprecated in 2026-10."""
    old_reads = "{ customer(id: 1) { email phone } currentBulkOperation { id } }"
    errors = validate(real_schema, parse(old_reads), [NoDeprecatedCustomRule])
    assert len(errors) == 3


def test_lookup_by_email_is_by_identifier_not_a_search() -> None:
    assert "customerByIdentifier(identifier: {emailAddress: $email})" in documents.FIND_CUSTOMER_BY_EMAIL
    assert all("customers(" not in document for document in documents.ALL_DOCUMENTS.values())


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_validates_against_the_sandbox_schema(name: str, document: str) -> None:
    assert [error.message for error in validate(build_admin_schema(), parse(document))] == []


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_has_one_operation_named_as_listed(name: str, document: str) -> None:
    operations = [node for node in parse(document).definitions if isinstance(node, OperationDefinitionNode)]
    assert len(operations) == 1
    if name != "BulkCustomersQuery":  # Shopify's bulk queries are anonymous
        assert operations[0].name is not None and operations[0].name.value == name


def _string_literals(document: str) -> list[str]:
    literals: list[str] = []

    class Collect(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: object) -> None:
            literals.append(node.value)

    visit(parse(document), Collect())
    return literals


@pytest.mark.parametrize(
    ("name", "document"),
    [(name, document) for name, document in DOCUMENTS if name != "BulkCustomersQuery"],
)
def test_documents_take_every_value_from_variables(name: str, document: str) -> None:
    assert _string_literals(document) == [], f"{name} has literal strings; values belong in variables"


def test_the_bulk_query_names_only_our_namespaces_and_keys() -> None:
    facts = documents.MEMBER_FACTS_NAMESPACE
    assert _string_literals(documents.BULK_CUSTOMERS_QUERY) == [
        facts,
        documents.MEMBER_FACT_KEYS["member_number"],
        facts,
        documents.MEMBER_FACT_KEYS["points"],
        facts,
        documents.MEMBER_FACT_KEYS["rank"],
        documents.REGISTRATION_NAMESPACE,
        documents.REGISTRATION_KEY,
    ]


def test_the_bulk_query_has_one_connection_so_no_child_lines(real_schema: GraphQLSchema) -> None:
    """Children of a nested connection come back as separate, ungrouped `__parentId` lines; the export
    reads single aliased metafields instead, so every line is one whole customer."""
    type_info = TypeInfo(real_schema)
    connections: list[str] = []

    class Connections(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            field_type = type_info.get_type()
            if field_type is not None and get_named_type(field_type).name.endswith("Connection"):
                connections.append(node.name.value)

    visit(parse(documents.BULK_CUSTOMERS_QUERY), TypeInfoVisitor(type_info, Connections()))
    assert connections == ["customers"]


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_document_stays_well_under_the_single_query_cost_limit(name: str, document: str) -> None:
    parsed = parse(document)
    operation = next(node for node in parsed.definitions if isinstance(node, OperationDefinitionNode))
    fragments = {
        node.name.value: node for node in parsed.definitions if isinstance(node, FragmentDefinitionNode)
    }
    cost = requested_cost(build_admin_schema(), operation, fragments, TYPICAL_VARIABLES)
    assert cost <= MAX_QUERY_COST // 10
