"""A change's dead letter (a Shopify webhook delivery that failed for good) in the ops console: listed
without a registration, shown with the change's source, topic and customer id, and replayed (its task
queued again on the broker) like a step's."""

from __future__ import annotations

from typing import Any

from connectors.errors import PermanentError
from registrations.changes import Changes, Delivery
from registrations.database import Database
from registrations.states import ChangeState
from tasks.changes import CUSTOMER_CHANGED_TASK
from tasks.queues import queue_depths
from tests.integration.ops.conftest import csrf_token

CUSTOMER = "gid://shopify/Customer/4242"


def dead_change(database: Database) -> tuple[int, int]:
    """A change that failed for good: (change id, dead letter id)."""
    changes = Changes(database)
    received = changes.receive(Delivery("shopify", "customers/update", "wh-dead", CUSTOMER))
    changes.claim(received.change_id)
    changes.dead_letter(
        received.change_id,
        PermanentError("refused", system="smaregi"),
        reason="permanent",
        task_name=CUSTOMER_CHANGED_TASK,
    )
    from registrations.dead_letters import DeadLetters

    [letter] = DeadLetters(database).list()
    return received.change_id, letter.id


def test_a_change_dead_letter_is_listed_shown_and_replayed(
    ops: Any, database: Database, clean_redis: str
) -> None:
    change_id, letter_id = dead_change(database)
    listing = ops.get("/ops/dead-letters")
    assert listing.status_code == 200 and f"change #{change_id}" in listing.text
    page = f"/ops/dead-letters/{letter_id}"
    shown = ops.get(page)
    assert shown.status_code == 200
    assert f"shopify customers/update {CUSTOMER}" in shown.text
    answer = ops.post(
        "/ops/dead-letters/act",
        data={"ids": str(letter_id), "action": "replay", "back": page, "csrf_token": csrf_token(shown.text)},
    )
    assert answer.status_code == 303
    assert f"change {change_id} (shopify) runs again" in ops.get(page).text
    change = Changes(database).get(change_id)
    assert change is not None and change.state == ChangeState.PENDING and change.queued_at is not None
    assert queue_depths(clean_redis)["membersync.realtime"] == 1
