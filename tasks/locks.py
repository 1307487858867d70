"""The per-email lock around find-or-create, shared by every worker through Redis.

Two registrations of one email, handled at the same moment by two workers, would both search a
vendor, both find nothing and both create: the lock makes the second wait and then find the first.
The key is a hash of the email, so Redis never holds the address itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress

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
