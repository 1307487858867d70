"""Rate limits shared by every worker: the interface connectors call before each request.

Celery's own `rate_limit` is per worker (celery#5732); these budgets are global. The Redis token
bucket that implements them lives in `connectors.tokenbucket`; `Unlimited` is for unit tests and
one-off scripts.
"""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    """A budget of calls (or Shopify cost points) for one external system."""

    def acquire(self, cost: float = 1.0) -> None:
        """Take `cost` tokens now, or raise `RateLimited` with the wait in `retry_after`."""

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        """Correct the bucket from the vendor's own report of what is left."""

    def pause(self, seconds: float) -> None:
        """The vendor said wait (429 with Retry-After): nobody calls for `seconds`."""


class Unlimited:
    """No budget at all: every call goes through."""

    def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None
