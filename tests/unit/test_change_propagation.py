"""Change propagation in process: only the drift is written, ambiguity writes nothing, an e-mail changed
in Shopify finds the mirrors by the old address, a delete is only reported; and a change is a step
(claimed once, retried, dead-lettered, replayed and resolved through the one dead-letter service)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.errors import PermanentError, TransientError
from connectors.hubspot.client import HubSpotContact
from connectors.registry import Connectors
from connectors.shopify.mapping import ShopifyCustomer
from connectors.smaregi.members import SmaregiMember
from registrations.changes import DUPLICATE, NEW, Changes, Delivery
from registrations.database import Database
from registrations.dead_letters import DeadLetters, NothingToReplay
from registrations.directory import MemberDirectory
from registrations.models import Base, Confirmation, Identity
from registrations.propagation import ProfilePropagation
from registrations.states import ChangeState, ConfirmationKind, ConfirmationState, DeadLetterStatus
from tasks.changes import CUSTOMER_CHANGED_TASK
from tests.support.world import World

GID = "gid://shopify/Customer/41"


class Shop:
    def __init__(self, customer: ShopifyCustomer | None) -> None:
        self.customer = customer
        self.reads = 0

    def get_customer(self, customer_id: str) -> ShopifyCustomer | None:
        self.reads += 1
        return self.customer if self.customer and self.customer.id == customer_id else None


class Till:
    def __init__(self, *members: SmaregiMember) -> None:
        self.members = {member.customer_id: member for member in members}
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def get_member(self, customer_id: str) -> SmaregiMember | None:
        return self.members.get(customer_id)

    def update_member(self, customer_id: str, **fields: str | bool | None) -> SmaregiMember:
        self.updates.append((customer_id, fields))
        member = self.members[customer_id]
        names = {"last_name": "last_name", "first_name": "first_name", "mail_address": "mail_address"}
        member = replace(member, **{names[k]: v for k, v in fields.items() if k in names})
        self.members[customer_id] = member
        return member


class Crm:
    def __init__(self, *contacts: HubSpotContact) -> None:
        self.contacts = list(contacts)
        self.upserts: list[tuple[str, dict[str, str]]] = []

    def search_contacts_by_email(self, email: str, *, properties: Sequence[str] = ()) -> list[HubSpotContact]:
        return [c for c in self.contacts if (c.email or "").lower() == email.lower()]

    def upsert_contact(self, *, email: str, properties: Mapping[str, str]) -> HubSpotContact:
        self.upserts.append((email, dict(properties)))
        return self.contacts[0]


def customer(**fields: Any) -> ShopifyCustomer:
    base = {
        "id": GID,
        "email": "hanako@example.com",
        "first_name": "Hanako",
        "last_name": "Suzuki",
        "phone": None,
    }
    return ShopifyCustomer(**{**base, **fields})


def member(customer_id: str = "7", **fields: Any) -> SmaregiMember:
    base = {"customer_code": f"C{customer_id}", "mail_address": "hanako@example.com"}
    return SmaregiMember(customer_id, **{**base, "last_name": "Yamada", "first_name": "Hanako", **fields})


def contact(email: str = "hanako@example.com", last_name: str = "Yamada") -> HubSpotContact:
    return HubSpotContact("901", email, {"email": email, "firstname": "Hanako", "lastname": last_name})


@pytest.fixture
def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'changes.db'}")
    Base.metadata.create_all(db.engine)
    return db


def propagate(database: Database, shop: Shop, till: Till, crm: Crm, topic: str = "customers/update") -> Any:
    MemberDirectory(database).record(till.members.values())
    return ProfilePropagation(database, shop, till, crm).process(topic, GID)


def test_only_the_drift_is_written_to_each_mirror(database: Database) -> None:
    till, crm = Till(member()), Crm(contact())
    outcome = propagate(database, Shop(customer()), till, crm)
    assert outcome.state == ChangeState.APPLIED
    assert till.updates == [("7", {"last_name": "Suzuki"})]
    assert crm.upserts == [("hanako@example.com", {"lastname": "Suzuki"})]
    assert outcome.text == "smaregi 7: wrote last_name; hubspot 901: wrote last_name"


def test_mirrors_that_agree_are_not_written(database: Database) -> None:
    till, crm = Till(member(last_name="Suzuki")), Crm(contact(last_name="Suzuki"))
    outcome = propagate(database, Shop(customer()), till, crm)
    assert (till.updates, crm.upserts) == ([], [])
    assert outcome.text == "smaregi 7: no drift; hubspot 901: no drift"


def test_two_members_with_the_address_is_ambiguous_and_nothing_is_written(database: Database) -> None:
    till, crm = Till(member("7"), member("8")), Crm(contact())
    outcome = propagate(database, Shop(customer()), till, crm)
    assert outcome.state == ChangeState.AMBIGUOUS
    assert (till.updates, crm.upserts) == ([], [])
    assert "smaregi 7" in outcome.text and "smaregi 8" in outcome.text


def test_an_email_changed_in_shopify_finds_the_mirrors_by_the_old_address(database: Database) -> None:
    with database.session() as session:
        session.add(Identity(email="hanako@example.com", shopify_customer_id=GID))
    till, crm = Till(member(last_name="Suzuki")), Crm(contact(last_name="Suzuki"))
    outcome = propagate(database, Shop(customer(email="hanako.suzuki@example.com")), till, crm)
    assert till.updates == [("7", {"mail_address": "hanako.suzuki@example.com"})]
    assert crm.upserts == []  # the contact's address is left (documented): nothing else drifted
    assert outcome.text == "smaregi 7: wrote email; hubspot 901: no drift (e-mail left)"
    # The directory now knows the member by the new address: the next change finds it there.
    assert [
        e.customer_id for e in MemberDirectory(database).members_with_email("hanako.suzuki@example.com")
    ] == ["7"]


def test_a_deleted_customer_is_reported_and_no_mirror_is_touched(database: Database) -> None:
    shop, till, crm = Shop(None), Till(member()), Crm(contact())
    outcome = propagate(database, shop, till, crm, topic="customers/delete")
    assert outcome.state == ChangeState.REPORTED and shop.reads == 0
    assert (till.updates, crm.upserts) == ([], [])


def test_a_switched_off_mirror_is_not_read_or_written(database: Database) -> None:
    till = Till(member())
    MemberDirectory(database).record(till.members.values())
    outcome = ProfilePropagation(database, Shop(customer()), till, None).process("customers/update", GID)
    assert outcome.text == "smaregi 7: wrote last_name; hubspot: no contact"


def delivery(webhook_id: str = "wh-1") -> Delivery:
    return Delivery("shopify", "customers/update", webhook_id, GID)


def test_a_change_is_claimed_once_retried_dead_lettered_and_replayed(database: Database) -> None:
    changes = Changes(database)
    received = changes.receive(delivery())
    assert received.verdict == NEW and received.queue
    assert changes.receive(delivery()).verdict == DUPLICATE
    claimed = changes.claim(received.change_id)
    assert claimed is not None and claimed.attempts == 1
    assert changes.claim(received.change_id) is None  # another delivery of the task runs nothing
    changes.retry(received.change_id, TransientError("smaregi 503", system="smaregi"))
    assert changes.claim(received.change_id) is not None
    changes.dead_letter(
        received.change_id, PermanentError("refused", system="smaregi"), reason="permanent", task_name="t"
    )

    queued: list[int] = []
    letters = DeadLetters(database, queue_change=queued.append)
    [letter] = letters.list()
    assert (letter.registration_id, letter.change_id, letter.system) == (None, received.change_id, "shopify")
    assert letters.open_registrations() == [] and letters.open_change_letters() == [letter.id]
    replayed = letters.replay(letter.id)
    assert (replayed.change_id, replayed.registration_id, replayed.published) == (
        received.change_id,
        None,
        True,
    )
    assert queued == [received.change_id]
    change = changes.get(received.change_id)
    assert change is not None and (change.state, change.attempts) == (ChangeState.PENDING, 0)
    with pytest.raises(NothingToReplay):
        letters.replay(letter.id)


def test_a_change_dead_letter_can_be_resolved_and_replay_letters_takes_it_once(database: Database) -> None:
    changes = Changes(database)
    first, second = changes.receive(delivery("a")), changes.receive(delivery("b"))
    for received in (first, second):
        changes.claim(received.change_id)
        changes.dead_letter(
            received.change_id, PermanentError("no", system="x"), reason="permanent", task_name="t"
        )
    letters = DeadLetters(database)  # no broker here: the sweep queues the replayed change
    one, two = (letter.id for letter in letters.list())
    assert letters.resolve(one, note="fixed by hand").status == DeadLetterStatus.RESOLVED
    replays = letters.replay_letters([one, two, two])
    assert [r.change_id for r in replays.replayed] == [second.change_id] and replays.not_open == [one]
    assert replays.replayed[0].published is False


def test_the_task_name_is_stable() -> None:
    assert CUSTOMER_CHANGED_TASK == "membersync.shopify.customer_changed"


class FlakyShop(Shop):
    """A Shopify that fails its first `failures` reads with `error`."""

    def __init__(self, customer: ShopifyCustomer, failures: int, error: Exception) -> None:
        super().__init__(customer)
        self.failures, self.error = failures, error

    def get_customer(self, customer_id: str) -> ShopifyCustomer | None:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().get_customer(customer_id)


def run_task(world: World, shop: Shop, **env: str) -> tuple[Any, Sequence[Any]]:
    """Receive one delivery and run its task eagerly against `shop` and fakes of the mirrors."""
    world.switch(RETRY_POLICY_SHOPIFY="attempts=3,base=0.1,cap=0.1,budget=60", **env)
    till, crm = Till(member()), Crm(contact())
    MemberDirectory(world.database).record(till.members.values())
    fakes: Any = {"shopify": shop, "smaregi": till, "hubspot": crm, "email": world.mailer}
    world.celery.membersync._connectors = Connectors(**fakes)
    received = Changes(world.database).receive(delivery())
    world.celery.tasks[CUSTOMER_CHANGED_TASK].apply(args=(received.change_id,))
    change = Changes(world.database).get(received.change_id)
    return change, DeadLetters(world.database).list()


def test_the_task_retries_a_transient_failure_and_then_writes(world: World) -> None:
    change, letters = run_task(world, FlakyShop(customer(), 2, TransientError("503", system="shopify")))
    assert (change.state, change.attempts, letters) == (ChangeState.APPLIED, 3, [])
    assert "wrote last_name" in change.outcome


def test_the_task_dead_letters_a_change_out_of_retries(world: World) -> None:
    change, [letter] = run_task(world, FlakyShop(customer(), 99, TransientError("503", system="shopify")))
    assert (change.state, change.attempts) == (ChangeState.DEAD, 3)
    assert letter.change_id == change.id and letter.message.startswith("retries_exhausted:")


def test_the_task_dead_letters_a_permanent_failure_at_once(world: World) -> None:
    change, [letter] = run_task(world, FlakyShop(customer(), 1, PermanentError("403", system="shopify")))
    assert (change.state, change.attempts) == (ChangeState.DEAD, 1)
    assert letter.message.startswith("permanent:") and letter.task_name == CUSTOMER_CHANGED_TASK


def confirmed_consent(world: World) -> str:
    """A registration whose owner confirmed marketing consent: its registration id."""
    from registrations.confirmations import decide, requested

    registration_id = world.accept(email="hanako@example.com", accepts_marketing=True)
    with world.database.session() as session:
        asked = requested(session, registration_id, ConfirmationKind.MARKETING)
        assert asked is not None
        decide(session, asked.id, accept=True)
    return registration_id


def consent_states(world: World) -> list[str]:
    with world.database.session() as session:
        return [row.state for row in session.scalars(select(Confirmation))]


@pytest.mark.parametrize(
    ("state", "updated_at", "withdrawn"),
    [
        ("UNSUBSCRIBED", "2999-01-01T00:00:00Z", True),  # unsubscribed in Shopify after confirming
        ("UNSUBSCRIBED", "2000-01-01T00:00:00Z", False),  # confirmed with us since: it stands
        ("SUBSCRIBED", "2999-01-01T00:00:00Z", False),  # a subscription is never followed
    ],
)
def test_only_a_withdrawal_in_shopify_is_followed(
    world: World, state: str, updated_at: str, withdrawn: bool
) -> None:
    registration_id = confirmed_consent(world)
    shop = Shop(customer(marketing_state=state, marketing_updated_at=updated_at))
    outcome = ProfilePropagation(world.database, shop, None, None).process(
        "customers_email_marketing_consent/update", GID
    )
    assert outcome.state == ChangeState.APPLIED
    assert consent_states(world) == [
        ConfirmationState.WITHDRAWN if withdrawn else ConfirmationState.CONFIRMED
    ]
    assert (registration_id in outcome.text) is withdrawn
