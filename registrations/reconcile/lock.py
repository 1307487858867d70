"""One reconciliation at a time across beat, workers and the command line: a lock and a fencing token.

The lock is a Redis key with an expiry (a run that dies frees it by itself); the fencing token is a
counter incremented by every run that takes the lock and stored on its run row. Before each write a
run checks that the counter is still its own token and that it still holds the lock (renewed at
half its expiry): a run that stalled past its expiry, whose lock another run then took, stops
instead of writing beside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import cast

import redis

LOCK_KEY = "membersync:lock:reconcile"
FENCE_KEY = "membersync:reconcile:fence"
# A run renews its lock while it reads and writes; this is how long a dead run keeps others out.
LOCK_SECONDS = 300.0


class FenceLost(Exception):
    """This run no longer holds the newest fence (its lock expired, or a newer run took over)."""


class RunLock:
    """The reconciliation lock of one run."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        seconds: float = LOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.seconds = seconds
        self._clock = clock
        self._lock = client.lock(LOCK_KEY, timeout=seconds, blocking=False)
        self.fence: int | None = None
        self._renewed = 0.0
        self._checking = threading.Lock()

    def acquire(self) -> int | None:
        """The run's fencing token, or None when another run holds the lock."""
        if not self._lock.acquire(blocking=False):
            return None
        self.fence = int(cast(int, self.client.incr(FENCE_KEY)))
        self._renewed = self._clock()
        return self.fence

    def check(self) -> None:
        """Raise FenceLost unless this run still holds the lock and the newest fence."""
        with self._checking:  # the run's reading thread and its main thread both check
            self._check()

    def _check(self) -> None:
        if self.fence is None:
            raise FenceLost("this run never held the lock")
        if self._clock() - self._renewed >= self.seconds / 2:
            try:
                self._lock.reacquire()  # renews the expiry, only while the key is still ours
            except redis.exceptions.LockError:
                raise FenceLost("the reconciliation lock expired") from None
            self._renewed = self._clock()
        current = cast(bytes | str | None, self.client.get(FENCE_KEY))
        if current is None or int(current) != self.fence:
            raise FenceLost(f"a newer reconciliation holds fence {current!r}; this run has {self.fence}")

    def release(self) -> None:
        """Free the lock if this run still holds it."""
        with contextlib.suppress(redis.exceptions.LockError):
            self._lock.release()
