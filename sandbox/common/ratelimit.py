"""A rolling-window request limiter (Smaregi's per-second and HubSpot's ten-second limits are both this)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The limiter's answer for one request."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: float

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for a Retry-After header (at least 1, as HTTP wants an integer)."""
        return str(max(1, math.ceil(self.retry_after_seconds)))


class RollingWindowLimiter:
    """At most `limit` requests per `window_seconds` per key, counted over a rolling window."""

    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str = "") -> Verdict:
        """Record a request under `key` if the window has room; refused requests are not counted."""
        return self._judge(key, record=True)

    def peek(self, key: str = "") -> Verdict:
        """What hit() would answer now, without recording anything."""
        return self._judge(key, record=False)

    def _judge(self, key: str, *, record: bool) -> Verdict:
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_seconds:
                hits.popleft()
            if not record:
                return Verdict(len(hits) < self.limit, self.limit, max(0, self.limit - len(hits)), 0.0)
            if len(hits) >= self.limit:
                retry_after = hits[0] + self.window_seconds - now
                return Verdict(False, self.limit, 0, retry_after)
            hits.append(now)
            return Verdict(True, self.limit, self.limit - len(hits), 0.0)

    def reset(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._hits.clear()
