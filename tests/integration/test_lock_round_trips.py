"""The person lock and the lease notes cost the fewest round trips to Redis, and still exclude."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from registrations.leases import EPOCH_KEY, RECEIVED_PREFIX, Leases, stop_heartbeat
from registrations.locks import LockBusy, email_lock, email_lock_key

KEY = b"k" * 32
LOCK: dict[str, Any] = {"key": KEY, "timeout": 30.0, "wait": 0.05}


class Counting(redis.Redis):
    """A client that counts its round trips (one per command or pipeline)."""

    sent = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        Counting.sent += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(raise_on_error: bool = True) -> Any:
            Counting.sent += 1
            return execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


@pytest.fixture
def client(clean_redis: str) -> Iterator[Counting]:
    stop_heartbeat()
    connection = Counting(connection_pool=redis.ConnectionPool.from_url(clean_redis))
    yield connection
    connection.close()


@pytest.mark.parametrize("holder", [None, "host:1:a"])
def test_a_lock_costs_one_round_trip_to_take_and_one_to_release(client: Counting, holder: str | None) -> None:
    with email_lock(client, "a@example.com", holder=holder, **LOCK):  # loads the scripts
        pass
    before = Counting.sent
    with email_lock(client, "a@example.com", holder=holder, **LOCK):
        assert Counting.sent - before == 1
    assert Counting.sent - before == 2
    assert not client.exists(email_lock_key("a@example.com", KEY))


def test_a_held_lock_excludes_and_a_lock_taken_over_is_not_released_by_its_old_holder(
    client: Counting,
) -> None:
    name = email_lock_key("a@example.com", KEY)
    with email_lock(client, "a@example.com", **LOCK):
        with pytest.raises(LockBusy), email_lock(client, "A@Example.com", **LOCK):
            pass
        client.set(name, "another worker's token")  # ours expired and another took it
    assert client.get(name) == b"another worker's token"


def test_a_finished_message_is_dropped_with_the_next_note_in_one_round_trip(client: Counting) -> None:
    leases = Leases(client)
    leases.received("host:1:a", "task-1:0", "reg-1")
    before = Counting.sent
    leases.done("host:1:a", "task-1:0")
    assert Counting.sent == before
    leases.received("host:1:a", "task-2:0", "reg-1")
    assert Counting.sent - before == 1
    assert client.hgetall(RECEIVED_PREFIX + "host:1:a") == {b"task-2:0": b"reg-1"}
    leases.done("host:1:a", "task-2:0")
    leases.renew("host:1:a")  # the heartbeat drops it too
    assert client.hgetall(RECEIVED_PREFIX + "host:1:a") == {}


def test_a_hold_without_a_lease_is_not_taken_over_by_a_leased_worker(client: Counting) -> None:
    """A process without a lease (no heartbeat yet, a one-off script) has no lease key: its token
    must not read as a holder whose lease is gone, or any leased worker would take the lock at once
    and two find-or-creates of one person would run together."""
    client.set(EPOCH_KEY, 0)  # lease records old enough for a missing lease key to mean death
    with (
        email_lock(client, "a@example.com", **LOCK),
        pytest.raises(LockBusy),
        email_lock(client, "a@example.com", holder="host:2:b", **LOCK),
    ):
        pass
