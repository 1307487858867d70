"""Worker heartbeat leases on a real Redis: who counts as dead, the person lock and the step claim of a
dead holder, and the heartbeat."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import select

from config.settings import Settings
from registrations.database import Database
from registrations.leases import (
    EPOCH_KEY,
    LEASE_PREFIX,
    LEASE_SECONDS,
    BrokerView,
    Heartbeat,
    Leases,
    current_holder,
    start_heartbeat,
    stop_heartbeat,
)
from registrations.locks import LockBusy, email_lock
from registrations.models import Registration, SyncStep
from registrations.sync import Claimed, Finished, StepLedger
from tasks.leases import redis_broker_view

KEY = b"k" * 32


@pytest.fixture
def client(clean_redis: str) -> Iterator[redis.Redis]:
    # This process holds no lease (a test run before this one, on this process, may have left one).
    stop_heartbeat()
    connection = redis.Redis.from_url(clean_redis)
    yield connection
    connection.close()


def age_records(client: redis.Redis, seconds: float) -> None:
    """Make the lease records `seconds` old (as if Redis had kept them that long)."""
    now = int(client.time()[0])  # type: ignore[index]
    client.set(EPOCH_KEY, now - int(seconds))


def test_a_holder_is_dead_only_once_its_lease_is_gone_and_the_records_are_a_lease_old(
    client: redis.Redis,
) -> None:
    leases = Leases(client)
    leases.renew("host:1:a")
    leases.renew("host:2:b")
    client.delete(LEASE_PREFIX + "host:2:b")
    # Records younger than a lease (Redis restarted empty a moment ago): nobody is judged dead,
    # because a live holder may not have renewed since.
    assert leases.dead(["host:1:a", "host:2:b"]) == set()
    age_records(client, LEASE_SECONDS)
    assert leases.dead(["host:1:a", "host:2:b"]) == {"host:2:b"}
    assert client.pttl(LEASE_PREFIX + "host:1:a") <= LEASE_SECONDS * 1000
    # A renewal tells whether the lease had lapsed in between.
    assert leases.renew("host:1:a") is True
    assert leases.renew("host:2:b") is False


def test_the_person_lock_of_a_dead_holder_is_taken_over_at_once_and_a_live_ones_is_not(
    client: redis.Redis,
) -> None:
    leases = Leases(client)
    age_records(client, LEASE_SECONDS)
    leases.renew("host:1:dead")
    leases.renew("host:2:live")
    lock = dict(key=KEY, timeout=60.0, wait=0.2)
    with email_lock(client, "Someone@Example.com", holder="host:1:dead", **lock):
        # Held by a live holder: the second waits and gives up.
        with pytest.raises(LockBusy), email_lock(client, "someone@example.com", holder="host:2:live", **lock):
            pass
        client.delete(LEASE_PREFIX + "host:1:dead")  # the holder dies holding the lock
        with email_lock(client, "someone@example.com", holder="host:2:live", **lock):
            pass  # taken over without waiting for the lock's 60 s timeout


def test_the_heartbeat_holds_a_lease_and_a_clean_stop_releases_it(client: redis.Redis) -> None:
    stop_heartbeat()  # one an in-process test worker of an earlier test may have left running
    leases = Leases(client)
    beat = start_heartbeat(leases, interval=0.05)
    try:
        assert isinstance(beat, Heartbeat)
        assert current_holder() == beat.holder
        assert client.exists(LEASE_PREFIX + beat.holder)
    finally:
        stop_heartbeat()
    assert current_holder() is None
    assert not client.exists(LEASE_PREFIX + beat.holder)


def running_registration(database: Database, holder: str, delivery: str) -> str:
    """A registration whose Shopify step is running under `holder`'s claim with message `delivery`."""
    with database.session() as session:
        registration = Registration(
            request_fingerprint="f", email="r@example.com", first_name="A", last_name="B"
        )
        registration.steps = [
            SyncStep(system="shopify", state="running", attempts=1, celery_task_id=delivery, holder=holder)
        ]
        session.add(registration)
        session.flush()
        return registration.id


def test_a_dead_holders_step_is_claimed_at_once_and_a_live_holders_never(
    client: redis.Redis, database: Database, make_settings: Callable[..., Settings]
) -> None:
    leases = Leases(client)
    age_records(client, LEASE_SECONDS)
    leases.renew("host:1:live")
    ledger = StepLedger(database, make_settings(), "shopify", leases=leases)
    live = running_registration(database, "host:1:live", "message-1")
    dead = running_registration(database, "host:2:dead", "message-2")
    # A live holder keeps its step, even against its own message redelivered elsewhere.
    assert ledger.claim(live, "message-9") == Finished("held")
    assert ledger.claim(live, "message-1") == Finished("held")
    # A dead holder's step goes to the first delivery that asks (the step lease is 10 minutes).
    assert isinstance(ledger.claim(dead, "message-3"), Claimed)
    assert ledger.claim(dead, "message-4") == Finished("held")  # the new claim holds it now
    with database.session() as session:
        step = session.scalars(select(SyncStep).where(SyncStep.registration_id == dead)).one()
        assert (step.celery_task_id, step.attempts, step.holder) == ("message-3", 2, None)


def test_the_redis_broker_view_tells_orphaned_messages_from_waiting_ones(client: redis.Redis) -> None:
    def message(registration_id: str) -> dict[str, object]:
        body = base64.b64encode(json.dumps([[registration_id], {}, {}]).encode()).decode()
        headers = {"task": "membersync.shopify.create_customer", "id": registration_id}
        return {"body": body, "headers": headers, "properties": {"body_encoding": "base64"}}

    now = time.time()
    for tag, registration_id, delivered in (("t1", "old", now - 60), ("t2", "young", now - 1)):
        client.hset("unacked", tag, json.dumps([message(registration_id), "", "membersync.realtime"]))
        client.zadd("unacked_index", {tag: delivered})
    client.lpush("membersync.realtime", json.dumps(message("queued")))
    url = client.connection_pool.connection_kwargs
    view = redis_broker_view(
        f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}", ["membersync.realtime"]
    )
    assert view == BrokerView(orphaned=frozenset({"old"}), in_flight=frozenset({"young", "queued"}))
    assert redis_broker_view("amqp://guest@localhost//", ["membersync.realtime"]) is None
