"""Fixtures of the unit tests (no services: SQLite files and in-process fakes only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.world import World


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    """The pipeline in this process; what it publishes lands in `world.published`."""
    made = World(tmp_path)
    yield made
    made.database.dispose()
