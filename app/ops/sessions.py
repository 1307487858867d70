"""The ops console's signed-in sessions, kept on the server so that signing out ends them.

The cookie is only signed, so a copy of it stays valid as long as the server accepts it. Each
sign-in therefore opens a session here under a random id that the cookie carries; sign-out closes
it, and a copied cookie is refused from then on. Redis keeps them for every web process (memory in
dev mode without Redis); its keys hold a keyed hash of the id, never the id itself. A session the
store cannot confirm is refused; what a sign-in does while the store is down is `app.ops.auth`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from typing import Protocol

import redis

from config.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "membersync:ops-session:"


class SessionStoreUnavailable(RuntimeError):
    """The session store did not answer: nobody can be signed in right now."""


class _Store(Protocol):
    def put(self, name: str, seconds: int) -> None: ...
    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> None: ...


class SessionRegistry:
    """Open, check and close sessions by the id their cookie carries."""

    def __init__(self, store: _Store, key: bytes) -> None:
        self.store = store
        self.key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionRegistry:
        url = settings.shared_store_url
        store: _Store = RedisStore(url) if url else MemoryStore()
        return cls(store, settings.derive_key("ops-session"))

    def open(self, seconds: int) -> str:
        """A new session's id, valid for `seconds` unless closed; SessionStoreUnavailable if it
        cannot be recorded."""
        session_id = secrets.token_urlsafe(32)
        try:
            self.store.put(self._name(session_id), seconds)
        except redis.RedisError as error:
            raise SessionStoreUnavailable("the ops session store did not answer") from error
        return session_id

    def is_open(self, session_id: str) -> bool:
        """True while the session was opened here and not closed or expired (False if unsure)."""
        try:
            return self.store.exists(self._name(session_id))
        except redis.RedisError:
            log.warning("ops sessions: the session store did not answer; treating the session as ended")
            return False

    def close(self, session_id: str) -> None:
        """End the session: its cookie, wherever a copy of it is, no longer signs anyone in."""
        try:
            self.store.delete(self._name(session_id))
        except redis.RedisError:
            # Logged loudly: the cookie was cleared in this browser, but a copy would stay valid.
            log.error("ops sessions: the session store did not answer; a session could not be closed")

    def _name(self, session_id: str) -> str:
        return KEY_PREFIX + hmac.new(self.key, session_id.encode(), hashlib.sha256).hexdigest()


class RedisStore:
    """Sessions in Redis, shared by every web process, each expiring by itself."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def put(self, name: str, seconds: int) -> None:
        self.client.set(name, b"1", ex=seconds)

    def exists(self, name: str) -> bool:
        return bool(self.client.exists(name))

    def delete(self, name: str) -> None:
        self.client.delete(name)


class MemoryStore:
    """Sessions in this process (dev mode without Redis: one web process)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, name: str, seconds: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._expiry = {key: until for key, until in self._expiry.items() if until > now}
            self._expiry[name] = now + seconds

    def exists(self, name: str) -> bool:
        with self._lock:
            return self._expiry.get(name, 0.0) > time.monotonic()

    def delete(self, name: str) -> None:
        with self._lock:
            self._expiry.pop(name, None)
