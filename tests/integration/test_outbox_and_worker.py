"""A registration travels intake → outbox → real Redis broker → real worker, and survives a broker outage."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from app import create_app
from config.settings import Settings
from config.systems import STARTS_DONE
from registrations.database import Database
from registrations.models import OutboxMessage, Registration
from registrations.outbox import relay
from sandbox.valkey import start_embedded_redis
from tasks.chains import chain_publisher

MINIMAL = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada"}
QUEUE = "membersync.realtime"


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def steps_run(database: Database, registration_id: str) -> dict[str, str | None]:
    """Which steps a worker has executed (each records its Celery task id); the steps a new
    registration has done already (the consent step: nothing decided yet) are not among them."""
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return {
            step.system: step.celery_task_id for step in registration.steps if step.system not in STARTS_DONE
        }


def outbox_row(database: Database, registration_id: str) -> OutboxMessage:
    with database.session() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.registration_id == registration_id))
        assert row is not None
        return row


def test_a_real_worker_runs_the_whole_chain(
    worker_factory: Callable[..., Any],
    clean_redis: str,
    database: Database,
    make_settings: Callable[..., Settings],
) -> None:
    celery = worker_factory(clean_redis)
    settings = make_settings(CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis)
    client = create_app(settings, database=database).test_client()

    registration_id = client.post("/api/registrations", json=MINIMAL).get_json()["id"]

    assert outbox_row(database, registration_id).published_at is not None
    assert wait_until(lambda: all(steps_run(database, registration_id).values())), steps_run(
        database, registration_id
    )
    task_ids = steps_run(database, registration_id)
    assert len(set(task_ids.values())) == 4  # four distinct tasks, one per system that runs
    assert celery.conf.task_acks_late and celery.conf.task_reject_on_worker_lost


def test_disabled_step_is_skipped_by_the_worker(
    worker_factory: Callable[..., Any],
    clean_redis: str,
    database: Database,
    make_settings: Callable[..., Settings],
) -> None:
    worker_factory(clean_redis, SYNC_SMAREGI_ENABLED="false")
    settings = make_settings(
        CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis, SYNC_SMAREGI_ENABLED="false"
    )
    client = create_app(settings, database=database).test_client()
    registration_id = client.post("/api/registrations", json=MINIMAL).get_json()["id"]
    assert wait_until(lambda: steps_run(database, registration_id)["email"] is not None)
    document = client.get(f"/api/registrations/{registration_id}").get_json()
    assert document["steps"]["smaregi"]["state"] == "skipped"
    assert steps_run(database, registration_id)["smaregi"] is None  # the chain never sent it


def test_broker_down_the_registration_is_kept_and_published_when_it_is_back(
    tmp_path: Path,
    worker_factory: Callable[..., Any],
    database: Database,
    make_settings: Callable[..., Settings],
) -> None:
    # A broker of this test's own: the machine's services are never stopped by a test.
    broker = start_embedded_redis(tmp_path / "broker")
    port = broker.port
    url = f"redis://127.0.0.1:{port}/0"
    settings = make_settings(CELERY_BROKER_URL=url, REDIS_URL=url, OUTBOX_RELAY_AFTER_SECONDS="1")
    web = create_app(settings, database=database)
    client = web.test_client()
    try:
        broker.stop()

        started = time.monotonic()
        response = client.post("/api/registrations", json=MINIMAL)
        assert response.status_code == 202
        assert time.monotonic() - started < 2.0  # a dead broker must not hold the request
        registration_id = response.get_json()["id"]
        row = outbox_row(database, registration_id)
        assert row.published_at is None and row.publish_attempts == 1 and row.last_error

        # Still down: the relay tries, keeps the row, and nothing is lost.
        celery = web.extensions["membersync"].celery
        assert relay(chain_publisher(celery), database, older_than_seconds=0) == 0
        assert outbox_row(database, registration_id).published_at is None

        broker = start_embedded_redis(tmp_path / "broker", port=port)
        assert relay(chain_publisher(celery), database, older_than_seconds=0) == 1
        assert outbox_row(database, registration_id).published_at is not None
        queued = redis.Redis.from_url(url).llen(QUEUE)
        assert queued == 1

        # And a real worker takes it from there.
        worker_factory(url)
        assert wait_until(lambda: all(steps_run(database, registration_id).values()))
        assert (
            relay(chain_publisher(celery), database, older_than_seconds=0) == 0
        )  # published once, not again
    finally:
        if broker.is_running():
            broker.stop()


def test_a_starting_worker_process_relays_what_was_left(
    tmp_path: Path, database: Database, settings: Settings, clean_redis: str, sandbox: Any
) -> None:
    client = create_app(settings, database=database).test_client()  # broker unreachable
    registration_id = client.post("/api/registrations", json=MINIMAL).get_json()["id"]
    assert outbox_row(database, registration_id).published_at is None

    # A real `celery worker` process, as the Procfile starts it, publishes leftovers at start.
    env = {
        **os.environ,
        "MEMBERSYNC_ENV": "test",
        "DATABASE_URL": database.url,
        "REDIS_URL": clean_redis,
        "CELERY_BROKER_URL": clean_redis,
        "OUTBOX_RELAY_AFTER_SECONDS": "1",
        **sandbox.env,
    }
    time.sleep(1.1)  # a leftover is older than the relay threshold; a younger one is still in flight
    command = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "worker", "-P", "threads", "-c", "2"]
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: outbox_row(database, registration_id).published_at is not None, 30)
        assert wait_until(lambda: all(steps_run(database, registration_id).values()), 30)
    finally:
        worker.terminate()
        worker.wait(20)
        log.close()


@pytest.mark.parametrize("count", [25])
def test_no_registration_is_lost_under_a_burst(
    worker_factory: Callable[..., Any],
    clean_redis: str,
    database: Database,
    make_settings: Callable[..., Settings],
    count: int,
) -> None:
    worker_factory(clean_redis)
    settings = make_settings(CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis)
    client = create_app(settings, database=database).test_client()
    ids = [
        client.post("/api/registrations", json={**MINIMAL, "email": f"burst{i}@example.com"}).get_json()["id"]
        for i in range(count)
    ]
    assert wait_until(lambda: all(all(steps_run(database, i).values()) for i in ids), timeout=60)


# RabbitMQ as the broker: tests/integration/pipeline runs the whole pipeline on it (a worker process,
# quorum queues, native delayed delivery for retries).
