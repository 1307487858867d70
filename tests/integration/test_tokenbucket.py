"""The Redis token buckets: one budget per vendor, shared by every worker, timed by the Redis server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from connectors.errors import PermanentError, RateLimited
from connectors.ratelimit import RateLimiter, one_step
from connectors.rollingwindow import RedisRollingWindow
from connectors.tokenbucket import (
    RedisTokenBucket,
    client_limiters,
    limiters_from_settings,
    rolling_window_bucket,
)
from sandbox.valkey import start_embedded_redis

pytestmark = pytest.mark.integration

EPSILON = 1e-6


def server_time(client: redis.Redis) -> float:
    seconds, microseconds = cast(tuple[int, int], client.time())
    return seconds + microseconds / 1_000_000


def sync(reply: Any) -> Any:
    """redis-py types replies as sync-or-async; these clients are sync."""
    return reply


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(clean_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis)
    yield client
    client.close()


def test_fresh_bucket_lets_exactly_capacity_through(redis_client: redis.Redis) -> None:
    name = unique_name()
    bucket = RedisTokenBucket(redis_client, name=name, capacity=5, per_second=0.001)
    limiter: RateLimiter = bucket  # it is the interface the connectors call
    for _ in range(5):
        limiter.acquire()
    with pytest.raises(RateLimited) as refused:
        limiter.acquire()
    assert refused.value.system == name
    assert str(refused.value) == f"{name} budget spent"
    assert refused.value.retry_after == pytest.approx(1 / 0.001, rel=1e-3)
    with pytest.raises(RateLimited) as refused_more:
        limiter.acquire(2.5)
    assert refused_more.value.retry_after == pytest.approx(2.5 / 0.001, rel=1e-3)
    # A refusal takes nothing.
    assert bucket.state()["tokens"] == pytest.approx(0, abs=0.01)
    assert bucket.key == f"membersync:ratelimit:{name}"


def test_cost_above_capacity_is_permanent(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=10, per_second=1)
    with pytest.raises(PermanentError):
        bucket.acquire(11)
    with pytest.raises(ValueError):
        bucket.acquire(-1)
    bucket.acquire(10)


def test_refill_follows_the_server_clock(redis_client: redis.Redis) -> None:
    capacity, rate = 1000.0, 4000.0
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=capacity, per_second=rate)
    before_take = server_time(redis_client)
    bucket.acquire(capacity)
    after_take = server_time(redis_client)
    time.sleep(0.1)
    before_read = server_time(redis_client)
    tokens = bucket.state()["tokens"]
    after_read = server_time(redis_client)
    assert (
        (before_read - after_take) * rate - EPSILON <= tokens <= (after_read - before_take) * rate + EPSILON
    )
    assert 0 < tokens < capacity
    time.sleep(0.2)  # 800 more tokens at most, but never above capacity
    assert bucket.state() == {"tokens": capacity, "capacity": capacity, "per_second": rate, "paused_for": 0}
    bucket.acquire(capacity)


def test_budget_is_shared_by_clients_and_threads(clean_redis: str) -> None:
    name, capacity, rate, duration = unique_name(), 20.0, 200.0, 0.5
    clients = [redis.Redis.from_url(clean_redis) for _ in range(2)]
    granted = [0] * 4
    refused = [0] * 4
    start = threading.Barrier(5)

    def hammer(index: int) -> None:
        # Each thread its own bucket object on one of two connections, as separate workers would be.
        bucket = RedisTokenBucket(clients[index % 2], name=name, capacity=capacity, per_second=rate)
        start.wait()
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            try:
                bucket.acquire()
            except RateLimited:
                refused[index] += 1
            else:
                granted[index] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    began = server_time(clients[0])
    start.wait()
    for thread in threads:
        thread.join()
    ended = server_time(clients[0])
    for client in clients:
        client.close()
    assert sum(granted) <= capacity + (ended - began) * rate + EPSILON
    assert sum(granted) > capacity  # the refill was shared too
    assert sum(refused) > 0
    assert all(granted)


def test_observe_only_lowers_tokens_and_takes_the_vendor_sizes(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=10, per_second=0.001)
    bucket.observe(available=3)
    assert bucket.state()["tokens"] == pytest.approx(3, abs=0.01)
    bucket.observe(available=8)  # the vendor may not have seen our latest calls yet: never raise
    assert bucket.state()["tokens"] == pytest.approx(3, abs=0.01)
    bucket.observe(available=100, capacity=5, per_second=2.0)
    state = bucket.state()
    assert (state["capacity"], state["per_second"]) == (5, 2.0)
    assert 3 <= state["tokens"] < 3.2
    # A second worker's bucket object (configured with the old sizes) sees the vendor's sizes.
    other = RedisTokenBucket(redis_client, name=bucket.name, capacity=10, per_second=0.001)
    other.acquire(3)
    with pytest.raises(RateLimited) as refused:
        other.acquire(1)
    assert refused.value.retry_after is not None
    assert 0.4 < refused.value.retry_after <= 0.5
    bucket.observe(available=100, capacity=1)  # tokens never above the new capacity
    time.sleep(0.6)
    assert bucket.state()["tokens"] == 1
    with pytest.raises(PermanentError):
        bucket.acquire(2)


def test_pause_blocks_everyone_then_tokens_flow_again(redis_client: redis.Redis, clean_redis: str) -> None:
    name = unique_name()
    bucket = RedisTokenBucket(redis_client, name=name, capacity=5, per_second=100)
    other_client = redis.Redis.from_url(clean_redis)
    other = RedisTokenBucket(other_client, name=name, capacity=5, per_second=100)
    bucket.pause(0.3)
    bucket.pause(0.01)  # a shorter pause does not cut the running one
    with pytest.raises(RateLimited) as refused:
        other.acquire()
    other_client.close()
    wait = refused.value.retry_after
    assert wait is not None
    assert 0.2 < wait <= 0.3
    assert 0.2 < bucket.state()["paused_for"] <= 0.3
    time.sleep(wait + 0.02)
    for _ in range(5):
        bucket.acquire()
    assert bucket.state()["paused_for"] == 0


def test_pause_empties_the_bucket(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=10, per_second=1)
    bucket.pause(0.05)
    time.sleep(0.08)
    # Only what refilled during the pause is there (0.08 tokens), not the 10 from before.
    with pytest.raises(RateLimited) as refused:
        bucket.acquire()
    assert refused.value.retry_after is not None
    assert 0.5 < refused.value.retry_after < 0.95


def test_acquire_survives_a_flushed_script_cache(tmp_path: Path) -> None:
    # A server of its own: SCRIPT FLUSH empties the whole server's script cache, so on the shared
    # one it would pull the scripts from under the tests running beside it.
    server = start_embedded_redis(tmp_path / "valkey")
    redis_client = redis.Redis.from_url(f"{server.connection_url}/0")
    try:
        bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=3, per_second=0.001)
        bucket.acquire()
        redis_client.execute_command("SCRIPT", "FLUSH")  # what a restarted Redis looks like to EVALSHA
        bucket.acquire()
        fresh_object = RedisTokenBucket(redis_client, name=bucket.name, capacity=3, per_second=0.001)
        redis_client.execute_command("SCRIPT", "FLUSH")
        fresh_object.acquire()
        with pytest.raises(RateLimited):
            bucket.acquire()
    finally:
        redis_client.close()
        server.stop()


def test_idle_buckets_expire_but_not_during_a_pause(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=2, per_second=100)
    bucket.acquire()
    assert 0 < sync(redis_client.pttl(bucket.key)) <= 40  # twice the 20 ms it takes to fill
    time.sleep(0.1)
    assert not redis_client.exists(bucket.key)
    bucket.pause(0.3)
    assert sync(redis_client.pttl(bucket.key)) > 300
    assert redis_client.hget(bucket.key, "tokens") is not None
    assert set(sync(redis_client.hkeys(bucket.key))) == {b"tokens", b"ts", b"blocked_until"}


def test_limiters_from_settings_never_exceed_the_vendor_limits(redis_client: redis.Redis) -> None:
    env = {
        "MEMBERSYNC_ENV": "test",
        "SHOPIFY_BUCKET_SIZE": "1000",
        "SHOPIFY_RESTORE_RATE": "50",
        "SMAREGI_RATE_LIMIT_PER_SECOND": "0.5",
        "HUBSPOT_RATE_LIMIT_PER_10S": "190",
    }
    limiters = limiters_from_settings(Settings.from_env(environ=env), redis_client)
    assert set(limiters) == {"shopify", "smaregi", "hubspot"}
    assert limiters["shopify"].state()["capacity"] == 1000
    assert limiters["shopify"].state()["per_second"] == 50
    assert limiters["smaregi"].state()["capacity"] == 1
    assert limiters["smaregi"].state()["per_second"] == 0.5
    # Rolling-window vendors get the window log itself (connectors.rollingwindow), at the plan's limit.
    hubspot = limiters["hubspot"]
    assert isinstance(hubspot, RedisRollingWindow)
    assert (hubspot.limit, hubspot.window_seconds) == (190, 10.0)
    assert hubspot.state()["capacity"] == 190
    assert hubspot.key == "membersync:ratelimit:hubspot:window"


def test_smaregi_per_second_budgets_are_window_logs_at_the_limit(redis_client: redis.Redis) -> None:
    env = {"MEMBERSYNC_ENV": "test", "SMAREGI_RATE_LIMIT_PER_SECOND": "10"}
    buckets = client_limiters(Settings.from_env(environ=env), redis_client)["smaregi"]
    for bucket in buckets.values():
        assert isinstance(bucket, RedisRollingWindow)
        assert (bucket.limit, bucket.window_seconds) == (10, 1.0)


def test_rolling_window_sizing() -> None:
    capacity, per_second = rolling_window_bucket(100, 10)
    assert capacity == 10
    assert 2 * capacity + per_second * 11 == pytest.approx(100)
    assert rolling_window_bucket(5, 10)[0] == 1
    with pytest.raises(ValueError):
        rolling_window_bucket(1, 10)


@settings(max_examples=30, deadline=None, database=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0.1, 4.0), st.sampled_from([0.0, 0.0, 0.002, 0.005])), min_size=1, max_size=12
    )
)
def test_granted_never_exceeds_capacity_plus_refill(redis_url: str, steps: list[tuple[float, float]]) -> None:
    capacity, rate = 5.0, 50.0
    client = redis.Redis.from_url(redis_url)
    try:
        bucket = RedisTokenBucket(client, name=unique_name(), capacity=capacity, per_second=rate)
        began = server_time(client)
        granted = 0.0
        for cost, wait in steps:
            try:
                bucket.acquire(cost)
            except RateLimited as refused:
                # Never refused while a full bucket minus what we took would still cover it.
                assert granted + cost > capacity
                assert refused.retry_after is not None
                assert 0 < refused.retry_after <= cost / rate + EPSILON
            else:
                granted += cost
            time.sleep(wait)
        ended = server_time(client)
        assert granted <= capacity + (ended - began) * rate + EPSILON
    finally:
        client.close()


def test_a_step_under_way_borrows_so_contention_cannot_livelock_it(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=f"borrow-{uuid.uuid4().hex}", capacity=1, per_second=0.01)
    outside = RedisTokenBucket(redis_client, name=bucket.name, capacity=1, per_second=0.01)
    with one_step():
        bucket.acquire()  # the step's first call takes the last token
        bucket.acquire()  # its second call borrows instead of throwing the first call's work away
        with pytest.raises(RateLimited):
            bucket.acquire()  # but never more than one capacity's worth
    with pytest.raises(RateLimited) as refused:
        outside.acquire()  # everyone else waits until the debt is paid back
    assert refused.value.retry_after == pytest.approx(200, rel=0.05)
    with pytest.raises(RateLimited):
        bucket.acquire()  # outside a step, no borrowing at all


def test_vendor_feedback_rides_on_the_next_acquire(redis_client: redis.Redis) -> None:
    bucket = RedisTokenBucket(redis_client, name=unique_name(), capacity=10, per_second=0.001)
    bucket.acquire(1)
    other = RedisTokenBucket(redis_client, name=bucket.name, capacity=10, per_second=0.001)
    bucket.observe(available=4, capacity=6)
    bucket.observe(available=5)  # two reports before the next acquire: the lower one holds
    # No round trip of its own: another worker does not see it yet...
    assert other.state()["capacity"] == 10 and other.state()["tokens"] == pytest.approx(9, abs=0.01)
    # ...and does once this worker's next acquire has carried it (applied before the take).
    bucket.acquire(1)
    state = other.state()
    assert state["capacity"] == 6 and state["tokens"] == pytest.approx(3, abs=0.01)
    # Feedback held when the acquire is refused is applied all the same.
    bucket.observe(available=0)
    with pytest.raises(RateLimited):
        bucket.acquire(1)
    assert other.state()["tokens"] == pytest.approx(0, abs=0.01)
