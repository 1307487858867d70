"""Signing in to the ops console: OPS_USERNAME / OPS_PASSWORD, compared in constant time, kept in the
signed session cookie; sign-in attempts are rate limited per client and written to the audit trail."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from flask import current_app, session

from app.services import services

log = logging.getLogger(__name__)

# Per client address: enough for a person who mistypes, far too few to guess a password.
LOGIN_LIMIT = "10/minute"
# A signed-in session lasts a working day; then the operator signs in again.
SESSION_SECONDS = 12 * 3600
OPERATOR_KEY = "ops_operator"
SINCE_KEY = "ops_since"
CREDENTIALS_KEY = "ops_credentials"


def credentials_match(username: str, password: str) -> bool:
    """True when both equal the configured ops credentials; the time taken reveals neither."""
    expected_username, expected_password = services().settings.ops_credentials()
    # Both comparisons always run (no short-circuit), over digests of equal length.
    username_ok = hmac.compare_digest(_digest(username), _digest(expected_username))
    password_ok = hmac.compare_digest(_digest(password), _digest(expected_password))
    return username_ok & password_ok


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _credentials_tag() -> str:
    # Changing OPS_PASSWORD (or SECRET_KEY) ends every session signed in under the old one. A keyed
    # digest, not the password's hash: the cookie is readable by whoever holds it.
    username, password = services().settings.ops_credentials()
    secret = current_app.secret_key or ""
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(key, f"{username}\0{password}".encode(), hashlib.sha256).hexdigest()[:32]


def sign_in(username: str) -> None:
    """Start a fresh session for `username` (nothing of the anonymous session is kept)."""
    session.clear()
    session[OPERATOR_KEY] = username
    session[SINCE_KEY] = int(time.time())
    session[CREDENTIALS_KEY] = _credentials_tag()


def sign_out() -> None:
    """Forget the operator and everything else in the session."""
    session.clear()


def current_operator() -> str | None:
    """The signed-in operator's name, or None (never signed in, expired, or credentials changed)."""
    operator = session.get(OPERATOR_KEY)
    since = session.get(SINCE_KEY)
    if not isinstance(operator, str) or not isinstance(since, int):
        return None
    if time.time() - since > SESSION_SECONDS:
        return None
    tag = session.get(CREDENTIALS_KEY)
    if not isinstance(tag, str) or not hmac.compare_digest(tag, _credentials_tag()):
        return None
    return operator
