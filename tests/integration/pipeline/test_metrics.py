"""`/metrics` after a real run: the worker's step counts (through PROMETHEUS_MULTIPROC_DIR), the
intake's counts and latency, and the state gauges read at scrape time; only ops may read it."""

from __future__ import annotations

import base64
import socket
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.pipeline import Pipeline, person

OPS = "Basic " + base64.b64encode(b"ops:ops").decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_show_a_runs_real_values(pipeline: Pipeline, sandbox: Any, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    worker_port = _free_port()
    pipeline.configure(
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        METRICS_TOKEN="scrape-token-123",
        WORKER_METRICS_PORT=str(worker_port),
    )
    pipeline.start_worker()
    # This test process keeps the counts of every earlier test too: compare against a first scrape.
    before = samples(pipeline.client.get("/metrics", headers={"Authorization": OPS}).get_data(as_text=True))
    ids = [pipeline.register(person(number)) for number in range(3)]
    refused = pipeline.client.post("/api/registrations", json={"email": "not-an-address"})
    assert refused.status_code == 422
    assert set(pipeline.wait_settled(ids).values()) == {"synced"}

    assert pipeline.client.get("/metrics").status_code == 401
    assert pipeline.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    by_token = pipeline.client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert by_token.status_code == 200
    response = pipeline.client.get("/metrics", headers={"Authorization": OPS})
    assert response.status_code == 200
    found = samples(response.get_data(as_text=True))

    def value(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return found.get(key, 0.0) - before.get(key, 0.0)

    assert value("membersync_registrations_accepted_total", source="api") == 3
    assert value("membersync_registrations_rejected_total", reason="invalid") == 1
    assert value("membersync_intake_seconds_count", source="api") == 4  # three accepted, one refused
    for system in ("shopify", "smaregi", "hubspot", "email"):
        # Counted by the worker process, added up through the shared folder.
        assert value("membersync_step_outcomes_total", system=system, outcome="succeeded") == 3, system
    assert value("membersync_time_to_synced_seconds_count") == 3
    assert found[("membersync_registrations", (("status", "synced"),))] >= 3  # a gauge: what is true now
    assert ("membersync_queue_depth", (("queue", "membersync.realtime"),)) in found
    assert found[("membersync_rate_limit_capacity", (("system", "shopify"),))] > 0
    # The worker serves the same series itself (for a worker on another host than the web).
    with urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/metrics", timeout=10) as served:
        from_worker = samples(served.read().decode())
    key = ("membersync_step_outcomes_total", (("outcome", "succeeded"), ("system", "email")))
    assert from_worker[key] >= 3
    text = response.get_data(as_text=True)
    assert "@example.com" not in text and "Hanako" not in text
