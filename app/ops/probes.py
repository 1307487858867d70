"""What the overview asks the broker and Redis, each within a short deadline: a service that does not
answer shows as unavailable instead of holding the page."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

from config.settings import Settings
from connectors.tokenbucket import client_limiters
from tasks.queues import queue_depths

log = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds to connect to the broker or Redis; the whole probe gets a little more, so a server that
# accepts the connection and then never answers cannot hold the page either.
CONNECT_SECONDS = 1.0
PROBE_SECONDS = 2.0


@dataclass(frozen=True)
class Headroom:
    """One rate-limit bucket as it stands: tokens left of its capacity, refill rate, pause left."""

    name: str
    tokens: float
    capacity: float
    per_second: float
    paused_for: float

    @property
    def percent(self) -> float:
        """Tokens left as a share of the capacity (negative while borrowing)."""
        return 100.0 * self.tokens / self.capacity if self.capacity else 0.0


def broker_queue_depths(settings: Settings) -> dict[str, int] | None:
    """Messages waiting per queue, or None when the broker does not answer in time."""
    return within(
        PROBE_SECONDS, "broker", lambda: queue_depths(settings.broker_url, connect_timeout=CONNECT_SECONDS)
    )


def rate_limit_headroom(settings: Settings) -> list[Headroom] | None:
    """Every system's shared bucket(s) as they stand, or None when Redis does not answer in time."""

    def read() -> list[Headroom]:
        client = redis.Redis.from_url(
            settings.effective_redis_url,
            socket_connect_timeout=CONNECT_SECONDS,
            socket_timeout=CONNECT_SECONDS,
        )
        try:
            return [
                Headroom(name=bucket.name, **bucket.state())
                for buckets in client_limiters(settings, client).values()
                for bucket in buckets.values()
            ]
        finally:
            client.close()

    return within(PROBE_SECONDS, "redis", read)


def within(seconds: float, what: str, probe: Callable[[], T]) -> T | None:
    """`probe()`'s answer, or None if it fails or takes longer than `seconds` (it is then abandoned)."""
    answers: list[T] = []

    def run() -> None:
        try:
            answers.append(probe())
        except Exception as error:  # any failure of the service means "unavailable" on the page
            log.warning("ops overview: %s unavailable (%s)", what, type(error).__name__)

    thread = threading.Thread(target=run, name=f"ops-probe-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log.warning("ops overview: %s did not answer within %ss", what, seconds)
    return answers[0] if answers else None
