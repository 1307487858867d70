"""The sandbox of `membersync bench reconcile`: three emulators seeded with N people and known drift.

Run as a subprocess (`python -m benchmarks.reconcile_sandbox --customers N`) so that its memory (the
emulators hold 3 x N records) is not counted in the reconciling process's peak RSS. It starts the
Shopify, Smaregi and HubSpot emulators on free ports with rate limits far above what is measured,
writes the records straight into their stores (100,000 per system in seconds, not one request
each), prints one JSON line — `{"urls", "customers", "seed_seconds", "drifted", "drifted_by_kind"}` —
and then answers commands on stdin, one per line, until stdin closes:

    verify   one JSON line: {"remaining_drift", "remaining_by_kind"}: records still out of line with
             the ownership map (what a complete reconciliation leaves: 0)

Every person is in all three systems and in line, except one in every `period` people per kind
(1 % each by default), in a fixed pattern:

    hubspot_missing   no HubSpot contact                      1 write (HubSpot create)
    hubspot_name      HubSpot's last name edited by hand       1 write (HubSpot)
    shopify_name      the customer changed their last name     2 writes (Smaregi, HubSpot)
    points_moved      points earned at the register            2 writes (Shopify metafield, HubSpot)

`drifted` counts the records out of line (the writes a reconciliation should make).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.common import RecordStore, ThreadedServer
from sandbox.common.persistence import collected_stores

KINDS = ("hubspot_missing", "hubspot_name", "shopify_name", "points_moved")
# Records out of line per kind: the writes that bring them back.
DRIFTED_RECORDS = {"hubspot_missing": 1, "hubspot_name": 1, "shopify_name": 2, "points_moved": 2}
DEFAULT_PERIOD = 100  # one person in a hundred per kind: 1 % each
APP_NAMESPACE = "$app:membersync"
RANKS = ("bronze", "silver", "gold")
SEEDED_AT = "2026-11-01T00:00:00Z"
SMAREGI_SEEDED_AT = "2026-11-01T09:00:00+09:00"


@dataclass(frozen=True)
class Person:
    """One person as the owners hold them (Shopify's profile, Smaregi's facts) and their drift kind."""

    number: int
    kind: str | None

    @property
    def email(self) -> str:
        return f"member{self.number:06d}@example.jp"

    @property
    def first_name(self) -> str:
        return "Hanako"

    @property
    def last_name(self) -> str:
        """Shopify's (the owner's) last name; a `shopify_name` person changed theirs."""
        return f"Sato{self.number}" + ("-Ito" if self.kind == "shopify_name" else "")

    @property
    def old_last_name(self) -> str:
        return f"Sato{self.number}"

    @property
    def phone(self) -> str:
        return f"+8190{self.number:08d}"

    @property
    def postal_code(self) -> str:
        return f"{100 + self.number % 900:03d}-{self.number % 10_000:04d}"

    @property
    def address(self) -> str:
        return f"Chiyoda {self.number}-1"

    @property
    def member_number(self) -> str:
        return f"MS{self.number:08d}"

    @property
    def points(self) -> int:
        """Smaregi's (the owner's) balance; a `points_moved` person earned some at the register."""
        return self.number % 5000 + (120 if self.kind == "points_moved" else 0)

    @property
    def old_points(self) -> int:
        return self.number % 5000

    @property
    def rank(self) -> str:
        return RANKS[self.number % len(RANKS)]


def kind_of(number: int, period: int = DEFAULT_PERIOD) -> str | None:
    """The drift of person `number`: the first len(KINDS) of every `period` people, one kind each."""
    slot = number % period
    return KINDS[slot] if slot < len(KINDS) else None


def people(count: int, period: int = DEFAULT_PERIOD) -> Iterator[Person]:
    return (Person(number, kind_of(number, period)) for number in range(count))


def drift_counts(count: int, period: int = DEFAULT_PERIOD) -> Counter[str]:
    """People per drift kind, without building them."""
    return Counter({kind: sum(1 for _ in range(slot, count, period)) for slot, kind in enumerate(KINDS)})


def drifted_records(count: int, period: int = DEFAULT_PERIOD) -> int:
    """Records out of line: the writes a complete reconciliation makes."""
    return sum(DRIFTED_RECORDS[kind] * people for kind, people in drift_counts(count, period).items())


# --- the emulators and their stores -----------------------------------------------------------------


@dataclass
class Emulators:
    """The three running emulators and the stores the seeding writes into."""

    servers: dict[str, ThreadedServer]
    shopify: Any  # sandbox.shopify.customers.CustomerStore
    smaregi: RecordStore
    hubspot: RecordStore

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_emulators() -> Emulators:
    """Shopify, Smaregi and HubSpot on free ports, limits far above anything measured."""
    from sandbox import hubspot, smaregi
    from sandbox.shopify import create_app as create_shopify

    shopify_app = create_shopify(bucket_size=1_000_000, restore_rate=100_000)
    with collected_stores() as smaregi_stores:
        smaregi_app = smaregi.create_app(smaregi.SmaregiSettings(rate_per_second=100_000))
    with collected_stores() as hubspot_stores:
        hubspot_app = hubspot.create_app(
            hubspot.HubSpotSettings(requests_per_window=10_000_000, search_per_second=100_000)
        )
    servers = {
        name: ThreadedServer(app, "127.0.0.1", 0, name=name).start()
        for name, app in (("shopify", shopify_app), ("smaregi", smaregi_app), ("hubspot", hubspot_app))
    }
    return Emulators(
        servers=servers,
        shopify=shopify_app.extensions["sandbox.shopify"].customers,
        smaregi=_store(smaregi_stores, lambda store: store.id_field == "customerId"),
        hubspot=_store(hubspot_stores, lambda store: "email" in store.shape().split(":")[1].split(",")),
    )


def _store(stores: list[RecordStore], wanted: Callable[[RecordStore], bool]) -> RecordStore:
    found = [store for store in stores if wanted(store)]
    if len(found) != 1:
        raise RuntimeError(f"expected one matching store, found {len(found)}")
    return found[0]


# --- seeding ------------------------------------------------------------------------------------------


def seed(emulators: Emulators, count: int, period: int = DEFAULT_PERIOD) -> None:
    """Write every person into the three stores, with their drift."""
    for person in people(count, period):
        _seed_shopify(emulators.shopify, person)
        emulators.smaregi.insert(_smaregi_member(person))
        if person.kind != "hubspot_missing":
            contact = emulators.hubspot.insert(_hubspot_contact(person))
            emulators.hubspot.update(contact["id"], _hubspot_computed)


def _seed_shopify(customers: Any, person: Person) -> None:
    points = person.old_points if person.kind == "points_moved" else person.points
    facts = {"member_number": person.member_number, "points": str(points), "rank": person.rank}
    types = {"member_number": "single_line_text_field", "points": "number_integer"}
    created = customers.create(
        {
            "email": person.email,
            "firstName": person.first_name,
            "lastName": person.last_name,
            "phone": person.phone,
            "locale": "ja",
            "metafields": [
                {
                    "namespace": APP_NAMESPACE,
                    "key": key,
                    "type": types.get(key, "single_line_text_field"),
                    "value": value,
                }
                for key, value in facts.items()
            ],
        }
    )
    if created.user_errors:
        raise RuntimeError(f"seeding Shopify: {created.user_errors}")
    gid = f"gid://shopify/Customer/{created.customer['legacyResourceId']}"
    address = {"zip": person.postal_code, "address1": person.address, "countryCode": "JP"}
    _, errors = customers.add_address(gid, address, default=True)
    if errors:
        raise RuntimeError(f"seeding Shopify: {errors}")


def _smaregi_member(person: Person) -> dict[str, Any]:
    from sandbox.smaregi.members import MEMBER_FIELDS

    last_name = person.old_last_name if person.kind == "shopify_name" else person.last_name
    return {
        **dict.fromkeys(MEMBER_FIELDS),
        "customerCode": person.member_number,
        "lastName": last_name,
        "firstName": person.first_name,
        "mailAddress": person.email,
        "phoneNumber": person.phone,
        "postCode": person.postal_code,
        "address": person.address,
        "rank": person.rank,
        "point": str(person.points),
        "insDateTime": SMAREGI_SEEDED_AT,
        "updDateTime": SMAREGI_SEEDED_AT,
    }


def _hubspot_contact(person: Person) -> dict[str, Any]:
    last_name = {"hubspot_name": f"{person.last_name}x", "shopify_name": person.old_last_name}.get(
        person.kind or "", person.last_name
    )
    points = person.old_points if person.kind == "points_moved" else person.points
    return {
        "properties": {
            "email": person.email,
            "firstname": person.first_name,
            "lastname": last_name,
            "phone": person.phone,
            "zip": person.postal_code,
            "address": person.address,
            "membersync_member_number": person.member_number,
            "membersync_points": str(points),
            "membersync_rank": person.rank,
        },
        "createdAt": SEEDED_AT,
        "updatedAt": SEEDED_AT,
        "archived": False,
    }


def _hubspot_computed(contact: dict[str, Any]) -> dict[str, Any]:
    """HubSpot's computed properties, as the emulator sets them on every write."""
    computed = {
        "hs_object_id": contact["id"],
        "createdate": contact["createdAt"],
        "lastmodifieddate": contact["updatedAt"],
    }
    return {**contact, "properties": {**contact["properties"], **computed}}


# --- verification -----------------------------------------------------------------------------------


def remaining_drift(emulators: Emulators, count: int, period: int = DEFAULT_PERIOD) -> Counter[str]:
    """Records still out of line with the ownership map, by the kind of drift seeded there."""
    remaining: Counter[str] = Counter()
    hubspot_by_email = {
        (contact["properties"].get("email") or "").lower(): contact["properties"]
        for contact in emulators.hubspot.all()
    }
    for person in people(count, period):
        kind = person.kind or "none"
        customer = emulators.shopify.find_by_email(person.email) or {}
        points = next(
            (
                metafield.get("value")
                for metafield in customer.get("metafields", [])
                if metafield.get("key") == "points" and "membersync" in str(metafield.get("namespace"))
            ),
            None,
        )
        remaining[kind] += customer.get("lastName") != person.last_name or points != str(person.points)
        member = next(iter(emulators.smaregi.find_all("customer_code", person.member_number)), {})
        remaining[kind] += member.get("lastName") != person.last_name or member.get("point") != str(
            person.points
        )
        contact = hubspot_by_email.get(person.email) or {}
        remaining[kind] += contact.get("lastname") != person.last_name or contact.get(
            "membersync_points"
        ) != str(person.points)
    return +remaining


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--period", type=int, default=DEFAULT_PERIOD)
    options = parser.parse_args(argv)
    emulators = start_emulators()
    try:
        started = time.monotonic()
        seed(emulators, options.customers, options.period)
        ready = {
            "urls": emulators.urls,
            "customers": options.customers,
            "seed_seconds": round(time.monotonic() - started, 2),
            "drifted": drifted_records(options.customers, options.period),
            "drifted_by_kind": dict(drift_counts(options.customers, options.period)),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            if line.strip() == "verify":
                left = remaining_drift(emulators, options.customers, options.period)
                print(
                    json.dumps({"remaining_drift": sum(left.values()), "remaining_by_kind": dict(left)}),
                    flush=True,
                )
    finally:
        emulators.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
