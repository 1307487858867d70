"""Per-client rate limit on the public endpoints, stored in Redis so all web workers share it.

The client is named in Redis by a keyed hash of its address, never the address itself. (Sign-in
attempts have their own throttle, on failures: `config.credentials`. Webhooks have a budget of their
own, per presented credential: `webhook_limit`.)"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from app.services import services
from config.settings import Settings

log = logging.getLogger(__name__)

CLIENT_KEY_EXTENSION = "membersync_client_key"


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


def intake_limit() -> str:
    """The configured intake limit (INTAKE_RATE_LIMIT), read per request."""
    return services().settings.intake_rate_limit or "1000000/second"


def intake_limit_off() -> bool:
    return services().settings.intake_rate_limit is None


public_intake = limiter.limit(intake_limit, exempt_when=intake_limit_off)

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
