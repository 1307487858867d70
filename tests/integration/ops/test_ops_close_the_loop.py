"""Closing the loop from the ops console, the CLI and Flower's task: two named operators sign in and
the audit trail names each; "select all matching" reaches every page; a bulk replay runs in the
background paced by the rate budgets, shows its progress, and its dead letters end `resolved` once
a real worker has synced their registrations; the CSV export; every replay, discard and resolve from
the CLI and from `membersync.replay` is audited with who."""

from __future__ import annotations

import csv
import getpass
import io
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select

from app import create_app
from cli.main import main
from config.operators import hash_password
from config.settings import Settings
from registrations.database import Database
from registrations.dead_letters import DeadLetters
from registrations.models import DeadLetter, OpsAuditEntry
from registrations.ops_queries import PAGE_SIZE
from registrations.replay_jobs import ReplayJobs
from tasks.factory import create_celery_app
from tests.integration.ops.conftest import (
    OPS_PASSWORD,
    OPS_USERNAME,
    Seeder,
    csrf_token,
    english_client,
    sign_in,
)
from tests.integration.ops.test_ops_pages import table_rows

OPERATORS = {"alice": "alice walks the night shift", "bob": "bob keeps the morning log"}
RESOLVED_WITHIN_SECONDS = 60


def audit(database: Database, *actions: str) -> list[tuple[str, str, str | None, int | None]]:
    with database.session() as session:
        rows = session.scalars(
            select(OpsAuditEntry).where(OpsAuditEntry.action.in_(actions)).order_by(OpsAuditEntry.id)
        ).all()
        return [(row.operator, row.action, row.via, row.dead_letter_id) for row in rows]


def statuses(database: Database) -> dict[int, str]:
    with database.session() as session:
        return {letter.id: letter.status for letter in session.scalars(select(DeadLetter))}


def act_on_all_matching(client: Any, query: dict[str, str], action: str, note: str = "") -> Any:
    page = client.get("/ops/dead-letters", query_string=query).text
    data = {**query, "all_matching": "1", "action": action, "note": note, "csrf_token": csrf_token(page)}
    return client.post("/ops/dead-letters/act", data=data)


@pytest.fixture
def named_settings(
    ops_settings: Settings, make_settings: Callable[..., Settings], clean_redis: str
) -> Settings:
    """The ops settings with two named operators beside the shared login, and budgets that pace a
    bulk replay at 5 registrations a second."""
    return make_settings(
        OPS_USERNAME=OPS_USERNAME,
        OPS_PASSWORD=OPS_PASSWORD,
        OPS_USERS=",".join(f"{name}:{hash_password(password)}" for name, password in OPERATORS.items()),
        REDIS_URL=clean_redis,
        CELERY_BROKER_URL=clean_redis,
        SMAREGI_WRITE_RATE_PER_SECOND="40",
    )


@pytest.fixture
def named_app(named_settings: Settings, database: Database) -> Any:
    return create_app(named_settings, database=database)


def test_two_named_operators_a_paced_bulk_replay_over_every_page_and_the_loop_closed(
    named_app: Any,
    database: Database,
    seed: Seeder,
    worker_factory: Any,
    clean_redis: str,
) -> None:
    alice, bob = english_client(named_app), english_client(named_app)
    assert sign_in(alice, "alice", OPERATORS["alice"]).status_code == 303
    assert sign_in(bob, "bob", OPERATORS["alice"]).status_code == 401  # each has their own password
    assert sign_in(bob, "bob", OPERATORS["bob"]).status_code == 303
    assert sign_in(english_client(named_app), OPS_USERNAME, OPS_PASSWORD).status_code == 303  # still works

    # 12 registrations with a dead Smaregi step: more than the console replays in the request.
    letter_ids = [seed.dead(seed.registration(email=f"loop-{n}@example.com"), "smaregi") for n in range(12)]
    answer = act_on_all_matching(alice, {"system": "smaregi", "reason": "", "status": "open"}, "replay")
    assert answer.status_code == 303
    page = alice.get(answer.headers["Location"]).text
    assert "Replaying 12 registrations in the background" in page
    [job] = ReplayJobs(redis.Redis.from_url(clean_redis)).recent()
    assert (job.operator, job.total, job.done, job.finished) == ("alice", 12, 0, False)
    # A dead letter opened after the click is not part of the selection: bob discards it.
    late = seed.dead(seed.registration(email="late@example.com"), "hubspot")

    worker_factory(clean_redis, SMAREGI_WRITE_RATE_PER_SECOND="40")
    deadline = time.monotonic() + RESOLVED_WITHIN_SECONDS
    while any(statuses(database)[letter_id] != "resolved" for letter_id in letter_ids):
        assert time.monotonic() < deadline, statuses(database)
        time.sleep(0.3)
    with database.session() as session:
        resolved_by = {
            letter.resolved_by
            for letter in session.scalars(select(DeadLetter).where(DeadLetter.id.in_(letter_ids)))
        }
    assert resolved_by == {"replay from console by alice"}
    progress = alice.get("/ops/dead-letters?status=resolved").text
    assert "alice: 12 of 12 registrations replayed (100 %)" in progress and "finished" in progress

    note_page = bob.get(f"/ops/dead-letters/{late}").text
    bob.post(
        "/ops/dead-letters/act",
        data={
            "ids": str(late),
            "action": "discard",
            "note": "test address",
            "csrf_token": csrf_token(note_page),
        },
    )
    assert audit(database, "login") == [
        ("alice", "login", "console", None),
        ("bob", "login", "console", None),
        (OPS_USERNAME, "login", "console", None),
    ]
    assert audit(database, "replay", "discard") == [
        *[("alice", "replay", "console", letter_id) for letter_id in letter_ids],
        ("bob", "discard", "console", late),
    ]
    trail = alice.get("/ops/audit").text
    assert {row[1] for row in table_rows(trail, "audit")} >= {"alice", "bob"}


def test_select_all_over_every_page_the_filters_and_the_csv_export(
    ops: Any, database: Database, seed: Seeder
) -> None:
    letter_ids = [
        seed.dead(seed.registration(email=f"page-{n}@example.com"), "hubspot") for n in range(PAGE_SIZE + 2)
    ]
    other_registration = seed.registration(email="other@example.com")
    other = seed.dead(other_registration, "smaregi")
    listed = ops.get("/ops/dead-letters?system=hubspot").text
    assert len(table_rows(listed, "dead-letters")) == PAGE_SIZE
    assert f"Select all {PAGE_SIZE + 2} dead letters matching this filter" in listed

    answer = act_on_all_matching(
        ops, {"system": "hubspot", "reason": "", "status": "open"}, "discard", "test data"
    )
    assert answer.status_code == 303
    # The flash names the first 20 and counts the rest (it travels in the session cookie).
    assert f"#{letter_ids[19]} and {PAGE_SIZE + 2 - 20} more" in ops.get(answer.headers["Location"]).text
    after = statuses(database)
    assert {after[letter_id] for letter_id in letter_ids} == {"discarded"} and after[other] == "open"

    export = ops.get("/ops/dead-letters.csv?system=hubspot&status=discarded")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [int(row["id"]) for row in rows] == letter_ids
    assert {(row["system"], row["reason"], row["status"]) for row in rows} == {
        ("hubspot", "permanent", "discarded")
    }
    assert "@example.com" not in export.text and "山田" not in export.text  # ids and reasons, no person

    # The "replayed and failed again" filter lists the re-failure, linked to its predecessor.
    DeadLetters(database).replay(other)
    again = seed.dead(other_registration, "smaregi")
    assert DeadLetters(database).show(again).previous_id == other  # type: ignore[union-attr]
    failed_again = ops.get("/ops/dead-letters?status=failed_again").text
    assert [row[1] for row in table_rows(failed_again, "dead-letters")] == [f"#{again}"]
    assert f"failed again after #{other}" in failed_again
    assert f"dead letter #{again}" in ops.get(f"/ops/dead-letters/{other}").text


def test_cli_and_replay_task_are_audited_with_who(
    ops_settings: Settings, database: Database, seed: Seeder, database_url: str
) -> None:
    first, second, third, fourth = (
        seed.dead(seed.registration(email=f"who-{n}@example.com"), "hubspot") for n in range(4)
    )
    runner = CliRunner()
    env = {"MEMBERSYNC_ENV": "test", "DATABASE_URL": database_url}
    answer = runner.invoke(
        main, ["dlq", "discard", str(first), "--note", "test", "--operator", "carol"], env=env
    )
    assert answer.exit_code == 0, answer.output
    answer = runner.invoke(main, ["dlq", "resolve", str(second), "--note", "made by hand"], env=env)
    assert answer.exit_code == 0, answer.output

    celery = create_celery_app(ops_settings, database)
    celery.loader.import_default_modules()
    replay = celery.tasks["membersync.replay"]
    replay.apply(args=[str(third)], headers={"membersync_operator": "dave"}).get()
    replay.apply(args=[str(fourth)]).get()
    assert audit(database, "replay", "discard", "resolve") == [
        ("carol", "discard", "cli", first),
        (getpass.getuser(), "resolve", "cli", second),
        ("dave", "replay", "flower", third),
        ("flower", "replay", "flower", fourth),
    ]
