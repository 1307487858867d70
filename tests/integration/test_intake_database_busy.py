"""A post the database cannot take right now (SQLite's write lock held past the busy timeout, as
under a burst with many worker threads writing) is a 503 with Retry-After that stores nothing,
never a 500: `bench ratelimit --vendor shopify` on SQLite once answered one intake post with a 500.

The lock is real: another connection holds SQLite's write lock while the intake's own connections
wait a short busy timeout (50 ms instead of 10 s), so the intake meets `database is locked` itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from registrations.database import Database
from registrations.models import Registration
from tests.integration.test_form import VALID, post

BODY = {
    "email": "hanako@example.com",
    "first_name": "花子",
    "last_name": "山田",
    "first_name_kana": "ハナコ",
    "last_name_kana": "ヤマダ",
    "phone": "09012345678",
}


@pytest.fixture
def write_lock(database: Database) -> Iterator[Callable[[], None]]:
    """SQLite's write lock held by another connection (the fixture's value lets it go); the intake's
    connections wait 50 ms for it."""
    url = make_url(database.url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's write lock")

    def short_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")  # after the engine's own 10 s

    event.listen(database.engine, "connect", short_wait)
    database.engine.dispose()  # connections made from here on wait only 50 ms
    holder = sqlite3.connect(str(url.database), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if holder.in_transaction:
            holder.execute("ROLLBACK")

    try:
        yield release
    finally:
        release()
        holder.close()
        event.remove(database.engine, "connect", short_wait)


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Registration)) or 0


def test_a_locked_database_answers_503_with_retry_after_and_stores_nothing(
    client: Any, database: Database, write_lock: Callable[[], None]
) -> None:
    response = client.post("/api/registrations", json=BODY, headers={"Idempotency-Key": "busy-1"})

    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["errors"]["_request"]
    assert "hanako" not in response.get_data(as_text=True)
    write_lock()
    assert count(database) == 0


def test_the_same_post_is_accepted_once_the_lock_is_gone(
    client: Any, database: Database, write_lock: Callable[[], None]
) -> None:
    refused = client.post("/api/registrations", json=BODY, headers={"Idempotency-Key": "busy-2"})
    write_lock()

    accepted = client.post("/api/registrations", json=BODY, headers={"Idempotency-Key": "busy-2"})

    assert (refused.status_code, accepted.status_code) == (503, 202)
    assert "Idempotent-Replayed" not in accepted.headers  # the refused post stored nothing
    assert count(database) == 1


def test_the_form_says_to_send_again_in_its_language(
    client: Any, database: Database, write_lock: Callable[[], None]
) -> None:
    response = post(client, VALID, lang="en")

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "send it again" in response.get_data(as_text=True)
    write_lock()
    assert count(database) == 0
