"""One reconciliation at a time, on a real Redis: the lock, and the fence every write checks."""

from __future__ import annotations

import pytest
import redis

from registrations.reconcile.lock import FenceLost, RunLock


def test_a_second_run_gets_no_lock_while_the_first_holds_it(clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    first, second = RunLock(client), RunLock(client)
    assert first.acquire() == 1
    assert second.acquire() is None
    first.check()  # still the holder of the newest fence
    first.release()
    assert second.acquire() == 2


def test_a_run_whose_lock_expired_stops_writing_once_a_newer_run_took_over(clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    now = [0.0]
    stalled = RunLock(client, seconds=1.0, clock=lambda: now[0])
    assert stalled.acquire() == 1
    client.delete("membersync:lock:reconcile")  # its expiry passed while it stalled
    newer = RunLock(client, seconds=1.0)
    assert newer.acquire() == 2
    with pytest.raises(FenceLost):
        stalled.check()  # the fence moved on: not even a renewal is tried
    now[0] = 0.6
    with pytest.raises(FenceLost):
        stalled.check()  # and its lock is somebody else's
    newer.check()


def test_an_expired_lock_is_noticed_at_the_next_renewal_even_with_nobody_else(clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    now = [0.0]
    lock = RunLock(client, seconds=1.0, clock=lambda: now[0])
    lock.acquire()
    client.delete("membersync:lock:reconcile")
    now[0] = 0.6  # half the expiry: the renewal finds the key gone
    with pytest.raises(FenceLost):
        lock.check()
