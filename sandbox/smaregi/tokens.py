"""Smaregi's client-credentials access tokens: issued at /app/{contract_id}/token, checked on every call."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CUSTOMER_SCOPES = frozenset({"pos.customers:read", "pos.customers:write"})
# Reading transactions (a member's point movements) is a scope of its own.
TRANSACTIONS_READ = "pos.transactions:read"
GRANTABLE_SCOPES = CUSTOMER_SCOPES | {TRANSACTIONS_READ}


@dataclass(frozen=True)
class AccessToken:
    """A bearer token for one contract with the scopes it was granted."""

    value: str
    contract_id: str
    scopes: frozenset[str]
    expires_at: float


class TokenIssuer:
    """Issues opaque bearer tokens and recognises them until they expire."""

    def __init__(self, lifetime_seconds: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}

    def issue(self, contract_id: str, scopes: frozenset[str]) -> AccessToken:
        """A fresh token for the contract (older ones stay valid until they expire, as on Smaregi)."""
        token = AccessToken(
            secrets.token_urlsafe(32), contract_id, scopes, self._clock() + self.lifetime_seconds
        )
        with self._lock:
            self._forget_expired()
            self._tokens[token.value] = token
        return token

    def recognise(self, value: str) -> AccessToken | None:
        """The live token with this value, or None if unknown or expired."""
        with self._lock:
            token = self._tokens.get(value)
        if token is None or token.expires_at <= self._clock():
            return None
        return token

    def _forget_expired(self) -> None:
        now = self._clock()
        for value in [value for value, token in self._tokens.items() if token.expires_at <= now]:
            del self._tokens[value]
