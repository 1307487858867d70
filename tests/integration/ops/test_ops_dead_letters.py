"""Dead letters in the ops console: filtered by system, reason and status; replayed or discarded one
or many at a time, each with a flash message and an audit row naming who, what, when and from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from registrations.database import Database
from registrations.dead_letters import DeadLetters
from registrations.models import DeadLetter, OpsAuditEntry, OutboxMessage, Registration
from tasks.queues import queue_depths
from tests.integration.ops.conftest import OPS_USERNAME, Seeder, csrf_token
from tests.integration.ops.test_ops_pages import table_rows


def listed(ops: Any, query: str = "") -> list[int]:
    """The dead-letter numbers the list shows for `query`."""
    html = ops.get(f"/ops/dead-letters{query}").text
    if 'id="dead-letters"' not in html or "No dead letters match" in html:
        return []
    return [int(row[1].lstrip("#")) for row in table_rows(html, "dead-letters")]


def act(ops: Any, ids: list[int], action: str, note: str = "", *, page: str = "/ops/dead-letters") -> Any:
    """Tick `ids` on `page` and press `action`, as the form does."""
    html = ops.get(page).text
    data = {
        "ids": [str(i) for i in ids],
        "action": action,
        "note": note,
        "back": page,
        "csrf_token": csrf_token(html),
    }
    return ops.post("/ops/dead-letters/act", data=data)


def letters(database: Database) -> dict[int, DeadLetter]:
    with database.session() as session:
        found = {letter.id: letter for letter in session.scalars(select(DeadLetter))}
        session.expunge_all()
        return found


def audit(database: Database) -> list[tuple[str, str, int | None, str | None, str | None, str | None]]:
    with database.session() as session:
        return [
            (
                row.operator,
                row.action,
                row.dead_letter_id,
                row.registration_id,
                row.outcome,
                row.client_address,
            )
            for row in session.scalars(
                select(OpsAuditEntry)
                .where(OpsAuditEntry.action.in_(["replay", "discard"]))
                .order_by(OpsAuditEntry.id)
            )
        ]


def test_list_filters_by_system_reason_and_status(ops: Any, seed: Seeder, database: Database) -> None:
    smaregi_permanent = seed.dead(seed.registration(), "smaregi", "permanent")
    hubspot_exhausted = seed.dead(seed.registration(), "hubspot", "retries_exhausted")
    smaregi_exhausted = seed.dead(seed.registration(), "smaregi", "retries_exhausted")
    discarded = seed.dead(seed.registration(), "hubspot", "permanent")
    DeadLetters(database).discard(discarded, note="test")

    assert listed(ops) == [smaregi_exhausted, hubspot_exhausted, smaregi_permanent]  # open, newest first
    assert listed(ops, "?system=smaregi") == [smaregi_exhausted, smaregi_permanent]
    assert listed(ops, "?reason=retries_exhausted") == [smaregi_exhausted, hubspot_exhausted]
    assert listed(ops, "?system=smaregi&reason=permanent") == [smaregi_permanent]
    assert listed(ops, "?status=discarded") == [discarded]
    assert listed(ops, "?status=any&system=hubspot") == [discarded, hubspot_exhausted]
    row = next(
        r
        for r in table_rows(ops.get("/ops/dead-letters").text, "dead-letters")
        if r[1] == f"#{hubspot_exhausted}"
    )
    assert row[3:6] == ["hubspot", "retries_exhausted", "TransientError"]
    # Only open dead letters can be ticked.
    assert f'value="{discarded}"' not in ops.get("/ops/dead-letters?status=any").text


def test_a_dead_letters_page_shows_the_three_ways_to_rerun_it(ops: Any, seed: Seeder) -> None:
    letter_id = seed.dead(seed.registration(), "smaregi", "permanent")
    html = ops.get(f"/ops/dead-letters/{letter_id}").text
    assert 'value="replay"' in html and 'value="discard"' in html
    assert f"membersync dlq replay {letter_id}" in html
    assert "POST /api/task/async-apply/membersync.replay" in html and f'{{"args": ["{letter_id}"]}}' in html
    assert ops.get("/ops/dead-letters/999999").status_code == 404


def test_replay_one_reopens_its_steps_publishes_and_is_audited(
    ops: Any, seed: Seeder, database: Database, clean_redis: str
) -> None:
    registration_id = seed.registration()
    seed.succeed(registration_id, "shopify", "gid://shopify/Customer/7")
    letter_id = seed.dead(registration_id, "smaregi", "permanent")
    page = f"/ops/dead-letters/{letter_id}"
    html = ops.get(page).text
    answer = ops.post(
        "/ops/dead-letters/act",
        data={"ids": str(letter_id), "action": "replay", "back": page, "csrf_token": csrf_token(html)},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )
    assert answer.status_code == 303 and answer.headers["Location"] == page
    shown = ops.get(page).text
    assert f"Replayed dead letter #{letter_id}: registration {registration_id} runs smaregi again." in shown
    assert letters(database)[letter_id].status == "replayed"
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        assert (
            registration.step("smaregi").state == "pending"
            and registration.step("shopify").state == "succeeded"
        )
        unpublished = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
        )
    # Published at once on the broker (the intake's outbox row was never published: no worker here).
    assert unpublished == 1
    assert queue_depths(clean_redis)["membersync.realtime"] == 1
    assert audit(database) == [
        (OPS_USERNAME, "replay", letter_id, registration_id, "replayed: smaregi", "192.0.2.44")
    ]


def test_replay_many_replays_each_registration_once(ops: Any, seed: Seeder, database: Database) -> None:
    both = seed.registration()
    both_smaregi = seed.dead(both, "smaregi", "retries_exhausted")
    both_hubspot = seed.dead(both, "hubspot", "permanent")
    single = seed.registration()
    single_hubspot = seed.dead(single, "hubspot", "retries_exhausted")
    untouched = seed.dead(seed.registration(), "smaregi", "permanent")

    answer = act(ops, [both_smaregi, both_hubspot, single_hubspot], "replay")
    assert answer.status_code == 303
    html = ops.get(answer.headers["Location"]).text
    assert f"Replayed dead letters #{both_smaregi}, #{both_hubspot}, #{single_hubspot}" in html
    assert "2 registrations run their remaining steps again" in html
    statuses = {i: letter.status for i, letter in letters(database).items()}
    assert statuses == {
        both_smaregi: "replayed",
        both_hubspot: "replayed",
        single_hubspot: "replayed",
        untouched: "open",
    }
    with database.session() as session:
        outbox = session.scalars(select(OutboxMessage.registration_id).order_by(OutboxMessage.id)).all()
    assert outbox.count(both) == 2 and outbox.count(single) == 2  # the intake's row + one replay each
    assert [(row[1], row[2], row[3]) for row in audit(database)] == [
        ("replay", both_smaregi, both),
        ("replay", both_hubspot, both),
        ("replay", single_hubspot, single),
    ]
    assert listed(ops) == [untouched]


def test_discard_one_with_a_note(ops: Any, seed: Seeder, database: Database) -> None:
    registration_id = seed.registration()
    letter_id = seed.dead(registration_id, "hubspot", "permanent")
    answer = act(
        ops,
        [letter_id],
        "discard",
        "contact deleted in HubSpot on purpose",
        page=f"/ops/dead-letters/{letter_id}",
    )
    assert "Discarded dead letter #" in ops.get(answer.headers["Location"]).text
    letter = letters(database)[letter_id]
    assert letter.status == "discarded"
    assert (
        letter.notes is not None and "contact deleted in HubSpot on purpose (ops: ops-lead)" in letter.notes
    )
    [row] = audit(database)
    assert row[:5] == (OPS_USERNAME, "discard", letter_id, registration_id, "discarded")
    with database.session() as session:
        entry = session.scalar(select(OpsAuditEntry).where(OpsAuditEntry.action == "discard"))
        assert entry is not None and entry.note == "contact deleted in HubSpot on purpose"


def test_discard_needs_a_note(ops: Any, seed: Seeder, database: Database) -> None:
    letter_id = seed.dead(seed.registration(), "hubspot")
    answer = act(ops, [letter_id], "discard", "   ")
    assert "Say why in the note" in ops.get(answer.headers["Location"]).text
    assert letters(database)[letter_id].status == "open"
    assert audit(database) == []


def test_discard_many(ops: Any, seed: Seeder, database: Database) -> None:
    ids = [seed.dead(seed.registration(), "smaregi", "permanent") for _ in range(3)]
    answer = act(ops, ids[:2], "discard", "test data")
    assert f"Discarded dead letters #{ids[0]}, #{ids[1]}." in ops.get(answer.headers["Location"]).text
    assert [letters(database)[i].status for i in ids] == ["discarded", "discarded", "open"]
    assert [row[2] for row in audit(database)] == ids[:2]


def test_acting_on_a_closed_dead_letter_does_nothing_and_says_so(
    ops: Any, seed: Seeder, database: Database
) -> None:
    letter_id = seed.dead(seed.registration(), "smaregi")
    DeadLetters(database).discard(letter_id, note="by someone else meanwhile")
    answer = act(ops, [letter_id], "replay")
    assert f"dead letter #{letter_id}: not open" in ops.get(answer.headers["Location"]).text
    assert letters(database)[letter_id].status == "discarded"
    assert audit(database)[0][1:5] == ("replay", letter_id, None, "not open: nothing done")


def test_nothing_ticked_or_an_unknown_action_changes_nothing(
    ops: Any, seed: Seeder, database: Database
) -> None:
    letter_id = seed.dead(seed.registration(), "smaregi")
    assert "Tick at least one" in ops.get(act(ops, [], "replay").headers["Location"]).text
    assert "Choose replay or discard" in ops.get(act(ops, [letter_id], "delete").headers["Location"]).text
    assert letters(database)[letter_id].status == "open"


def test_replay_from_the_registrations_page(ops: Any, seed: Seeder, database: Database) -> None:
    registration_id = seed.registration()
    first = seed.dead(registration_id, "smaregi")
    second = seed.dead(registration_id, "hubspot")
    page = f"/ops/registrations/{registration_id}"
    html = ops.get(page).text
    answer = ops.post(
        "/ops/dead-letters/act",
        data={
            "ids": [str(first), str(second)],
            "action": "replay",
            "back": page,
            "csrf_token": csrf_token(html),
        },
    )
    assert answer.headers["Location"] == page
    assert "runs smaregi, hubspot again" in ops.get(page).text
    assert {letter.status for letter in letters(database).values()} == {"replayed"}
