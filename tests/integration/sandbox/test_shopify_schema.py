"""The sandbox's Shopify schema is a faithful subset of Shopify's own 2026-10 Admin schema."""

from __future__ import annotations

import json

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    print_ast,
)

from sandbox.shopify.schema import build_admin_schema


def _default_of(argument: GraphQLArgument) -> str | None:
    """The default value as GraphQL source text, across graphql-core 3.2 (default_value) and 3.3."""
    default = getattr(argument, "default", None)
    if default is not None and getattr(default, "literal", None) is not None:
        return print_ast(default.literal)
    value = getattr(default, "value", None) if default is not None else argument.default_value
    return None if value is None or repr(value) == "Undefined" else json.dumps(value)


def _named_types(schema: GraphQLSchema) -> dict[str, GraphQLNamedType]:
    return {name: kind for name, kind in schema.type_map.items() if not name.startswith("__")}


def _incompatibilities(sandbox: GraphQLSchema, real: GraphQLSchema) -> list[str]:
    """Every place where the sandbox schema says something Shopify's schema does not."""
    problems: list[str] = []
    real_types = _named_types(real)
    for name, ours in _named_types(sandbox).items():
        theirs = real_types.get(name)
        if theirs is None:
            problems.append(f"type {name} does not exist")
            continue
        if type(ours) is not type(theirs):
            problems.append(f"type {name} is a {type(ours).__name__}, Shopify's a {type(theirs).__name__}")
            continue
        if isinstance(ours, GraphQLEnumType) and isinstance(theirs, GraphQLEnumType):
            problems += [
                f"enum value {name}.{value} does not exist" for value in set(ours.values) - set(theirs.values)
            ]
        if isinstance(ours, GraphQLObjectType | GraphQLInterfaceType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType)
            their_interfaces = {interface.name for interface in theirs.interfaces}
            problems += [
                f"{name} does not implement {interface.name}"
                for interface in ours.interfaces
                if interface.name not in their_interfaces
            ]
            for field_name, field in ours.fields.items():
                their_field = theirs.fields.get(field_name)
                if their_field is None:
                    problems.append(f"field {name}.{field_name} does not exist")
                    continue
                where = f"{name}.{field_name}"
                if str(field.type) != str(their_field.type):
                    problems.append(f"field {where} is {field.type}, Shopify's {their_field.type}")
                problems += _argument_incompatibilities(where, field.args, their_field.args)
        if isinstance(ours, GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLInputObjectType)
            for field_name, input_field in ours.fields.items():
                their_input_field = theirs.fields.get(field_name)
                if their_input_field is None:
                    problems.append(f"input field {name}.{field_name} does not exist")
                elif str(input_field.type) != str(their_input_field.type):
                    where = f"input field {name}.{field_name}"
                    problems.append(f"{where} is {input_field.type}, Shopify's {their_input_field.type}")
            # A required input field we left out would let the sandbox accept what Shopify rejects.
            problems += [
                f"required input field {name}.{field_name} is missing"
                for field_name, their_input_field in theirs.fields.items()
                if field_name not in ours.fields and str(their_input_field.type).endswith("!")
            ]
    return problems


def _argument_incompatibilities(
    where: str, ours: dict[str, GraphQLArgument], theirs: dict[str, GraphQLArgument]
) -> list[str]:
    problems = []
    for name, argument in ours.items():
        their_argument = theirs.get(name)
        if their_argument is None:
            problems.append(f"argument {where}({name}:) does not exist")
            continue
        if str(argument.type) != str(their_argument.type):
            problems.append(f"argument {where}({name}:) is {argument.type}, Shopify's {their_argument.type}")
        if _default_of(argument) != _default_of(their_argument):
            problems.append(
                f"argument {where}({name}:) defaults to {_default_of(argument)}, "
                f"Shopify's to {_default_of(their_argument)}"
            )
    problems += [
        f"required argument {where}({name}:) is missing"
        for name, their_argument in theirs.items()
        if name not in ours and str(their_argument.type).endswith("!")
    ]
    return problems


def test_sandbox_schema_is_a_subset_of_shopifys(real_schema: GraphQLSchema) -> None:
    assert _incompatibilities(build_admin_schema(), real_schema) == []


def test_root_types_have_shopifys_names(real_schema: GraphQLSchema) -> None:
    sandbox = build_admin_schema()
    assert sandbox.query_type is not None and real_schema.query_type is not None
    assert sandbox.mutation_type is not None and real_schema.mutation_type is not None
    assert sandbox.query_type.name == real_schema.query_type.name
    assert sandbox.mutation_type.name == real_schema.mutation_type.name


def test_the_check_catches_a_wrong_type(real_schema: GraphQLSchema) -> None:
    """The comparison is not vacuous: a wrongly wrapped field, a made-up enum value and argument show up."""
    from graphql import build_schema

    wrong = build_schema(
        """
        schema { query: QueryRoot }
        type QueryRoot { customer(id: ID, extra: Int): Customer }
        type Customer { id: ID!  tags: [String]  inventedField: String  state: CustomerState }
        enum CustomerState { ENABLED  HAPPY }
        """
    )
    problems = _incompatibilities(wrong, real_schema)
    assert "argument QueryRoot.customer(id:) is ID, Shopify's ID!" in problems
    assert "argument QueryRoot.customer(extra:) does not exist" in problems
    assert "field Customer.tags is [String], Shopify's [String!]!" in problems
    assert "field Customer.inventedField does not exist" in problems
    assert "field Customer.state is CustomerState, Shopify's CustomerState!" in problems
    assert "enum value CustomerState.HAPPY does not exist" in problems


def test_the_sandbox_deprecates_what_shopify_deprecates(real_schema: GraphQLSchema) -> None:
    """A client built against the sandbox sees the same deprecations (email, phone, addresses, ...)."""
    real_types = _named_types(real_schema)
    missing = []
    for name, ours in _named_types(build_admin_schema()).items():
        theirs = real_types[name]
        if isinstance(ours, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType)
            missing += [
                f"{name}.{field_name}"
                for field_name, field in ours.fields.items()
                if theirs.fields[field_name].deprecation_reason and not field.deprecation_reason
            ]
    assert missing == []
    customer = build_admin_schema().get_type("Customer")
    assert isinstance(customer, GraphQLObjectType)
    assert {"email", "phone", "addresses"} <= {
        name for name, field in customer.fields.items() if field.deprecation_reason
    }
