"""A database made by an earlier release upgrades in place to the current head, keeping its rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from registrations.database import Database, alembic_config

PREVIOUS_HEAD = "0002"


@pytest.fixture()
def old_database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(database.url), PREVIOUS_HEAD)
    yield database
    database.dispose()


def _seed_previous_release(database: Database) -> None:
    # Written as the previous release wrote it: raw SQL, since today's models no longer match.
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO registrations (id, request_fingerprint, email, first_name, last_name, "
                "accepts_marketing, locale, source, status, created_at, updated_at) VALUES "
                "('r-1', 'f', 'hanako@example.com', '花子', '山田', 1, 'ja', 'api', 'partial', "
                "'2026-11-20 10:00:00', '2026-11-20 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO sync_steps (registration_id, system, state, external_id, attempts, updated_at) "
                "VALUES ('r-1', 'shopify', 'succeeded', 'gid://shopify/Customer/1', 1, "
                "'2026-11-20 10:00:01'),"
                " ('r-1', 'smaregi', 'dead', NULL, 10, '2026-11-20 10:05:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO outbox (task_name, registration_id, created_at, published_at, publish_attempts) "
                "VALUES ('membersync.pipeline.start', 'r-1', '2026-11-20 10:00:00', NULL, 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO dead_letters (registration_id, system, task_name, args, error_class, message, "
                "attempts, first_failed_at, last_failed_at, status) VALUES ('r-1', 'smaregi', "
                "'membersync.smaregi.upsert_member', '{}', 'TransientError', 'retries_exhausted', 10, "
                "'2026-11-20 10:05:00', '2026-11-20 10:05:00', 'open')"
            )
        )


def test_previous_head_upgrades_to_head_without_loss(old_database: Database) -> None:
    _seed_previous_release(old_database)
    old_database.upgrade()
    with old_database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() != PREVIOUS_HEAD
        registration = connection.execute(text("SELECT email, status FROM registrations")).one()
        steps = connection.execute(
            text("SELECT system, state, external_id FROM sync_steps ORDER BY id")
        ).all()
        outbox = connection.execute(text("SELECT registration_id, published_at FROM outbox")).all()
        letters = connection.execute(text("SELECT system, status FROM dead_letters")).all()
    assert tuple(registration) == ("hanako@example.com", "partial")
    assert [tuple(step) for step in steps] == [
        ("shopify", "succeeded", "gid://shopify/Customer/1"),
        ("smaregi", "dead", None),
        ("consent", "skipped", None),  # nothing was decided before consent had a step
    ]
    assert [tuple(row) for row in outbox] == [("r-1", None)]  # still waiting for the relay
    assert [tuple(row) for row in letters] == [("smaregi", "open")]
    assert "task_name" not in {
        column["name"] for column in inspect(old_database.engine).get_columns("outbox")
    }


def test_the_relay_still_publishes_an_outbox_row_of_the_previous_release(old_database: Database) -> None:
    from registrations.outbox import relay

    _seed_previous_release(old_database)
    old_database.upgrade()
    published: list[tuple[str, list[str]]] = []
    count = relay(
        lambda rid, systems: published.append((rid, list(systems))), old_database, older_than_seconds=0
    )
    # shopify succeeded and smaregi is dead: hubspot and email have no step rows, so they count as pending.
    assert count == 1 and published == [("r-1", ["hubspot", "email"])]
