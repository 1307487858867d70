"""How reconciliation reads each system: streams of compact records, page by page.

    Shopify   `ShopifyClient.export_customers()` (the bulk export) when the client has it; until then
              `customers(first:, after:)` pages (ordinary pagination stops at 25,000 objects)
    Smaregi   a full load of the member directory (registrations/directory.py), which pages through
              every member; each page is also spilled here, so members are read once for both
    HubSpot   the contacts list, page by page, with our profile and member-fact properties
    identities  our own table, by id range

Each reader counts the requests it makes (the report's api_calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select

from connectors.http import json_body
from connectors.hubspot.client import HubSpotContact
from connectors.interfaces import SmaregiApi
from connectors.shopify import documents
from connectors.shopify.mapping import customer_from_node
from connectors.smaregi import SmaregiMember
from registrations.database import Database
from registrations.directory import MemberDirectory
from registrations.models import Identity
from registrations.reconcile.patience import Patience
from registrations.reconcile.records import (
    HUBSPOT_PROPERTIES,
    IdentityRecord,
    Record,
    hubspot_record,
    shopify_record,
    smaregi_record,
)
from registrations.reconcile.report import Report

LEGACY_CONTACTS = "/crm/v3/objects/contacts"
SHOPIFY_PAGE = 100
HUBSPOT_PAGE = 100
IDENTITY_PAGE = 1000
# customers(first: 100): a connection (2) plus 100 customers of about 6 objects each.
SHOPIFY_PAGE_COST = 2.0 + SHOPIFY_PAGE * 6.0

# One page of customers with the address and the member number (the fallback before the bulk export).
CUSTOMER_PAGE = (
    """
query ReconcileCustomers($first: Int!, $after: String, $metafieldNamespace: String!, $metafieldKey: String!) {
  customers(first: $first, after: $after, sortKey: ID) {
    pageInfo {
      hasNextPage
      endCursor
    }
    nodes {
      ...MemberCustomer
      defaultAddress {
        address1
        zip
      }
      memberNumber: metafield(namespace: $metafieldNamespace, key: $metafieldKey) {
        value
      }
    }
  }
}
"""
    + documents.CUSTOMER_FIELDS
)


@dataclass(frozen=True)
class PagedCustomer:
    """A customer of the fallback pages: ShopifyCustomer's fields plus its default address."""

    id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    member_number: str | None
    postal_code: str | None
    address: str | None


def shopify_records(shopify: Any, report: Report, patience: Patience) -> Iterator[Record]:
    """Every Shopify customer with an address, as records."""
    exporting = hasattr(shopify, "export_customers")
    customers = shopify.export_customers() if exporting else _pages(shopify, report, patience)
    for customer in customers:
        report.read["shopify"] += 1
        record = shopify_record(customer)
        if record is not None:
            yield record
    if exporting:
        report.api_calls["shopify"] += 3  # start, poll, download (at least)


def _pages(shopify: Any, report: Report, patience: Patience) -> Iterator[PagedCustomer]:
    after: str | None = None
    while True:
        variables = {
            "first": SHOPIFY_PAGE,
            "after": after,
            "metafieldNamespace": documents.MEMBER_NUMBER_NAMESPACE,
            "metafieldKey": documents.MEMBER_NUMBER_KEY,
        }
        # The client's one seam for a document it has no method for yet (the bulk export replaces it).
        data = patience.call(
            lambda: shopify._execute(CUSTOMER_PAGE, variables, cost_estimate=SHOPIFY_PAGE_COST)  # noqa: B023
        )
        report.api_calls["shopify"] += 1
        connection = data.get("customers") or {}
        for node in connection.get("nodes") or []:
            customer = customer_from_node(node)
            address = node.get("defaultAddress") or {}
            yield PagedCustomer(
                id=customer.id,
                email=customer.email,
                first_name=customer.first_name,
                last_name=customer.last_name,
                phone=customer.phone,
                member_number=customer.member_number,
                postal_code=address.get("zip"),
                address=address.get("address1"),
            )
        info = connection.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            return
        after = str(info["endCursor"])


class _Tee:
    """The Smaregi client as the directory's full load sees it: every page read is also handed on."""

    def __init__(
        self, smaregi: SmaregiApi, sink: Callable[[list[SmaregiMember]], None], report: Report
    ) -> None:
        self._smaregi = smaregi
        self._sink = sink
        self._report = report

    def list_members(self, **kwargs: Any) -> list[SmaregiMember]:
        members = self._smaregi.list_members(**kwargs)
        self._report.api_calls["smaregi"] += 1
        self._report.read["smaregi"] += len(members)
        self._sink(members)
        return members

    def get_member(self, customer_id: str) -> SmaregiMember | None:
        self._report.api_calls["smaregi"] += 1
        return self._smaregi.get_member(customer_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._smaregi, name)


def load_smaregi(
    database: Database, smaregi: SmaregiApi, sink: Callable[[Iterator[Record]], Any], report: Report
) -> None:
    """A full load of the member directory; every member with an address is spilled on the way."""

    def spill(members: list[SmaregiMember]) -> None:
        sink(record for record in map(smaregi_record, members) if record is not None)

    tee = cast(SmaregiApi, _Tee(smaregi, spill, report))
    MemberDirectory(database).full_load(tee, reason="reconciliation")


def hubspot_records(
    hubspot: Any, report: Report, patience: Patience, *, with_facts: bool
) -> Iterator[Record]:
    """Every HubSpot contact with an address, as records.

    The list endpoint (search stops at 10,000 results), paged here rather than by
    `HubSpotClient.iter_contacts` so that a throttled page is waited for and asked again instead of
    ending the stream.
    """
    # The configured API version's contacts path (the legacy v3 path for a client without versions).
    paths = getattr(hubspot, "paths", None)
    path = paths.objects if paths is not None else LEGACY_CONTACTS
    params = {"limit": str(HUBSPOT_PAGE), "properties": ",".join(HUBSPOT_PROPERTIES), "archived": "false"}
    after: str | None = None
    while True:
        query = {**params, "after": after} if after is not None else params
        answer = patience.call(
            lambda: json_body(hubspot.http.request("GET", path, params=query), "hubspot list")  # noqa: B023
        )
        report.api_calls["hubspot"] += 1
        for item in answer.get("results") or []:
            report.read["hubspot"] += 1
            record = hubspot_record(HubSpotContact.from_api(item), with_facts=with_facts)
            if record is not None:
                yield record
        following = ((answer.get("paging") or {}).get("next") or {}).get("after")
        if not following:
            return
        after = str(following)


def identity_records(database: Database) -> Iterator[IdentityRecord]:
    """Every `identities` row (ids only), by id range."""
    after = 0
    while True:
        with database.session() as session:
            rows = list(
                session.execute(
                    select(
                        Identity.id,
                        Identity.email,
                        Identity.shopify_customer_id,
                        Identity.smaregi_customer_id,
                        Identity.smaregi_customer_code,
                        Identity.hubspot_contact_id,
                    )
                    .where(Identity.id > after)
                    .order_by(Identity.id)
                    .limit(IDENTITY_PAGE)
                )
            )
        if not rows:
            return
        for row in rows:
            yield IdentityRecord(row[1], row[2], row[3], row[4], row[5])
        after = rows[-1][0]
