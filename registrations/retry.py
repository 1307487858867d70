"""Retry delays: exponential backoff with full jitter, honouring the vendor's own hint."""

from __future__ import annotations

import random

from config.celery import LONGEST_COUNTDOWN_SECONDS
from config.settings import RetryPolicy


def retry_delay(
    policy: RetryPolicy, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter spreads a burst of failures over the whole window instead of synchronising them;
    a Retry-After is a floor. Never beyond the longest countdown the broker can hold safely.
    """
    ceiling = min(policy.cap_seconds, policy.base_seconds * (2 ** max(0, attempt - 1)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, float(LONGEST_COUNTDOWN_SECONDS))


def retries_exhausted(policy: RetryPolicy, attempts: int, elapsed_seconds: float) -> bool:
    """True when another attempt would exceed the policy's attempts or time budget."""
    return attempts >= policy.max_attempts or elapsed_seconds >= policy.budget_seconds


def deferral_delay(retry_after: float | None, *, rng: random.Random | None = None) -> float:
    """Seconds to wait when a step was deferred (our own rate limit, another worker's lock).

    The wait the budget asked for, plus up to half again of jitter so deferred steps do not all
    come back at the same instant; a short default when no wait is known.
    """
    base = retry_after if retry_after and retry_after > 0 else 0.5
    return min(base * (1 + (rng or random).uniform(0, 0.5)), float(LONGEST_COUNTDOWN_SECONDS))
