"""Waiting out rate limits: a nightly run has time, a registration step does not.

A step that finds no token is re-scheduled; reconciliation instead sleeps the wait the limiter or the
vendor named and calls again, so it shares each vendor's budget with the steps without failing. The
time spent waiting is reported apart (the run's own duration excludes it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from connectors.errors import ThrottledError

T = TypeVar("T")

# One call waits at most this long in total before its throttling counts as a failure.
PATIENCE_SECONDS = 600.0
SHORTEST_WAIT = 0.05
# A long wait is slept in slices of at most this, with a heartbeat between them.
SLICE_SECONDS = 30.0


class Patience:
    """Calls that wait out throttling; `waited` sums the seconds slept."""

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        limit: float = PATIENCE_SECONDS,
        beat: Callable[[], None] | None = None,
    ) -> None:
        self.sleep = sleep
        self.limit = limit
        # Called between slices of a long wait: the run renews its lock there (a wait may be longer
        # than the lock's expiry), and a run that lost it stops.
        self.beat = beat
        self.waited = 0.0
        self._adding = threading.Lock()  # two readers may wait at once

    def call(self, function: Callable[[], T]) -> T:
        """`function()`, sleeping and calling again while it is throttled (up to the limit)."""
        spent = 0.0
        while True:
            try:
                return function()
            except ThrottledError as error:
                wait = max(error.retry_after or 0.0, SHORTEST_WAIT)
                if spent + wait > self.limit:
                    raise
                self._sleep(wait)
                spent += wait
                with self._adding:
                    self.waited += wait

    def _sleep(self, seconds: float) -> None:
        while seconds > 0:
            step = min(seconds, SLICE_SECONDS)
            self.sleep(step)
            seconds -= step
            if self.beat is not None:
                self.beat()
