"""The Redis window log of rolling-window vendors: exactly `limit` calls per window, an answered call
freed one window after its answer, an unanswered one held until it can no longer reach the vendor."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from connectors.errors import PermanentError, RateLimited
from connectors.ratelimit import one_step
from connectors.rollingwindow import RedisRollingWindow
from sandbox.common.ratelimit import RollingWindowLimiter

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_client(clean_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis)
    yield client
    client.close()


def window(client: redis.Redis, limit: int, seconds: float, *, reserve: int = 0) -> RedisRollingWindow:
    return RedisRollingWindow(
        client,
        name=f"test-{uuid.uuid4().hex[:12]}",
        limit=limit,
        window_seconds=seconds,
        flight_seconds=30.0,
        reserve=reserve,
    )


def granted(log: RedisRollingWindow, *, answer: bool = True) -> bool:
    try:
        log.acquire()
    except RateLimited:
        return False
    if answer:
        log.observe(available=float("inf"))
    return True


def test_grants_exactly_the_limit_in_a_window(redis_client: redis.Redis) -> None:
    log = window(redis_client, 5, 60.0)
    assert [granted(log) for _ in range(7)] == [True] * 5 + [False] * 2
    assert log.state()["tokens"] == 0
    with pytest.raises(RateLimited) as refused:
        log.acquire()
    assert refused.value.retry_after is not None and 50 < refused.value.retry_after <= 60


def test_an_answered_call_is_freed_one_window_after_its_answer_an_unanswered_one_is_not(
    redis_client: redis.Redis,
) -> None:
    log = window(redis_client, 2, 0.3)
    assert granted(log, answer=True)
    assert granted(log, answer=False)  # no answer yet: it may still reach the vendor
    assert not granted(log)
    time.sleep(0.4)
    assert granted(log, answer=False)  # the answered call's place came back
    with pytest.raises(RateLimited) as refused:
        log.acquire()  # both places held by calls under way: look again soon, not in 30 s
    assert refused.value.retry_after is not None and refused.value.retry_after <= 0.3


def test_a_first_call_leaves_the_reserve_to_steps_under_way(redis_client: redis.Redis) -> None:
    log = window(redis_client, 4, 60.0, reserve=1)
    assert [granted(log) for _ in range(4)] == [True, True, True, False]
    with one_step():
        assert not granted(log)  # a step's first call: outside the reserve too
        other = window(redis_client, 4, 60.0)
        other.acquire()  # the step got a place elsewhere: its next call here may use the reserve
        assert granted(log)
        assert not granted(log)  # the window itself is never exceeded


def test_the_default_reserve_is_a_twentieth_of_the_limit(redis_client: redis.Redis) -> None:
    log = RedisRollingWindow(redis_client, name="a", limit=40, window_seconds=60, flight_seconds=1)
    assert sum(granted(log) for _ in range(40)) == 38
    small = RedisRollingWindow(redis_client, name="b", limit=4, window_seconds=60, flight_seconds=1)
    assert sum(granted(small) for _ in range(5)) == 4  # no reserve below 20 a window


def test_the_limit_the_vendor_reports_for_this_window_replaces_the_configured_one(
    redis_client: redis.Redis,
) -> None:
    log = window(redis_client, 2, 60.0)
    assert granted(log)
    log.observe(available=0, capacity=30, per_second=1.0)  # another window's limit: ignored
    assert granted(log) and not granted(log)
    log.observe(available=0, capacity=4, per_second=4 / 60)  # this window's: taken by every worker
    assert granted(log)
    assert window_named(redis_client, log.name).state()["capacity"] == 4
    assert granted(log) and not granted(log)


def window_named(
    client: redis.Redis, name: str, *, limit: int = 2, seconds: float = 60.0
) -> RedisRollingWindow:
    return RedisRollingWindow(client, name=name, limit=limit, window_seconds=seconds, flight_seconds=30.0)


def test_pause_holds_everyone_and_a_cost_above_the_limit_is_permanent(redis_client: redis.Redis) -> None:
    log = window(redis_client, 3, 1.0)
    log.pause(0.5)
    with pytest.raises(RateLimited) as refused:
        log.acquire()
    assert refused.value.retry_after is not None and 0.3 < refused.value.retry_after <= 0.5
    assert log.state()["paused_for"] > 0.3
    with pytest.raises(PermanentError):
        log.acquire(4)


def test_keys_expire_and_carry_no_personal_data(redis_client: redis.Redis) -> None:
    log = window(redis_client, 3, 0.2)
    assert granted(log)
    ttl: Any = redis_client.pttl(log.key)
    members: Any = redis_client.zrange(log.key, 0, -1)
    assert 0 < ttl <= 31_200  # flight + window + 1 s
    assert [len(member) for member in members] == [34]  # a uuid's hex + ":1"


def test_workers_sharing_the_window_never_overrun_a_vendor_counting_on_arrival(
    redis_client: redis.Redis,
) -> None:
    # Two "worker processes" (limiters on one key) x 3 threads against the emulators' own rolling
    # window, which counts a call when it arrives: between our grant and the answer we observe.
    name = f"test-{uuid.uuid4().hex[:12]}"
    logs = [window_named(redis_client, name, limit=3, seconds=0.2) for _ in "ab"]
    vendor = RollingWindowLimiter(3, 0.2)
    answers: list[bool] = []
    end = time.monotonic() + 0.8

    def caller(log: RedisRollingWindow) -> None:
        while time.monotonic() < end:
            try:
                log.acquire()
            except RateLimited as refused:
                time.sleep(refused.retry_after or 0.01)
                continue
            answers.append(vendor.hit().allowed)
            log.observe(available=float("inf"))

    threads = [threading.Thread(target=caller, args=(log,)) for log in logs for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) >= 6  # the window was filled more than once
    assert all(answers), f"{answers.count(False)} of {len(answers)} calls over the vendor's limit"
