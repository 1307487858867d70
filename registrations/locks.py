"""The per-email lock around find-or-create, shared by every worker through Redis.

Two registrations of one email, handled at the same moment by two workers, would both search a
vendor, both find nothing and both create: the lock makes the second wait and then find the first.
The key is a hash of the email, so Redis never holds the address itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Protocol

import redis

from connectors.errors import TransientError

LOCK_PREFIX = "membersync:lock:email:"


class LockBusy(TransientError):
    """Another worker holds this person's lock; try again shortly (not a failed attempt)."""


def email_lock_key(email: str) -> str:
    """The Redis key of `email`'s lock (a digest: no personal data in Redis)."""
    return LOCK_PREFIX + hashlib.sha256(email.strip().lower().encode()).hexdigest()


@contextmanager
def email_lock(client: redis.Redis, email: str, *, timeout: float, wait: float) -> Iterator[None]:
    """Hold `email`'s lock for the block; LockBusy when it stays taken for `wait` seconds.

    `timeout` frees the lock of a worker that died holding it; it must exceed the longest block.
    """
    lock = client.lock(email_lock_key(email), timeout=timeout, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise LockBusy("another worker is syncing this person")
    try:
        yield
    finally:
        # Held longer than `timeout` and taken over: the work is done and idempotent anyway.
        with suppress(redis.exceptions.LockError):
            lock.release()


class PersonLocks(Protocol):
    """Per-person mutual exclusion across every worker of the deployment."""

    def hold(self, email: str) -> AbstractContextManager[None]:
        """Hold `email`'s lock for the block; LockBusy when it cannot be had in time."""
        ...


class RedisPersonLocks:
    """The production locks: one Redis lock per (hashed) email, shared by all workers."""

    def __init__(self, client: redis.Redis, *, timeout: float, wait: float) -> None:
        self.client = client
        self.timeout = timeout
        self.wait = wait

    def hold(self, email: str) -> AbstractContextManager[None]:
        return email_lock(self.client, email, timeout=self.timeout, wait=self.wait)


class LocalPersonLocks:
    """Locks within one process (unit tests, one-off scripts): the same contract without Redis."""

    def __init__(self, *, wait: float = 5.0) -> None:
        self.wait = wait
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, email: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(email_lock_key(email), threading.Lock())
        if not lock.acquire(timeout=self.wait):
            raise LockBusy("another worker is syncing this person")
        try:
            yield
        finally:
            lock.release()
