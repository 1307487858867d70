"""Seeded, thread-safe fault injection shared by every emulator (configured by POST /_sandbox/faults).

`ttl_seconds` makes a configuration clear itself after that long (the faults, and an emulator's own
refusals through `on_expiry`), so a fault switched on beside a running `make dev` cannot be left on.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

RATE_FIELDS = ("error_rate", "throttle_rate", "timeout_after_commit_rate")
INT_FIELDS = ("latency_ms", "seed")
TTL_FIELD = "ttl_seconds"

# How long a timeout-after-commit request hangs at most when nobody releases it. Far beyond any sane
# client timeout, yet finite so a forgotten fault cannot hold a thread forever.
DEFAULT_HANG_CAP_SECONDS = 300.0


class Fault(enum.Enum):
    """What the injector decided to do to one request."""

    NONE = "none"
    ERROR = "error"
    THROTTLE = "throttle"
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"


class FaultConfigError(ValueError):
    """The body of POST /_sandbox/faults is not acceptable."""


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities of each fault per request, added latency and the seed of the random sequence."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_after_commit_rate: float = 0.0
    latency_ms: int = 0
    seed: int | None = None
    # Seconds after which the injector clears this configuration by itself; None: until changed.
    ttl_seconds: float | None = None

    @classmethod
    def parse(cls, body: Any) -> FaultConfig:
        """Validate a faults body; `{}` means no faults. Raises FaultConfigError with a readable reason."""
        if not isinstance(body, dict):
            raise FaultConfigError("faults body must be a JSON object")
        unknown = sorted(set(body) - set(RATE_FIELDS) - set(INT_FIELDS) - {TTL_FIELD})
        if unknown:
            raise FaultConfigError(f"unknown fault field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name in RATE_FIELDS:
            if name in body:
                rate = body[name]
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise FaultConfigError(f"{name} must be a number between 0 and 1")
                values[name] = float(rate)
        for name in INT_FIELDS:
            if name in body and body[name] is not None:
                number = body[name]
                if isinstance(number, bool) or not isinstance(number, int):
                    raise FaultConfigError(f"{name} must be an integer")
                if name == "latency_ms" and number < 0:
                    raise FaultConfigError("latency_ms must not be negative")
                values[name] = number
        ttl = body.get(TTL_FIELD)
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
                raise FaultConfigError(f"{TTL_FIELD} must be a positive number of seconds")
            values[TTL_FIELD] = float(ttl)
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        """The configuration as it would be posted."""
        return asdict(self)


class FaultInjector:
    """Decides per request which fault (if any) to inject, reproducibly for a given seed."""

    def __init__(self, hang_cap_seconds: float = DEFAULT_HANG_CAP_SECONDS) -> None:
        self.hang_cap_seconds = hang_cap_seconds
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._random = random.Random()
        self._release = threading.Event()
        self._expiry: threading.Timer | None = None
        self._expiry_listeners: list[Callable[[], None]] = []

    @property
    def config(self) -> FaultConfig:
        """The configuration in force."""
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Apply a new configuration; the random sequence restarts from its seed. One with
        `ttl_seconds` is cleared that many seconds later unless another replaced it first."""
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry = None
            if config.ttl_seconds is not None:
                self._expiry = threading.Timer(config.ttl_seconds, self._expire, args=(config,))
                self._expiry.daemon = True
                self._expiry.start()
        self.release()

    def on_expiry(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a configuration's `ttl_seconds` ran out (an emulator's own refusals)."""
        with self._lock:
            self._expiry_listeners.append(listener)

    def _expire(self, config: FaultConfig) -> None:
        with self._lock:
            if self._config is not config:
                return  # replaced meanwhile: the new configuration has its own life
            self._config = FaultConfig()
            self._random = random.Random()
            self._expiry = None
            listeners = list(self._expiry_listeners)
        self.release()
        for listener in listeners:
            listener()

    def clear(self) -> None:
        """No faults from now on, and let any held request go."""
        self.configure(FaultConfig())

    def decide(self) -> Fault:
        """Draw the fault for one request (error, then throttle, then timeout-after-commit)."""
        with self._lock:
            config = self._config
            # Always three draws, so a request's decision depends only on the seed and its position.
            draws = [self._random.random() for _ in RATE_FIELDS]
        if draws[0] < config.error_rate:
            return Fault.ERROR
        if draws[1] < config.throttle_rate:
            return Fault.THROTTLE
        if draws[2] < config.timeout_after_commit_rate:
            return Fault.TIMEOUT_AFTER_COMMIT
        return Fault.NONE

    def delay(self) -> None:
        """Sleep the configured latency."""
        latency_ms = self._config.latency_ms
        if latency_ms:
            time.sleep(latency_ms / 1000)

    def hang(self) -> None:
        """Block the current request until released (reset, new faults, server stop) or the cap passes."""
        with self._lock:
            release = self._release
        release.wait(self.hang_cap_seconds)

    def release(self) -> None:
        """Let every request currently held by hang() finish."""
        with self._lock:
            released, self._release = self._release, threading.Event()
        released.set()
