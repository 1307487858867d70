"""A worker SIGKILLed in the middle of a run loses nothing and duplicates nothing once work resumes."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from registrations.models import SyncStep
from tests.support.pipeline import Pipeline, held_by_system, person

COUNT = 30


def succeeded_steps(pipeline: Pipeline) -> int:
    with pipeline.database.session() as session:
        return int(session.scalar(select(func.count()).where(SyncStep.state == "succeeded")) or 0)


def test_a_killed_worker_loses_and_duplicates_nothing(pipeline: Pipeline, sandbox: Any) -> None:
    # Short lease and sweep so the test need not wait the production quarter of an hour; the
    # beat runs the relay and the stalled-chain sweep every two seconds.
    # The killed worker's per-email locks expire after LOCK_TIMEOUT_SECONDS.
    pipeline.configure(
        STEP_LEASE_SECONDS="6",
        STALLED_AFTER_SECONDS="4",
        OUTBOX_RELAY_INTERVAL_SECONDS="2",
        LOCK_TIMEOUT_SECONDS="5",
    )
    for vendor in ("shopify", "smaregi", "hubspot"):
        sandbox.faults(vendor, latency_ms=150)  # slow vendors: the kill lands mid-flight
    worker = pipeline.start_worker(concurrency=8)
    ids = [pipeline.register(person(number)) for number in range(COUNT)]
    deadline = time.monotonic() + 60
    while succeeded_steps(pipeline) < COUNT and time.monotonic() < deadline:
        time.sleep(0.05)
    assert succeeded_steps(pipeline) < COUNT * 4, "the run finished before the kill"

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    in_flight = pipeline.statuses()
    assert any(status != "synced" for status in in_flight.values())

    pipeline.start_worker(concurrency=8)
    pipeline.start_beat()
    statuses = pipeline.wait_settled(ids, timeout=150)

    assert set(statuses.values()) == {"synced"}, statuses
    held = held_by_system(pipeline.sandbox)
    emails = {f"member{number}@example.com" for number in range(COUNT)}
    for system in ("shopify", "smaregi", "hubspot"):
        assert set(held[system]) == emails, system
        assert max(held[system].values()) == 1, (system, held[system].most_common(3))
    # Mail cannot be taken back: a welcome sent just before the kill and sent again carries the
    # same Message-ID, so the receiving side shows it once. Every address got exactly one id.
    ids_by_recipient: dict[str, set[str]] = defaultdict(set)
    for message in sandbox.messages():
        for address in message["recipients"]:
            ids_by_recipient[address.lower()].add(message["message_id"].strip())
    assert set(ids_by_recipient) == emails
    assert all(len(message_ids) == 1 for message_ids in ids_by_recipient.values())
