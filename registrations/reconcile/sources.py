"""How reconciliation reads each system: streams of compact records, page by page.

    Shopify   `ShopifyClient.export_customers()`: the bulk export (ordinary pagination stops at 25,000)
    Smaregi   a full load of the member directory (registrations/directory.py), which pages through
              every member; each page is also spilled here, so members are read once for both
    HubSpot   the contacts list, page by page, with our profile and member-fact properties
    identities  our own table, by id range

Each reader counts the requests it makes (the report's api_calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

from sqlalchemy import select

from connectors.http import json_body
from connectors.hubspot.client import HubSpotContact
from connectors.interfaces import SmaregiApi
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
HUBSPOT_PAGE = 100
IDENTITY_PAGE = 1000


def shopify_records(shopify: Any, report: Report) -> Iterator[Record]:
    """Every Shopify customer with an address, as records, from the bulk export.

    The export is one bulk operation (start, polls, one download: ordinary pagination stops at
    25,000 objects); a failed or busy export raises, and the run fails rather than reconcile against
    part of the shop.
    """
    report.api_calls["shopify"] += 3  # start, poll, download (at least)
    for customer in shopify.export_customers():
        report.read["shopify"] += 1
        record = shopify_record(customer)
        if record is not None:
            yield record


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
