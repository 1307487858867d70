"""Reconciliation against the sandbox over sockets: drift seeded in each system is repaired as the
ownership map says, a second run writes nothing, a dry run writes nothing and reports the same plan,
an interrupted run resumes without writing twice, and two runs at once make one skipped."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from config.email_address import canonical_email
from connectors.registry import Connectors
from connectors.smaregi.members import member_code
from registrations.database import Database
from registrations.models import Identity, ReconciliationRun
from registrations.reconcile.patience import Patience
from registrations.reconcile.plan import Write
from registrations.reconcile.run import Reconciliation, RunResult
from registrations.states import ReconciliationStatus

pytestmark = pytest.mark.integration

# The sandbox's counters of requests that change something (reads, tokens, bulk queries and the
# one-time property/metafield definitions are not writes of a person's data).
WRITES = {
    "shopify": {
        "graphql.customerCreate",
        "graphql.customerUpdate",
        "graphql.customerAddressCreate",
        "graphql.customerAddressUpdate",
        "graphql.metafieldsSet",
        "graphql.customerEmailMarketingConsentUpdate",
    },
    "smaregi": {"create_member", "update_member", "delete_member", "add_points"},
    "hubspot": {"create_contact", "update_contact", "upsert_contacts"},
}
HUBSPOT_FACTS = ["email", "firstname", "lastname", "membersync_member_number", "membersync_points"]


class World:
    """The test's settings, connectors, Redis and database, and the sandbox's write counters."""

    def __init__(self, make_settings: Callable[..., Any], database: Database, sandbox: Any, redis_url: str):
        self.settings = make_settings(REDIS_URL=redis_url, **sandbox.env)
        self.redis = redis.Redis.from_url(redis_url)
        self.connectors = Connectors.from_settings(self.settings, self.redis)
        self.database = database
        self.sandbox = sandbox
        self.patience = Patience()  # the test's own reads share the vendors' budgets with the runs
        self.env = {
            "MEMBERSYNC_ENV": "test",
            "DATABASE_URL": database.url,
            "REDIS_URL": redis_url,
            **sandbox.env,
        }

    def reconciliation(self, **options: Any) -> Reconciliation:
        return Reconciliation(self.database, self.connectors, self.redis, self.settings, **options)

    def run(self, **options: Any) -> RunResult:
        return self.reconciliation(**options).run()

    def writes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for system, names in WRITES.items():
            requests = self.sandbox.state(system)["requests"]
            counts[system] = sum(requests.get(name, 0) for name in names)
        return counts

    def code(self, email: str) -> str:
        return member_code(email, key=self.settings.member_code_secret)

    def customer(self, email: str) -> Any:
        (customer,) = self.patience.call(lambda: self.connectors.shopify.find_customers_by_email(email))
        return customer

    def members(self, email: str) -> list[Any]:
        return [
            member
            for member in self.patience.call(lambda: list(self.connectors.smaregi.iter_members()))
            if canonical_email(member.mail_address or "") == email
        ]

    def contact(self, email: str) -> dict[str, Any]:
        hubspot = self.connectors.hubspot
        (contact,) = self.patience.call(
            lambda: hubspot.search_contacts_by_email(email, properties=HUBSPOT_FACTS)
        )
        return dict(contact.properties)

    def link(self, email: str, shopify_customer_id: str) -> None:
        with self.database.session() as session:
            session.add(Identity(email=email, shopify_customer_id=shopify_customer_id))


@pytest.fixture
def world(make_settings: Callable[..., Any], database: Database, sandbox: Any, clean_redis: str) -> World:
    return World(make_settings, database, sandbox, clean_redis)


def shopper(world: World, email: str, first: str, last: str) -> str:
    customer = world.patience.call(
        lambda: world.connectors.shopify.create_customer(
            email=email, first_name=first, last_name=last, postal_code="1000001", address="東京都千代田区1-1"
        )
    )
    return str(customer.id)


def till_card(world: World, code: str, email: str, last: str = "店頭") -> str:
    member = world.patience.call(
        lambda: world.connectors.smaregi.create_member(
            customer_code=code, last_name=last, first_name="客", mail_address=email
        )
    )
    return str(member.customer_id)


def seed_drift(world: World) -> dict[str, str]:
    """b, c, d are members everywhere (one run made them so); then each system drifts."""
    ids = {name: shopper(world, f"{name}@example.com", f"名{name}", f"姓{name}") for name in "bcd"}
    assert world.run().status == ReconciliationStatus.COMPLETED
    # A missing Smaregi member (a), a merged customer (i: identities knew another id).
    ids["a"] = shopper(world, "a@example.com", "太郎", "佐藤")
    ids["i"] = shopper(world, "i@example.com", "一郎", "伊藤")
    world.link("i@example.com", "gid://shopify/Customer/998")
    # A name changed in HubSpot (b), in Shopify (c); points moved at the register (d).
    connectors, patience = world.connectors, world.patience
    patience.call(
        lambda: connectors.hubspot.upsert_contact(email="b@example.com", properties={"firstname": "変更"})
    )
    patience.call(lambda: connectors.shopify.update_customer(ids["c"], last_name="新姓"))
    (member_d,) = world.members("d@example.com")
    patience.call(lambda: connectors.smaregi.add_points(member_d.customer_id, 50))
    # A walk-in (e), two members with one address (f), a member without a customer (g), a deleted
    # customer (h: identities knows it, Shopify no longer has it).
    shopper(world, "e@example.com", "英子", "江藤")
    ids["walk_in"] = till_card(world, "STORE-E", "e@example.com")
    shopper(world, "f@example.com", "文子", "藤田")
    ids["f1"] = till_card(world, "STORE-F1", "f@example.com")
    ids["f2"] = till_card(world, "STORE-F2", "f@example.com")
    till_card(world, "STORE-G", "g@example.com")
    world.link("h@example.com", "gid://shopify/Customer/999")
    return ids


EXPECTED = {
    "smaregi_missing": 2,  # a, i
    "hubspot_drift": 3,  # b (name), c (name), d (points)
    "smaregi_drift": 1,  # c
    "shopify_facts_drift": 1,  # d
    "hubspot_missing": 2,  # e, f (profile only: no member of theirs)
    "walk_in": 1,
    "ambiguous_smaregi": 1,
    "smaregi_only": 1,
    "shopify_gone": 1,
    "shopify_merged": 1,
}


def test_one_run_repairs_the_drift_by_the_ownership_map(world: World) -> None:
    ids = seed_drift(world)
    before = world.writes()

    dry = world.run(dry_run=True)
    assert world.writes() == before, "a dry run writes nothing"
    assert dry.report["outcomes"] == EXPECTED

    result = world.run()
    assert result.status == ReconciliationStatus.COMPLETED
    assert result.report["outcomes"] == dry.report["outcomes"], "the dry run reported the same plan"
    assert result.report["writes"] == dry.report["writes"]
    assert result.report["failures"] == []
    done = world.writes() - before
    # Contacts and facts go out in batches: fewer requests than records, never more.
    assert set(done) == set(result.report["writes"])
    assert all(done[system] <= count for system, count in result.report["writes"].items())

    # a: a member under its deterministic code, mirrored to Shopify and HubSpot.
    (member_a,) = world.members("a@example.com")
    assert (member_a.customer_code, member_a.last_name, member_a.first_name) == (
        world.code("a@example.com"),
        "佐藤",
        "太郎",
    )
    assert world.customer("a@example.com").member_number == member_a.customer_code
    assert world.contact("a@example.com")["membersync_member_number"] == member_a.customer_code
    # b: HubSpot's name is Shopify's again. c: Shopify's new name reached Smaregi and HubSpot.
    assert world.contact("b@example.com")["firstname"] == "名b"
    (member_c,) = world.members("c@example.com")
    assert member_c.last_name == "新姓"
    assert world.contact("c@example.com")["lastname"] == "新姓"
    # d: the register's points reached the Shopify metafield and the HubSpot property.
    (member_d,) = world.members("d@example.com")
    assert member_d.points is not None and member_d.points >= 50
    assert world.customer("d@example.com").points == member_d.points
    assert world.contact("d@example.com")["membersync_points"] == str(member_d.points)
    # e: the walk-in's card is left for its owner: not renamed, not linked.
    (walk_in,) = world.members("e@example.com")
    assert (walk_in.customer_id, walk_in.last_name) == (ids["walk_in"], "店頭")
    assert world.customer("e@example.com").member_number is None
    # f: two cards with one address are both left as they are; g: no customer is made.
    assert {member.customer_id for member in world.members("f@example.com")} == {ids["f1"], ids["f2"]}
    assert world.connectors.shopify.find_customers_by_email("g@example.com") == []
    # i: the identity follows the customer that holds the address now.
    with world.database.session() as session:
        identity = session.query(Identity).filter_by(email="i@example.com").one()
        assert identity.shopify_customer_id == ids["i"]
    # Consent is never raised.
    for name in "abcdi":
        assert world.customer(f"{name}@example.com").marketing_state == "NOT_SUBSCRIBED"

    # A second run finds nothing to write.
    again = world.writes()
    second = world.run()
    assert second.status == ReconciliationStatus.COMPLETED
    assert second.report["writes"] == {}
    assert world.writes() == again
    with world.database.session() as session:
        row = session.get(ReconciliationRun, second.run_id)
        assert row is not None and row.report is not None and row.counts == second.report["outcomes"]


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_without_writing_anything_twice(world: World) -> None:
    seed_drift(world)
    planned = Counter(world.run(dry_run=True).report["writes"])
    before = world.writes()
    done: list[Write] = []

    def die_after_three(write: Write) -> None:
        done.append(write)
        if len(done) == 3:
            raise Interrupted

    # One request per record written, so that the sandbox's counters count records.
    with pytest.raises(Interrupted):
        world.run(on_write=die_after_three, batching=False)
    with world.database.session() as session:
        first = session.query(ReconciliationRun).order_by(ReconciliationRun.id.desc()).first()
        assert first is not None and first.status == ReconciliationStatus.FAILED
        assert first.report is not None
        interrupted = Counter(first.report["writes"])
    assert sum(interrupted.values()) == 3

    resumed = world.run(batching=False)
    assert resumed.status == ReconciliationStatus.COMPLETED
    total = interrupted + Counter(resumed.report["writes"])
    assert total == planned, "every write done once: the resumed run did only what was left"
    assert world.writes() - before == planned
    assert world.run().report["writes"] == {}


def test_two_runs_started_at_once_one_runs_and_the_other_is_skipped(world: World) -> None:
    shopper(world, "a@example.com", "太郎", "佐藤")
    results: list[RunResult] = []
    other_finished = threading.Event()
    barrier = threading.Barrier(2)

    def hold_until_the_other_ends(phase: str, done: int, total: int) -> None:
        if total and done == total:
            other_finished.wait(10)  # the run holding the lock keeps it until the other has ended

    def start() -> None:
        barrier.wait()
        result = world.reconciliation(progress=hold_until_the_other_ends).run()
        results.append(result)
        if result.status == ReconciliationStatus.SKIPPED:
            other_finished.set()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(result.status for result in results) == [
        ReconciliationStatus.COMPLETED,
        ReconciliationStatus.SKIPPED,
    ]
    skipped = next(result for result in results if result.status == ReconciliationStatus.SKIPPED)
    assert skipped.reason and "another reconciliation" in skipped.reason


def test_the_command_line_runs_a_dry_run_and_prints_its_report_last(world: World) -> None:
    import json

    from cli.main import main

    shopper(world, "a@example.com", "太郎", "佐藤")
    before = world.writes()
    outcome = CliRunner().invoke(main, ["reconcile", "--dry-run"], env=world.env)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed" and report["dry_run"] is True
    assert report["outcomes"] == {"smaregi_missing": 1}
    assert world.writes() == before


def test_the_last_runs_report_is_exported_as_metrics(world: World, make_settings: Callable[..., Any]) -> None:
    from app import create_app

    shopper(world, "a@example.com", "太郎", "佐藤")
    world.run()
    world.run()  # in sync; then a skipped one must not hide it
    world.redis.set("membersync:lock:reconcile", "held by another run")
    assert world.run().status == ReconciliationStatus.SKIPPED
    settings = make_settings(METRICS_TOKEN="scrape-token-5f0c2b8e9a41d7c3", REDIS_URL=world.env["REDIS_URL"])
    app = create_app(settings, database=world.database)
    page = app.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {settings.metrics_token.value}"}
    )
    assert page.status_code == 200, page.get_data(as_text=True)
    text = page.get_data(as_text=True)
    assert 'membersync_reconciliation_last_run_outcomes{outcome="in_sync"} 1.0' in text
    assert "membersync_reconciliation_last_run_timestamp_seconds " in text


def test_a_run_whose_process_died_is_marked_interrupted_by_the_next(world: World) -> None:
    with world.database.session() as session:
        dead = ReconciliationRun(status=ReconciliationStatus.RUNNING, counts={}, fence=1)
        session.add(dead)
        session.flush()
        dead_id = dead.id
    assert world.run().status == ReconciliationStatus.COMPLETED
    with world.database.session() as session:
        row = session.get(ReconciliationRun, dead_id)
        assert row is not None and row.status == ReconciliationStatus.FAILED
        assert row.error is not None and row.error.startswith("interrupted")


def test_a_run_that_lost_its_fence_stops_writing(world: World) -> None:
    seed_drift(world)
    before = world.writes()

    def a_newer_run_takes_over(write: Write) -> None:
        world.redis.incr("membersync:reconcile:fence")  # as a run that took the expired lock would

    result = world.run(on_write=a_newer_run_takes_over, batching=False)
    assert result.status == ReconciliationStatus.FENCED
    assert sum((world.writes() - before).values()) == 1, "the first write went out, no other"


def test_a_walk_ins_owner_is_asked_once_ever_whether_the_card_is_theirs(world: World) -> None:
    from connectors.mailer.client import CARD_QUESTION_SUBJECTS
    from registrations.models import Confirmation, Registration
    from registrations.states import ConfirmationKind, ConfirmationState, Ownership

    shopper(world, "e@example.com", "英子", "江藤")
    card_id = till_card(world, "STORE-E", "e@example.com")
    with world.database.session() as session:
        registration = Registration(
            request_fingerprint="0" * 64,
            email="e@example.com",
            first_name="英子",
            last_name="江藤",
            ownership=Ownership.OWNER,
        )
        session.add(registration)
        session.flush()
        registration_id = registration.id

    dry = world.run(dry_run=True).report
    assert dry["outcomes"]["walk_in_asked"] == 1 and dry["writes"]["email"] == 1
    assert world.sandbox.messages() == [], "a dry run mails nobody"
    (example,) = dry["examples"]["walk_in"]
    assert example == {"shopify": example["shopify"], "smaregi": card_id, "registration": registration_id}

    first = world.run().report
    assert first["outcomes"]["walk_in_asked"] == 1
    (mail,) = world.sandbox.messages()
    assert mail["to"] == "e@example.com"
    assert mail["subject"] == CARD_QUESTION_SUBJECTS["ja"]
    with world.database.session() as session:
        (question,) = session.query(Confirmation).filter_by(registration_id=registration_id).all()
        assert (question.kind, question.state, question.subject) == (
            ConfirmationKind.CARD,
            ConfirmationState.REQUESTED,
            card_id,
        )
    second = world.run().report
    assert second["outcomes"]["walk_in_already_asked"] == 1 and "walk_in_asked" not in second["outcomes"]
    assert len(world.sandbox.messages()) == 1, "one mail ever"
    # Nothing of the card was linked or written meanwhile: its owner has not answered.
    (card,) = world.members("e@example.com")
    assert (card.customer_id, card.last_name) == (card_id, "店頭")
