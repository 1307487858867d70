"""Fixtures of the pipeline tests (the harness itself is tests/support/pipeline.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registrations.database import Database
from tests.support.pipeline import Pipeline


@pytest.fixture
def pipeline(
    database: Database, clean_redis: str, broker_url: str, sandbox: Any, tmp_path: Path
) -> Iterator[Pipeline]:
    """A pipeline on this test's database, a clean Redis and its broker (Redis unless the test is
    parametrized with `broker_url`); workers are stopped afterwards."""
    running = Pipeline(database, clean_redis, sandbox, tmp_path, broker_url=broker_url)
    yield running
    running.stop()


# Whole-pipeline runs are the slowest tests: each runs once, on the production database when CI
# provides PostgreSQL; the happy path alone also runs on SQLite (the embedded default).
BOTH_DATABASES = {"test_happy_path.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("TEST_DATABASE_URL"):
        return
    here = Path(__file__).parent
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        in_pipeline = Path(str(item.fspath)).parent == here
        if (
            in_pipeline
            and params.get("database_url") == "sqlite"
            and item.fspath.basename not in BOTH_DATABASES
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
