"""The per-email lock around find-or-create, shared by every worker through Redis.

Two registrations of one email, handled at the same moment by two workers, would both search a
vendor, both find nothing and both create: the lock makes the second wait and then find the first.
The key is a keyed hash (HMAC) of the email, so Redis never holds the address, nor a plain digest
that a list of addresses would reverse.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import redis

from config.email_address import canonical_email
from connectors.errors import TransientError
from registrations.leases import acquire_from_dead, current_holder, lock_token, lua_script, unleased_token

LOCK_PREFIX = "membersync:lock:email:"


class LockBusy(TransientError):
    """Another worker holds this person's lock; try again shortly (not a failed attempt)."""


def email_lock_key(email: str, key: bytes) -> str:
    """The Redis key of `email`'s lock: an HMAC under `key` (every worker must use the same key)."""
    digest = hmac.new(key, canonical_email(email).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return LOCK_PREFIX + digest.hexdigest()


# How long a waiting worker sleeps between tries (redis-py's Lock default).
RETRY_SECONDS = 0.1
# KEYS[1] the lock; ARGV[1] the token: delete the lock only while it is still ours.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@contextmanager
def email_lock(
    client: redis.Redis, email: str, *, key: bytes, timeout: float, wait: float, holder: str | None = None
) -> Iterator[None]:
    """Hold `email`'s lock for the block; LockBusy when it stays taken for `wait` seconds.

    `timeout` frees the lock of a worker that died holding it; it must exceed the longest block. A
    worker process passes its lease `holder` (registrations.leases): a lock whose holder's lease is
    gone is taken over at once rather than after `timeout`.

    One round trip to take a free lock (SET NX PX, or one script with a holder) and one to release
    it (compare and delete): no lock object, and no script hashed again per call.
    """
    name = email_lock_key(email, key)
    if holder is None:
        token = unleased_token()
        ttl_ms = max(1, int(timeout * 1000))

        def acquire() -> bool:
            return bool(client.set(name, token, nx=True, px=ttl_ms))
    else:
        token = lock_token(holder)

        def acquire() -> bool:
            return acquire_from_dead(client, name, token, timeout=timeout)

    give_up_at = time.monotonic() + wait
    while not acquire():
        if time.monotonic() + RETRY_SECONDS > give_up_at:
            raise LockBusy("another worker is syncing this person")
        time.sleep(RETRY_SECONDS)
    try:
        yield
    finally:
        # Held longer than `timeout` and taken over, the lock is another's now and stays so (the
        # script deletes only our token): the work is done and idempotent anyway.
        lua_script(client, _RELEASE)(keys=[name], args=[token], client=client)


class PersonLocks(Protocol):
    """Per-person mutual exclusion across every worker of the deployment."""

    def hold(self, email: str) -> AbstractContextManager[None]:
        """Hold `email`'s lock for the block; LockBusy when it cannot be had in time."""
        ...


class RedisPersonLocks:
    """The production locks: one Redis lock per (keyed-hash) email, shared by all workers."""

    def __init__(self, client: redis.Redis, *, key: bytes, timeout: float, wait: float) -> None:
        self.client = client
        self.key = key
        self.timeout = timeout
        self.wait = wait

    def hold(self, email: str) -> AbstractContextManager[None]:
        return email_lock(
            self.client, email, key=self.key, timeout=self.timeout, wait=self.wait, holder=current_holder()
        )


class LocalPersonLocks:
    """Locks within one process (unit tests, one-off scripts): the same contract without Redis."""

    def __init__(self, *, wait: float = 5.0) -> None:
        self.wait = wait
        self.key = secrets.token_bytes(32)  # the locks live and die with this process
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, email: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(email_lock_key(email, self.key), threading.Lock())
        if not lock.acquire(timeout=self.wait):
            raise LockBusy("another worker is syncing this person")
        try:
            yield
        finally:
            lock.release()
