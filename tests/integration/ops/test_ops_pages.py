"""The ops console's read pages: the overview (statuses, dead letters, queues, rate limits, sync times,
reconciliation), finding a registration, a registration's page and the audit trail."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import OpsAuditEntry, ReconciliationRun, utcnow
from tests.integration.ops.conftest import OPS_PASSWORD, OPS_USERNAME, PERSON, Seeder, post_form, sign_in


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table with `table_id`."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert match, f"no table {table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", match.group(1), re.S)
    return [
        [
            re.sub(r"<[^>]+>|\s+", " ", cell).strip()
            for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ]
        for row in rows
    ]


def test_overview_counts_statuses_and_open_dead_letters_by_system_and_reason(ops: Any, seed: Seeder) -> None:
    for _ in range(3):
        seed.registration()
    seed.dead(seed.registration(), "smaregi", "permanent")
    for _ in range(2):
        seed.dead(seed.registration(), "hubspot", "retries_exhausted")
    seed.dead(seed.registration(), "shopify", "ambiguous_match")
    html = ops.get("/ops/").text
    statuses = dict(table_rows(html, "statuses"))  # type: ignore[arg-type]
    # A dead non-master step with steps still to run is "syncing"; a dead master is "failed".
    assert statuses == {
        "accepted": "3",
        "syncing": "3",
        "synced": "0",
        "partial": "0",
        "failed": "1",
        "waiting": "0",
    }
    assert sorted(table_rows(html, "open-dead-letters")) == [
        ["hubspot", "retries_exhausted", "2"],
        ["shopify", "ambiguous_match", "1"],
        ["smaregi", "permanent", "1"],
    ]
    assert "/ops/dead-letters?system=hubspot&amp;reason=retries_exhausted" in html


def test_overview_shows_queue_depths_and_rate_limit_headroom(ops: Any, seed: Seeder) -> None:
    html = ops.get("/ops/").text
    assert dict(table_rows(html, "queues")) == {  # type: ignore[arg-type]
        "membersync.realtime": "0",
        "membersync.bulk": "0",
        "membersync.maintenance": "0",
    }
    buckets = {row[0]: row for row in table_rows(html, "headroom")}
    assert {"shopify", "smaregi", "smaregi:write", "hubspot"} <= set(buckets)
    # A fresh bucket is full: Shopify's 2000 cost points of the Standard plan, refilled at 100/s. The
    # overview's own credentials check may have just spent a point when a sandbox answers (another
    # test in this session started one): full but for that.
    tokens, _, capacity = buckets["shopify"][1].partition(" / ")
    assert float(tokens) >= 1990 and capacity.startswith("2000") and buckets["shopify"][2] == "100.00"
    assert buckets["shopify"][3] == "no"


def test_overview_says_unavailable_when_broker_and_redis_do_not_answer(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    nowhere = "redis://127.0.0.1:1/0"
    settings = make_settings(REDIS_URL=nowhere, CELERY_BROKER_URL=nowhere)
    client = create_app(settings, database=database).test_client()
    assert sign_in(client, "ops", "ops").status_code == 303
    started = time.monotonic()
    html = client.get("/ops/", headers={"Accept-Language": "en"}).text
    assert time.monotonic() - started < 5
    assert "Unavailable: the broker did not answer." in html
    assert "Unavailable: Redis did not answer." in html
    assert 'id="statuses"' in html  # the database part is still there


def test_overview_time_to_synced_percentiles_over_the_last_day(ops: Any, seed: Seeder) -> None:
    now = utcnow()
    for seconds in range(1, 101):  # 1 s .. 100 s
        accepted = now - timedelta(minutes=30)
        seed.synced(created_at=accepted, updated_at=accepted + timedelta(seconds=seconds))
    old = now - timedelta(days=2)
    seed.synced(created_at=old, updated_at=old + timedelta(hours=5))  # outside the window
    html = ops.get("/ops/").text
    assert table_rows(html, "sync-times") == [["p50", "50.0 s"], ["p90", "1 min 30 s"], ["p99", "1 min 39 s"]]
    assert "Over 100 registrations" in html


def test_overview_shows_the_last_reconciliation_run(ops: Any, database: Database) -> None:
    assert "No reconciliation has run yet." in ops.get("/ops/").text
    with database.session() as session:
        started = utcnow() - timedelta(hours=3)
        session.add(ReconciliationRun(started_at=started - timedelta(days=1), status="finished"))
        session.add(
            ReconciliationRun(
                started_at=started,
                finished_at=started + timedelta(minutes=4),
                status="finished",
                counts={"upserted": 7, "reported": 2},
            )
        )
    html = ops.get("/ops/").text
    assert "upserted 7, reported 2" in html
    finished_in_tokyo = (started + timedelta(minutes=4)).astimezone(ZoneInfo("Asia/Tokyo"))
    assert finished_in_tokyo.strftime("%Y-%m-%d %H:%M:%S JST (UTC+09:00)") in html  # the shop's zone


def test_overview_shows_the_last_reconciliation_report(ops: Any, database: Database) -> None:
    report = {
        "people": 12,
        "read": {"shopify": 12, "smaregi": 11, "hubspot": 10},
        "writes": {"hubspot": 2, "smaregi": 1},
        "failed_writes": {"hubspot": 1},
        "api_calls": {"shopify": 3, "smaregi": 4, "hubspot": 5},
        "seconds": 1.5,
        "rate_limit_wait_seconds": 0.25,
        "examples": {"walk_in": [{"shopify": "gid://shopify/Customer/7", "smaregi": "81"}]},
    }
    with database.session() as session:
        started = utcnow() - timedelta(hours=1)
        session.add(
            ReconciliationRun(
                started_at=started,
                finished_at=started + timedelta(minutes=1),
                status="completed",
                counts={"walk_in": 1, "in_sync": 11},
                report=report,
            )
        )
    html = ops.get("/ops/").text
    assert "hubspot 2, smaregi 1; failed: hubspot 1" in html
    assert "shopify 3, smaregi 4, hubspot 5" in html
    assert "1.5 s (and 0.25 s waiting for rate limits)" in html
    assert "walk_in: gid://shopify/Customer/7/81" in html


def test_find_by_id_goes_to_the_registration_or_the_dead_letter(ops: Any, seed: Seeder) -> None:
    registration_id = seed.registration()
    letter_id = seed.dead(registration_id, "hubspot")
    found = ops.get(f"/ops/find?id=+{registration_id.upper()}+")
    assert found.status_code == 302 and found.headers["Location"] == f"/ops/registrations/{registration_id}"
    by_number = ops.get(f"/ops/find?id=%23{letter_id}")
    assert by_number.headers["Location"] == f"/ops/dead-letters/{letter_id}"
    missing = ops.get("/ops/find?id=00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and "No registration or dead letter has that id." in missing.text
    assert ops.get("/ops/find?id=not-an-id").status_code == 404


def test_find_by_email_is_a_post_normalised_like_the_intake(ops: Any, seed: Seeder) -> None:
    registration_id = seed.registration()
    answer = post_form(ops, "/ops/find", "/ops/find", {"email": "  Hanako.YAMADA@Example.com "})
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/ops/registrations/{registration_id}"  # no address in the URL

    second = seed.registration()
    listed = post_form(ops, "/ops/find", "/ops/find", {"email": PERSON["email"]})
    assert listed.status_code == 200
    assert {row[0] for row in table_rows(listed.text, "matches")} == {registration_id, second}

    nobody = post_form(ops, "/ops/find", "/ops/find", {"email": "nobody@example.com"})
    assert nobody.status_code == 404 and "No registration was made with that address." in nobody.text
    assert post_form(ops, "/ops/find", "/ops/find", {"email": " "}).status_code == 422


def test_a_registrations_page_shows_steps_personal_data_and_flower_links(
    make_settings: Callable[..., Settings], database: Database, seed: Seeder, clean_redis: str
) -> None:
    settings = make_settings(
        OPS_USERNAME=OPS_USERNAME,
        OPS_PASSWORD=OPS_PASSWORD,
        FLOWER_URL="https://flower.example.test/",
        REDIS_URL=clean_redis,
    )
    client = create_app(settings, database=database).test_client()
    sign_in(client, OPS_USERNAME, OPS_PASSWORD)
    registration_id = seed.registration()
    seed.succeed(registration_id, "shopify", "gid://shopify/Customer/42", task_id="task-shopify-1")
    letter_id = seed.dead(registration_id, "smaregi", "permanent")

    answer = client.get(f"/ops/registrations/{registration_id}")
    assert answer.status_code == 200
    html = answer.text
    steps = {row[0]: row for row in table_rows(html, "steps")}
    assert steps["shopify"][1:4] == ["succeeded", "gid://shopify/Customer/42", "1"]
    assert steps["smaregi"][1] == "dead" and steps["smaregi"][4] == "permanent: PermanentError"
    assert steps["hubspot"][1] == "pending"
    assert 'href="https://flower.example.test/task/task-shopify-1"' in html
    assert f'href="/ops/dead-letters/{letter_id}"' in html
    for value in (PERSON["email"], "山田", "花子", "ヤマダ", PERSON["phone"], PERSON["address"], "150-0001"):
        assert value in html
    assert answer.headers["Cache-Control"] == "no-store"
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # no scripts at all
    assert client.get("/ops/registrations/00000000-0000-0000-0000-000000000000").status_code == 404


def test_flower_links_default_to_flower_on_this_machine(ops: Any, seed: Seeder) -> None:
    registration_id = seed.registration()
    seed.succeed(registration_id, "shopify", "gid://shopify/Customer/1", task_id="abc")
    assert 'href="http://127.0.0.1:5555/task/abc"' in ops.get(f"/ops/registrations/{registration_id}").text


def test_personal_data_is_never_logged(ops: Any, seed: Seeder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registration_id = seed.registration()
    letter_id = seed.dead(registration_id, "smaregi")
    for path in ("/ops/", f"/ops/registrations/{registration_id}", f"/ops/dead-letters/{letter_id}"):
        assert ops.get(path).status_code == 200
    post_form(ops, "/ops/find", "/ops/find", {"email": PERSON["email"]})
    post_form(ops, "/ops/dead-letters", "/ops/dead-letters/act", {"ids": str(letter_id), "action": "replay"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for value in (PERSON["email"], "山田", "花子", PERSON["phone"], PERSON["address"]):
        assert value not in logged


def test_the_audit_trail_is_newest_first_and_paged(ops: Any, database: Database) -> None:
    now = utcnow()
    with database.session() as session:
        for number in range(60):
            session.add(
                OpsAuditEntry(
                    at=now - timedelta(minutes=number + 1),
                    operator="someone",
                    action="discard",
                    dead_letter_id=1000 + number,
                    outcome="discarded",
                    note=f"note {number}",
                    client_address="192.0.2.1",
                )
            )
    first = table_rows(ops.get("/ops/audit").text, "audit")
    assert len(first) == 50
    assert first[0][1:3] == [OPS_USERNAME, "login"]  # the sign-in of this test's session, just now
    assert first[1][3] == "#1000" and first[1][6] == "note 0" and first[1][7] == "192.0.2.1"
    second_page = ops.get("/ops/audit?page=2").text
    second = table_rows(second_page, "audit")
    assert [row[3] for row in second] == [f"#{1000 + number}" for number in range(49, 60)]
    assert 'href="/ops/audit?page=1"' in second_page and "?page=3" not in second_page
