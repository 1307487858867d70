"""Thread-safe request counters, reported by GET /_sandbox/state."""

from __future__ import annotations

import threading
from collections import Counter


class RequestCounters:
    """Counts requests per endpoint or operation name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def increment(self, name: str, by: int = 1) -> None:
        """Count one more request (or `by` more) under `name`."""
        with self._lock:
            self._counts[name] += by

    def get(self, name: str) -> int:
        """The count under `name` (0 if never counted)."""
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every count, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()
