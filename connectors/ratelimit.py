"""Rate limits shared by every worker: the interface connectors call before each request.

Celery's own `rate_limit` is per worker (celery#5732); these budgets are global. The Redis token
bucket that implements them lives in `connectors.tokenbucket`; `Unlimited` is for unit tests and
one-off scripts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

# Within one pipeline step, a call after the step's first granted call may borrow up to one bucket's
# capacity (tokens go negative and everyone waits for the refill). Without it, a step that needs two
# calls livelocks under contention: each token that comes back is taken by another step's *first*
# call, whose work is then thrown away when its second call is refused. Bucket sizes account for
# the debt (see `rolling_window_bucket`).
_step: ContextVar[dict[str, bool] | None] = ContextVar("membersync_rate_limit_step", default=None)


@contextmanager
def one_step() -> Iterator[None]:
    """Mark the calls of one pipeline step: after its first grant, the rest of it may borrow."""
    token = _step.set({"granted": False})
    try:
        yield
    finally:
        _step.reset(token)


def may_borrow() -> bool:
    """Whether the current call continues a step that already got a token."""
    step = _step.get()
    return bool(step and step["granted"])


def note_granted() -> None:
    """Record that the current step got a token (its later calls may borrow)."""
    step = _step.get()
    if step is not None:
        step["granted"] = True


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
