"""Per-client rate limit on the public endpoints, stored in Redis so all web workers share it.

The client is named in Redis by a keyed hash of its address, never the address itself. (Sign-in
attempts have their own throttle, on failures: `config.credentials`. Webhooks have a budget of their
own, per presented credential: `webhook_limit`.)

The public limit (INTAKE_RATE_LIMIT) is a sliding-window counter: this window's count plus the last
window's, weighted by how much of it still overlaps the sliding window. One pipelined Redis round
trip per request (INCR, EXPIRE, GET), whatever the limit; a moving window's log grew with the limit
and cost two Lua calls over it per request (the check and the headers)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from werkzeug.exceptions import TooManyRequests

from config.settings import Settings

log = logging.getLogger(__name__)

CLIENT_KEY_EXTENSION = "membersync_client_key"
INTAKE_LIMIT_EXTENSION = "membersync_intake_limit"
KEY_PREFIX = "membersync-intake"
# Seconds the intake waits for Redis before it counts in process memory instead.
REDIS_TIMEOUT_SECONDS = 0.5


def client_key() -> str:
    """The limiter's key for this request's client: a keyed hash of its address."""
    key: bytes = current_app.extensions[CLIENT_KEY_EXTENSION]
    return hmac.new(key, get_remote_address().encode(), hashlib.sha256).hexdigest()[:32]


limiter = Limiter(
    key_func=client_key,
    headers_enabled=True,
    # If Redis is unreachable the intake must still accept registrations (they are durable in the
    # database): fall back to per-process memory rather than answering 500.
    swallow_errors=True,
    in_memory_fallback_enabled=True,
    strategy="moving-window",
)


@dataclass(frozen=True)
class Verdict:
    """One request's check: allowed or not, what is left, when the window ends, how long to wait."""

    allowed: bool
    remaining: int
    reset_at: int
    retry_after: int


class IntakeLimit:
    """INTAKE_RATE_LIMIT per client and endpoint, as a sliding-window counter.

    Counted in Redis (one pipelined round trip) when REDIS_URL is set, so every web process shares
    it; in this process's memory when it is not, or while Redis does not answer (the intake must still
    accept registrations, which are durable in the database, rather than answer 500).
    """

    def __init__(self, limit: str, redis_url: str | None) -> None:
        item = parse(limit)
        self.amount = item.amount
        self.period = item.get_expiry()
        self.redis = (
            redis.Redis.from_url(
                redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
            )
            if redis_url
            else None
        )
        self._memory: dict[str, int] = {}
        self._memory_lock = threading.Lock()

    def _counts_in_redis(self, current: str, previous: str) -> tuple[int, int]:
        assert self.redis is not None
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, 2 * self.period)
        pipe.get(previous)
        counted, _, before = pipe.execute()
        return int(counted), int(before or 0)

    def _uncount_in_redis(self, current: str) -> None:
        assert self.redis is not None
        self.redis.decr(current)

    def _counts_in_memory(self, current: str, previous: str, window: int) -> tuple[int, int]:
        with self._memory_lock:
            if len(self._memory) > 100_000:  # a window's keys are useless two windows on
                self._memory = {k: v for k, v in self._memory.items() if k.endswith((f"/{window}", previous))}
            counted = self._memory.get(current, 0) + 1
            self._memory[current] = counted
            return counted, self._memory.get(previous, 0)

    def _uncount_in_memory(self, current: str) -> None:
        with self._memory_lock:
            self._memory[current] = self._memory.get(current, 1) - 1

    def hit(self, scope: str, client: str, now: float | None = None) -> Verdict:
        """Count one request of `client` on `scope`; refused requests are not counted."""
        now = time.time() if now is None else now
        window, elapsed = divmod(now, self.period)
        base = f"{KEY_PREFIX}/{scope}/{client}/{self.period}"
        current, previous = f"{base}/{int(window)}", f"{base}/{int(window) - 1}"
        in_redis = self.redis is not None
        if in_redis:
            try:
                counted, before = self._counts_in_redis(current, previous)
            except redis.RedisError as error:
                log.debug("intake limit counted in memory: Redis %s", type(error).__name__)
                in_redis = False
        if not in_redis:
            counted, before = self._counts_in_memory(current, previous, int(window))
        overlap = (self.period - elapsed) / self.period
        used = math.floor(before * overlap) + counted
        reset_at = int((window + 1) * self.period)
        if used <= self.amount:
            return Verdict(True, self.amount - used, reset_at, 0)
        # A refusal is not counted (if Redis fails here, once too often for one window at most).
        with contextlib.suppress(redis.RedisError):
            self._uncount_in_redis(current) if in_redis else self._uncount_in_memory(current)
        counted -= 1
        if counted >= self.amount or before == 0:
            wait = self.period - elapsed  # this window alone is full: until the next one
        else:
            # Until the last window's weight has shrunk enough for one more request.
            wait = self.period * (1 - (self.amount - counted) / before) - elapsed
        return Verdict(False, 0, reset_at, max(1, math.ceil(wait)))


F = TypeVar("F", bound=Callable[..., Any])


def public_intake(view: F) -> F:
    """Limit `view` per client to INTAKE_RATE_LIMIT (nothing when it is off): a 429 with
    Retry-After when it is spent, X-RateLimit-Limit/Remaining/Reset on the answers it allows."""

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        limit: IntakeLimit | None = current_app.extensions.get(INTAKE_LIMIT_EXTENSION)
        if limit is None:
            return view(*args, **kwargs)
        verdict = limit.hit(request.endpoint or "", client_key())
        # The headers go on in `_limit_headers`, whoever renders the answer (a blueprint's own 429 page).
        g.membersync_intake_verdict = (limit.amount, verdict)
        if not verdict.allowed:
            raise TooManyRequests(retry_after=verdict.retry_after)
        return view(*args, **kwargs)

    # flask-limiter has no limit on these views (only the webhooks'): `_limited_here` spares them its
    # hooks (`_skip_flask_limiter_here`).
    limited.membersync_public_intake = True  # type: ignore[attr-defined]
    return limited  # type: ignore[return-value]


def _limited_here() -> bool:
    """Whether this request's view is limited by `public_intake` rather than by flask-limiter."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "membersync_public_intake", False) is True


def _skip_flask_limiter_here(flask_app: Flask) -> None:
    """flask-limiter's app-wide hooks (the check before, the headers after, the context's release)
    skip the views `public_intake` limits: they found no limit there and cost a fifth of a request's
    Flask overhead when profiled (a context object, limit resolution, header lookups)."""

    def unless_limited_here(hook: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(hook)
        def hooked(*args: Any) -> Any:
            if _limited_here():
                return args[0] if args and isinstance(args[0], Response) else None
            return hook(*args)

        return hooked

    def ours(hook: Callable[..., Any]) -> bool:
        target = hook.func if isinstance(hook, functools.partial) else hook
        return getattr(target, "__self__", None) is limiter or (
            isinstance(hook, functools.partial) and hook.args[:1] == (limiter,)
        )

    hook_lists: list[dict[Any, list[Any]]] = [
        flask_app.before_request_funcs,
        flask_app.after_request_funcs,
        flask_app.teardown_request_funcs,
    ]
    for hooks in hook_lists:
        hooks[None] = [unless_limited_here(hook) if ours(hook) else hook for hook in hooks.get(None, [])]


def _limit_headers(response: Response) -> Response:
    """X-RateLimit-Limit/Remaining/Reset on a limited route's answer, and Retry-After on its 429."""
    checked: tuple[int, Verdict] | None = g.pop("membersync_intake_verdict", None)
    if checked is not None:
        amount, verdict = checked
        response.headers["X-RateLimit-Limit"] = str(amount)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
        response.headers["X-RateLimit-Reset"] = str(verdict.reset_at)
        if response.status_code == 429:
            response.headers["Retry-After"] = str(verdict.retry_after)
    return response


# A webhook's budget (not INTAKE_RATE_LIMIT): a vendor delivers from a few shared addresses and may
# not retry, so the public per-IP limit would drop its bursts. Generous, and keyed by the credential
# presented, so a caller spraying wrong tokens only spends its own budget, never the vendor's.
WEBHOOK_LIMIT = "600/minute"


def webhook_limit(scope: str, credential: Callable[[], str]) -> Any:
    """A limit shared by the routes of one webhook, per (keyed hash of the) presented credential."""

    def key() -> str:
        secret: bytes = current_app.extensions[CLIENT_KEY_EXTENSION]
        presented = credential().encode("utf-8", "surrogatepass")
        return hmac.new(secret, presented, hashlib.sha256).hexdigest()[:32]

    # Read per request (a callable), so a test can lower it.
    return limiter.shared_limit(lambda: WEBHOOK_LIMIT, scope=scope, key_func=key)


def init_app(flask_app: Flask, settings: Settings) -> None:
    """Attach the limiter with Redis storage when Redis is configured, else process memory."""
    flask_app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    flask_app.config["RATELIMIT_KEY_PREFIX"] = "membersync-intake"
    flask_app.extensions[CLIENT_KEY_EXTENSION] = settings.derive_key("rate-limit-client")
    if settings.intake_rate_limit is not None:
        flask_app.extensions[INTAKE_LIMIT_EXTENSION] = IntakeLimit(
            settings.intake_rate_limit, settings.redis_url
        )
        flask_app.after_request(_limit_headers)

    # Registered before the limiter: Flask runs after-request hooks last-registered first, so this
    # one sees the limiter's headers.
    @flask_app.after_request
    def _retry_after_only_when_refused(response: Response) -> Response:
        # flask-limiter sets Retry-After on every limited answer; on a success it would tell a
        # client to wait before a retry it has no reason to make.
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(flask_app)
    _skip_flask_limiter_here(flask_app)
