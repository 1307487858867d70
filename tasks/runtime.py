"""What a task needs at run time (settings, database, Redis, connectors), built once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from config.settings import Settings
from tasks.database import Database

if TYPE_CHECKING:
    from connectors.registry import Connectors


@dataclass
class Runtime:
    """Process-wide services shared by every task of one Celery app; clients are made on first use."""

    settings: Settings
    database: Database
    _redis: redis.Redis | None = None
    _connectors: Connectors | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def redis(self) -> redis.Redis:
        """Redis for locks and rate limits (one connection pool per process)."""
        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.settings.effective_redis_url)
            return self._redis

    @property
    def connectors(self) -> Connectors:
        """The vendor clients, sharing the global rate limits in Redis."""
        from connectors.registry import Connectors

        client = self.redis
        with self._lock:
            if self._connectors is None:
                self._connectors = Connectors.from_settings(self.settings, client)
            return self._connectors

    def use_connectors(self, connectors: Connectors) -> None:
        """Replace the vendor clients (tests that stand a fake behind the same interface)."""
        with self._lock:
            self._connectors = connectors
