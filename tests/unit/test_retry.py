"""Backoff with full jitter: bounded, honours the vendor's hint, and never outlives the broker."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from config.celery import LONGEST_COUNTDOWN_SECONDS, VISIBILITY_TIMEOUT_SECONDS
from config.settings import RetryPolicy, Settings
from registrations.retry import retries_exhausted, retry_delay

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 30),
    base_seconds=st.floats(0.01, 60),
    cap_seconds=st.floats(0.1, 7200),
    budget_seconds=st.floats(1, 86400),
)


@given(
    policy=policies,
    attempt=st.integers(1, 60),
    retry_after=st.none() | st.floats(0, 10_000),
    seed=st.integers(),
)
def test_delay_is_never_negative_nor_beyond_the_broker(
    policy: RetryPolicy, attempt: int, retry_after: float | None, seed: int
) -> None:
    delay = retry_delay(policy, attempt, retry_after=retry_after, rng=random.Random(seed))
    assert 0 <= delay <= LONGEST_COUNTDOWN_SECONDS < VISIBILITY_TIMEOUT_SECONDS
    if retry_after is None:
        assert delay <= min(policy.cap_seconds, policy.base_seconds * 2 ** (attempt - 1)) + 1e-9
    else:
        assert delay >= min(retry_after, LONGEST_COUNTDOWN_SECONDS)


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=1, cap_seconds=600, budget_seconds=3600)
    rng = random.Random(3)
    delays = {round(retry_delay(policy, 6, rng=rng), 3) for _ in range(50)}
    assert len(delays) > 40 and max(delays) <= 32


def test_exhaustion_by_attempts_or_budget() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1, cap_seconds=10, budget_seconds=100)
    assert not retries_exhausted(policy, 2, 10)
    assert retries_exhausted(policy, 3, 10)
    assert retries_exhausted(policy, 1, 100)


def test_every_policy_fits_the_visibility_timeout() -> None:
    for policy in Settings.from_env(environ={}).retry_policies.values():
        assert policy.cap_seconds <= LONGEST_COUNTDOWN_SECONDS
