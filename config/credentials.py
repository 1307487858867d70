"""Checking a password safely, in every place that takes one (the ops console's sign-in, `/metrics`,
Flower): a constant-time comparison, a Basic header parsed without ever failing, and a throttle on
failures per client address and per username, shared by every process through Redis.

The throttle counts failures only (a Prometheus scraping with the right password never uses up the
allowance) and is asked before the password is compared, so a blocked guesser learns nothing even
from the right pair. Its Redis keys hold keyed hashes of the address and the username, never either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from config.settings import Settings

log = logging.getLogger(__name__)

# Per client address and per username: enough for a person who mistypes, far too few to guess.
FAILURE_LIMIT = "10/minute"
KEY_PREFIX = "membersync:auth-failures"


def same_secret(given: str, expected: str) -> bool:
    """True when `given` equals `expected`; the time taken reveals neither (any text, any length)."""
    return hmac.compare_digest(_digest(given), _digest(expected))


def credentials_match(username: str, password: str, expected_username: str, expected_password: str) -> bool:
    """Both halves equal; both comparisons always run, so the time does not tell which was wrong."""
    username_ok = same_secret(username, expected_username)
    password_ok = same_secret(password, expected_password)
    return username_ok & password_ok


def _digest(text: str) -> bytes:
    # surrogatepass: a lone surrogate (from a mangled header) is compared, never raised on.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic ...` header; None for anything else,
    malformed base64 and bytes that are not UTF-8 included (a 401, never a 500)."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip().encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


@dataclass(frozen=True)
class Verdict:
    """The outcome of a guarded check: allowed, refused (401), or throttled (429 after `retry_after`)."""

    allowed: bool
    retry_after: int | None = None


class FailureThrottle:
    """At most FAILURE_LIMIT failed checks per client address and per username (moving window)."""

    def __init__(self, storage_url: str | None, key: bytes, limit: str = FAILURE_LIMIT) -> None:
        self.key = key
        self.item: RateLimitItem = parse(limit)
        self.storage: Storage = (
            RedisStorage(storage_url, key_prefix=KEY_PREFIX, socket_timeout=2, socket_connect_timeout=2)
            if storage_url
            else MemoryStorage()
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        # When Redis does not answer, this process keeps counting on its own rather than letting
        # every guess through.
        self.fallback = MovingWindowRateLimiter(MemoryStorage())

    @classmethod
    def from_settings(cls, settings: Settings) -> FailureThrottle:
        return cls(settings.shared_store_url, settings.derive_key("auth-failures"))

    def check(self, client: str | None, username: str | None, matches: bool | Callable[[], bool]) -> Verdict:
        """Refuse while `client` or `username` is over its allowance (even with the right pair);
        else allowed when `matches`, and a failure counted against both when not.

        `matches` may be a callable, asked only when neither is blocked: a named operator's password
        check is a deliberately slow scrypt, which a blocked guesser must not make us run.
        """
        identities = self._identities(client, username)
        wait = self.retry_after(identities)
        if wait is not None:
            return Verdict(False, wait)
        if matches if isinstance(matches, bool) else matches():
            return Verdict(True)
        self._count(identities)
        return Verdict(False)

    def retry_after(self, identities: list[str]) -> int | None:
        """Seconds until the first of `identities` may try again, or None when none is blocked."""
        waits = [self._wait(identity) for identity in identities]
        blocked = [wait for wait in waits if wait is not None]
        return max(blocked) if blocked else None

    def _identities(self, client: str | None, username: str | None) -> list[str]:
        # Keyed hashes: whoever reads Redis learns neither the addresses nor the usernames tried.
        found = [f"client:{self._hash(client or 'unknown')}"]
        if username is not None:
            found.append(f"user:{self._hash(username)}")
        return found

    def _hash(self, text: str) -> str:
        return hmac.new(self.key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]

    def _wait(self, identity: str) -> int | None:
        for limiter in self._limiters():
            try:
                if limiter.test(self.item, identity):
                    return None
                reset = limiter.get_window_stats(self.item, identity).reset_time
                return max(1, math.ceil(reset - time.time()))
            except Exception:
                log.warning("sign-in throttle: the shared store did not answer; counting in this process")
        return None

    def _count(self, identities: list[str]) -> None:
        for identity in identities:
            for limiter in self._limiters():
                try:
                    limiter.hit(self.item, identity)
                    break
                except Exception:
                    log.warning("sign-in throttle: the shared store did not answer; counting in this process")

    def _limiters(self) -> tuple[MovingWindowRateLimiter, ...]:
        return (self.limiter, self.fallback)
