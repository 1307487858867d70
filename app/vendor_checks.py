"""Each vendor's credentials and scopes, checked by one cheap read (each client's `check()`, as
`membersync check` does), at most once a minute per web process, never holding a request for long.

A check runs in a background thread; a caller waits for it at most the time it can spare and
otherwise gets the last result (or None before the first one). So `/readyz` answers at once even
when a vendor hangs, and a page that is asked for often does not turn into calls to the vendors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from config.settings import Settings
from connectors.checks import FAILED, Outcome, check_all
from registrations.models import utcnow

# How long a result is good for: credentials change rarely, and every check spends rate budget.
MAX_AGE_SECONDS = 60.0
# Seconds a client's socket waits for Redis (the clients' rate limiters live there).
REDIS_SECONDS = 2.0
EXTENSION = "membersync.vendor_checks"


@dataclass(frozen=True)
class Checked:
    """The outcome per system (ok, failed or skipped, and why) and when the check ended."""

    outcomes: Mapping[str, Outcome]
    at: datetime

    @property
    def ok(self) -> bool:
        return all(outcome.status != FAILED for outcome in self.outcomes.values())


class VendorChecks:
    """The last check of every vendor, refreshed in the background once it is MAX_AGE_SECONDS old."""

    def __init__(
        self, check: Callable[[], Mapping[str, Outcome]], *, max_age: float = MAX_AGE_SECONDS
    ) -> None:
        self._check = check
        self._max_age = max_age
        self._lock = threading.Lock()
        self._result: Checked | None = None
        self._checked_at: float | None = None
        self._running: threading.Event | None = None

    def latest(self, wait: float = 0.0) -> Checked | None:
        """The latest result; starts a check when it is stale, and waits up to `wait` s for it."""
        with self._lock:
            stale = self._checked_at is None or time.monotonic() - self._checked_at >= self._max_age
            if stale and self._running is None:
                self._running = threading.Event()
                threading.Thread(
                    target=self._refresh, args=(self._running,), name="vendor-checks", daemon=True
                ).start()
            running = self._running
        if running is not None and wait > 0:
            running.wait(wait)
        with self._lock:
            return self._result

    def _refresh(self, done: threading.Event) -> None:
        try:
            outcomes = dict(self._check())
        except Exception as error:  # building the clients failed (a setting they refuse): say so
            outcomes = {"vendors": Outcome(FAILED, f"{type(error).__name__}: {str(error)[:200]}")}
        with self._lock:
            self._result = Checked(outcomes, utcnow())
            self._checked_at = time.monotonic()
            self._running = None
        done.set()


def check_vendors(settings: Settings) -> Mapping[str, Outcome]:
    """Every enabled vendor's `check()` (what `membersync check` runs), with the app's settings."""
    import redis

    from connectors.registry import Connectors

    client = redis.Redis.from_url(
        settings.effective_redis_url, socket_connect_timeout=REDIS_SECONDS, socket_timeout=REDIS_SECONDS
    )
    try:
        return check_all(Connectors.from_settings(settings, client), settings.enabled_systems())
    finally:
        client.close()


def vendor_checks(settings: Settings) -> VendorChecks:
    """The current Flask app's vendor checks (one per app: each web process checks on its own)."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, VendorChecks(lambda: check_vendors(settings)))
    checks: VendorChecks = found
    return checks
