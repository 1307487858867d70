"""What a task needs at run time (settings, database, Redis, connectors), built once per process.

Tests hand a Runtime its connectors (in-process fakes) and a Redis of their choosing."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from config.settings import Settings
from registrations.database import Database
from registrations.leases import Leases
from registrations.locks import PersonLocks, RedisPersonLocks

if TYPE_CHECKING:
    from connectors.registry import Connectors


@dataclass
class Runtime:
    """Process-wide services shared by every task of one Celery app; clients are made on first use."""

    settings: Settings
    database: Database
    _redis: redis.Redis | None = None
    _connectors: Connectors | None = None
    _locks: PersonLocks | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def redis(self) -> redis.Redis:
        """Redis for locks and rate limits (one connection pool per process)."""
        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.settings.effective_redis_url)
            return self._redis

    @property
    def leases(self) -> Leases:
        """The worker heartbeat leases (registrations/leases.py), in the same Redis as the locks."""
        return Leases(self.redis)

    @property
    def locks(self) -> PersonLocks:
        """The per-person locks around find-or-create (Redis, shared by every worker)."""
        if self._locks is None:
            settings = self.settings
            self._locks = RedisPersonLocks(
                self.redis,
                key=settings.derive_key("email-lock"),
                timeout=settings.lock_timeout_seconds,
                wait=settings.lock_wait_seconds,
            )
        return self._locks

    @property
    def connectors(self) -> Connectors:
        """The vendor clients, sharing the global rate limits in Redis."""
        from connectors.registry import Connectors

        if self._connectors is not None:
            return self._connectors
        client = self.redis
        with self._lock:
            if self._connectors is None:
                self._connectors = Connectors.from_settings(self.settings, client)
            return self._connectors
