"""The Alembic migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from registrations.database import Database
from registrations.models import Base


def test_head_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_every_table_exists(database: Database) -> None:
    tables = set(inspect(database.engine).get_table_names())
    expected = {"registrations", "sync_steps", "identities", "outbox", "dead_letters", "reconciliation_runs"}
    assert expected <= tables


def test_upgrade_is_idempotent(database: Database) -> None:
    database.upgrade()  # already at head: a second run changes nothing and does not fail
    assert "alembic_version" in inspect(database.engine).get_table_names()
