"""Resolvers of the sandbox schema: everything a default dict lookup cannot answer.

State comes from `info.context` (a RequestContext), never from module globals, so one schema object
serves every emulator instance in the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema

from sandbox.shopify import metafields as mf
from sandbox.shopify.customers import CustomerStore, customer_gid, display_name, now_iso
from sandbox.shopify.pagination import (
    MAX_PAGE_SIZE,
    SortKey,
    build_connection,
    check_page_size,
    decode_cursor,
    slice_connection,
)
from sandbox.shopify.schema import build_admin_schema
from sandbox.shopify.search import SearchQuery, parse_search

if TYPE_CHECKING:
    from sandbox.shopify.bulk import BulkOperations

Record = dict[str, Any]

# Sort keys Shopify accepts that the sandbox orders by id: RELEVANCE without a ranking model, and
# LOCATION because members carry no geolocation here.
_ID_ORDERED = {"ID", "CREATED_AT", "RELEVANCE", "LOCATION"}


@dataclass
class RequestContext:
    """What one GraphQL execution may read and write."""

    customers: CustomerStore
    bulk_operations: BulkOperations | None = None
    base_url: str = ""
    # Bulk operations read whole connections: no first/last and no 250-item cap.
    unlimited_pages: bool = False
    search_reports: list[dict[str, Any]] = field(default_factory=list)


def _context(info: GraphQLResolveInfo) -> RequestContext:
    context = info.context
    assert isinstance(context, RequestContext)
    return context


def _check_pages(info: GraphQLResolveInfo, first: int | None, last: int | None) -> None:
    if not _context(info).unlimited_pages:
        check_page_size(first, last)


def resolve_customer(_root: None, info: GraphQLResolveInfo, id: str) -> Record | None:
    """QueryRoot.customer(id:)."""
    return _context(info).customers.get(id)


def resolve_customer_by_identifier(
    _root: None, info: GraphQLResolveInfo, identifier: dict[str, Any]
) -> Record | None:
    """QueryRoot.customerByIdentifier: one customer by exact email (any case), phone or id, else null."""
    # CustomerIdentifierInput is @oneOf: graphql-core has already refused anything but one key.
    ((name, value),) = identifier.items()
    customers = _context(info).customers
    if name == "emailAddress":
        return customers.find_by_email(value)
    if name == "phoneNumber":
        return customers.find_by_phone(value)
    return customers.get(value)


def resolve_customers(
    _root: None,
    info: GraphQLResolveInfo,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
    sortKey: str = "ID",
    query: str | None = None,
) -> Record:
    """QueryRoot.customers: search, sort and paginate."""
    _check_pages(info, first, last)
    context = _context(info)
    search = parse_search(query)
    if search.warnings:
        context.search_reports.append(
            {"path": list(info.path.as_list()), "query": query, "warnings": search.warnings}
        )
    store = context.customers
    email = search.exact_email()
    if email is not None:
        found = store.find_by_email(email)
        candidates = [found] if found is not None and search.matches(found) else []
    elif sortKey in _ID_ORDERED and not reverse and last is None and before is None and first is not None:
        return _forward_by_id(store, search, first, after)
    else:
        candidates = [customer for customer in store.all() if search.matches(customer)]
    key_of = _sort_key(sortKey)
    ordered = sorted(candidates, key=key_of, reverse=reverse)
    return slice_connection(
        ordered, key_of, first=first, after=after, last=last, before=before, descending=reverse
    )


def _forward_by_id(store: CustomerStore, search: SearchQuery, first: int, after: str | None) -> Record:
    """The common case (first/after in id order) without copying 100,000 records per page.

    Ids are sequential and customers are never deleted, so the customer after id N sits at position N.
    hasPreviousPage is simply "a cursor was given", which Relay allows when counting is costly.
    """
    offset = decode_cursor(after)[1] if after is not None else 0
    page: list[Record] = []
    has_next = False
    for customer in store.iter_from(offset, chunk=min(max(first + 1, 50), MAX_PAGE_SIZE + 1)):
        if not search.matches(customer):
            continue
        if len(page) == first:
            has_next = True
            break
        page.append(customer)
    return build_connection(page, _sort_key("ID"), has_next=has_next, has_previous=after is not None)


def _sort_key(sort_key: str) -> Any:
    def by(value_of: Any) -> Any:
        def key(customer: Record) -> SortKey:
            return value_of(customer), int(customer["legacyResourceId"])

        return key

    if sort_key == "UPDATED_AT":
        return by(lambda customer: customer["updatedAt"])
    if sort_key == "NAME":
        return by(lambda customer: display_name(customer).lower())
    return by(lambda customer: int(customer["legacyResourceId"]))


def resolve_customer_id(customer: Record, _info: GraphQLResolveInfo) -> str:
    """Customer.id: the global id."""
    return customer_gid(customer["legacyResourceId"])


def resolve_default_email_address(customer: Record, _info: GraphQLResolveInfo) -> Record | None:
    """Customer.defaultEmailAddress: the email with its marketing consent; null without an email."""
    if not customer.get("email"):
        return None
    consent = customer.get("emailMarketingConsent") or {}
    state = consent.get("marketingState") or "NOT_SUBSCRIBED"
    return {
        "emailAddress": customer["email"],
        # CustomerEmailAddressMarketingState has no REDACTED (the older consent enum does).
        "marketingState": state if state != "REDACTED" else "UNSUBSCRIBED",
        "marketingOptInLevel": consent.get("marketingOptInLevel"),
        "marketingUpdatedAt": consent.get("consentUpdatedAt"),
        "validFormat": True,  # the store refuses malformed addresses
    }


def resolve_default_phone_number(customer: Record, _info: GraphQLResolveInfo) -> Record | None:
    """Customer.defaultPhoneNumber: null without a phone."""
    return {"phoneNumber": customer["phone"]} if customer.get("phone") else None


def resolve_display_name(customer: Record, _info: GraphQLResolveInfo) -> str:
    """Customer.displayName."""
    return display_name(customer)


def resolve_default_address(customer: Record, _info: GraphQLResolveInfo) -> Record | None:
    """Customer.defaultAddress: the first address given."""
    return customer["addresses"][0] if customer["addresses"] else None


def resolve_addresses(customer: Record, _info: GraphQLResolveInfo, first: int | None = None) -> list[Record]:
    """Customer.addresses(first:)."""
    addresses: list[Record] = customer["addresses"]
    return addresses if first is None else addresses[:first]


def resolve_metafield(
    customer: Record, _info: GraphQLResolveInfo, key: str, namespace: str | None = None
) -> Record | None:
    """Customer.metafield(namespace:, key:); no namespace means the app's own."""
    return mf.find_metafield(customer["metafields"], mf.stored_namespace(namespace), key)


def resolve_metafields(
    customer: Record,
    info: GraphQLResolveInfo,
    namespace: str | None = None,
    keys: list[str] | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> Record:
    """Customer.metafields: filtered by namespace or by "namespace.key" keys, in id order."""
    _check_pages(info, first, last)
    wanted_namespace = None if namespace is None else mf.stored_namespace(namespace)
    wanted_keys = None if keys is None else {mf.stored_key(key) for key in keys}
    chosen = [
        metafield
        for metafield in customer["metafields"]
        if (wanted_namespace is None or metafield["namespace"] == wanted_namespace)
        and (wanted_keys is None or f"{metafield['namespace']}.{metafield['key']}" in wanted_keys)
    ]

    def key_of(metafield: Record) -> SortKey:
        return int(metafield["legacyResourceId"]), int(metafield["legacyResourceId"])

    ordered = sorted(chosen, key=key_of, reverse=reverse)
    return slice_connection(
        ordered, key_of, first=first, after=after, last=last, before=before, descending=reverse
    )


def resolve_compare_digest(metafield: Record, _info: GraphQLResolveInfo) -> str:
    """Metafield.compareDigest."""
    return mf.compare_digest(metafield)


def resolve_json_value(metafield: Record, _info: GraphQLResolveInfo) -> Any:
    """Metafield.jsonValue."""
    return mf.json_value(metafield)


def resolve_metafield_definition_create(_root: None, info: GraphQLResolveInfo, definition: Record) -> Record:
    """Mutation.metafieldDefinitionCreate (the sandbox stores CUSTOMER definitions only)."""
    created, errors = _context(info).customers.definitions.create(definition, now_iso())
    return {"createdDefinition": created, "userErrors": errors}


def resolve_metafield_definition_type(definition: Record, _info: GraphQLResolveInfo) -> Record:
    """MetafieldDefinition.type: a MetafieldDefinitionType named by the stored type."""
    return {"name": definition["type"]}


def resolve_customer_create(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Mutation.customerCreate."""
    outcome = _context(info).customers.create(input)
    return {"customer": outcome.customer, "userErrors": outcome.user_errors}


def resolve_customer_update(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Mutation.customerUpdate."""
    outcome = _context(info).customers.update(input)
    return {"customer": outcome.customer, "userErrors": outcome.user_errors}


def resolve_customer_delete(_root: None, info: GraphQLResolveInfo, input: Record) -> Record:
    """Mutation.customerDelete."""
    deleted, errors = _context(info).customers.delete(input["id"])
    return {"deletedCustomerId": deleted, "shop": resolve_shop(None, info), "userErrors": errors}


def resolve_customer_email_marketing_consent_update(
    _root: None, info: GraphQLResolveInfo, input: Record
) -> Record:
    """Mutation.customerEmailMarketingConsentUpdate."""
    outcome = _context(info).customers.update_consent(input)
    return {"customer": outcome.customer, "userErrors": outcome.user_errors}


def resolve_customer_address_create(
    _root: None,
    info: GraphQLResolveInfo,
    customerId: str,
    address: Record,
    setAsDefault: bool | None = None,
) -> Record:
    """Mutation.customerAddressCreate."""
    created, errors = _context(info).customers.add_address(customerId, address, default=bool(setAsDefault))
    return {"address": created, "userErrors": errors}


def resolve_customer_address_update(
    _root: None,
    info: GraphQLResolveInfo,
    customerId: str,
    addressId: str,
    address: Record,
    setAsDefault: bool | None = None,
) -> Record:
    """Mutation.customerAddressUpdate."""
    updated, errors = _context(info).customers.update_address(
        customerId, addressId, address, default=bool(setAsDefault)
    )
    return {"address": updated, "userErrors": errors}


def resolve_metafields_set(_root: None, info: GraphQLResolveInfo, metafields: list[Record]) -> Record:
    """Mutation.metafieldsSet."""
    written, errors = _context(info).customers.set_metafields(metafields)
    return {"metafields": written if not errors else None, "userErrors": errors}


def resolve_bulk_operation_run_query(
    _root: None, info: GraphQLResolveInfo, query: str, groupObjects: bool = False
) -> Record:
    """Mutation.bulkOperationRunQuery; children come right after their parent only with groupObjects."""
    context = _context(info)
    if context.bulk_operations is None:
        raise GraphQLError("Bulk operations are not available inside a bulk operation")
    operation, errors = context.bulk_operations.start(
        query, base_url=context.base_url, group_objects=groupObjects
    )
    return {"bulkOperation": operation, "userErrors": errors}


def resolve_bulk_operation(_root: None, info: GraphQLResolveInfo, id: str) -> Record | None:
    """QueryRoot.bulkOperation(id:)."""
    bulk_operations = _context(info).bulk_operations
    return None if bulk_operations is None else bulk_operations.get(id)


def resolve_current_bulk_operation(
    _root: None, info: GraphQLResolveInfo, type: str = "QUERY"
) -> Record | None:
    """QueryRoot.currentBulkOperation(type:)."""
    bulk_operations = _context(info).bulk_operations
    return None if bulk_operations is None else bulk_operations.current(type)


# The sandbox's one shop (sandbox.myshopify.com).
SHOP_NAME = "Membersync Sandbox"


def resolve_shop(_root: None, _info: GraphQLResolveInfo) -> Record:
    """QueryRoot.shop: the shop's name."""
    return {"name": SHOP_NAME}


_RESOLVERS = {
    ("QueryRoot", "customer"): resolve_customer,
    ("QueryRoot", "customers"): resolve_customers,
    ("QueryRoot", "customerByIdentifier"): resolve_customer_by_identifier,
    ("QueryRoot", "bulkOperation"): resolve_bulk_operation,
    ("QueryRoot", "currentBulkOperation"): resolve_current_bulk_operation,
    ("QueryRoot", "shop"): resolve_shop,
    ("Mutation", "customerCreate"): resolve_customer_create,
    ("Mutation", "customerUpdate"): resolve_customer_update,
    ("Mutation", "customerDelete"): resolve_customer_delete,
    ("Mutation", "customerEmailMarketingConsentUpdate"): resolve_customer_email_marketing_consent_update,
    ("Mutation", "customerAddressCreate"): resolve_customer_address_create,
    ("Mutation", "customerAddressUpdate"): resolve_customer_address_update,
    ("Mutation", "metafieldsSet"): resolve_metafields_set,
    ("Mutation", "metafieldDefinitionCreate"): resolve_metafield_definition_create,
    ("MetafieldDefinition", "type"): resolve_metafield_definition_type,
    ("Mutation", "bulkOperationRunQuery"): resolve_bulk_operation_run_query,
    ("Customer", "id"): resolve_customer_id,
    ("Customer", "defaultEmailAddress"): resolve_default_email_address,
    ("Customer", "defaultPhoneNumber"): resolve_default_phone_number,
    ("Customer", "displayName"): resolve_display_name,
    ("Customer", "defaultAddress"): resolve_default_address,
    ("Customer", "addresses"): resolve_addresses,
    ("Customer", "metafield"): resolve_metafield,
    ("Customer", "metafields"): resolve_metafields,
    ("Metafield", "compareDigest"): resolve_compare_digest,
    ("Metafield", "jsonValue"): resolve_json_value,
}


def build_executable_schema() -> GraphQLSchema:
    """The sandbox schema with every resolver attached."""
    schema = build_admin_schema()
    for (type_name, field_name), resolver in _RESOLVERS.items():
        owner = schema.get_type(type_name)
        assert isinstance(owner, GraphQLObjectType)
        owner.fields[field_name].resolve = resolver
    return schema
