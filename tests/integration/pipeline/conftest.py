"""Fixtures of the pipeline tests (the harness itself is tests/support/pipeline.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.database import Database
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
