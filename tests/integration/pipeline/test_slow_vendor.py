"""A slow vendor never slows the intake: no step holds the database while it waits on a vendor.

On SQLite (the embedded default, one writer at a time) with production timeouts and retry policies,
six registrations wait on a Shopify that answers after 3 s, and ten more POSTs each answer 202 within
a second. Before steps released the database during vendor calls, one such POST took 12 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from config.systems import SYSTEMS
from registrations.database import Database
from registrations.models import Registration
from tests.support.pipeline import Pipeline, person

SHOPIFY_LATENCY_MS = 3000


def _production_timings() -> dict[str, str]:
    """The defaults the Pipeline harness shortens, put back."""
    policies = {
        system.retry_variable: (
            f"attempts={system.default_retry.max_attempts},base={system.default_retry.base_seconds},"
            f"cap={system.default_retry.cap_seconds},budget={system.default_retry.budget_seconds}"
        )
        for system in SYSTEMS
    }
    return {
        "HTTP_READ_TIMEOUT_SECONDS": "10",
        "LOCK_WAIT_SECONDS": "5",
        "STEP_LEASE_SECONDS": "600",
        **policies,
    }


def _shopify_states(database: Database, ids: list[str]) -> list[str]:
    with database.session() as session:
        return [session.get(Registration, i).step("shopify").state for i in ids]  # type: ignore[union-attr]


def test_posts_answer_within_a_second_while_steps_wait_on_a_slow_vendor(
    clean_redis: str, sandbox: Any, tmp_path: Path
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'embedded.db'}")
    database.upgrade()
    pipeline = Pipeline(database, clean_redis, sandbox, tmp_path)
    try:
        pipeline.configure(**_production_timings())
        sandbox.faults("shopify", latency_ms=SHOPIFY_LATENCY_MS)
        pipeline.start_worker(concurrency=16)

        waiting = [pipeline.register(person(number)) for number in range(6)]
        deadline = time.monotonic() + 10
        while _shopify_states(database, waiting).count("running") < 6:
            assert time.monotonic() < deadline, _shopify_states(database, waiting)
            time.sleep(0.05)

        seconds = []
        for number in range(100, 110):
            started = time.monotonic()
            response = pipeline.client.post("/api/registrations", json=person(number))
            seconds.append(time.monotonic() - started)
            assert response.status_code == 202, response.get_json()
        # The six were still in their Shopify call the whole time.
        assert _shopify_states(database, waiting).count("running") >= 1
        assert max(seconds) < 1.0, seconds

        statuses = pipeline.wait_settled(waiting, timeout=120)
        assert set(statuses.values()) == {"synced"}, statuses
    finally:
        pipeline.stop()
        database.dispose()
