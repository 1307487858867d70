"""Signing in to the ops console: a named operator (OPS_USERS / OPS_USERS_FILE, each with their own
password hash, `config.operators`) or the shared OPS_USERNAME / OPS_PASSWORD, compared in constant
time; a session opened on the server (`app.ops.sessions`) whose id the signed cookie carries. The
name signed in with is the operator the audit trail records. Every check of the ops
credentials (the console's sign-in, `/metrics`) goes through the failure throttle of
`config.credentials`, per client address and per username, shared with Flower through Redis."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping

from flask import Flask, current_app, g, request, session

from app.ops.sessions import SessionRegistry, SessionStoreUnavailable
from app.services import services
from config import credentials
from config.credentials import FailureThrottle, Verdict
from config.operators import load_operators, operator_matches
from config.settings import Settings

log = logging.getLogger(__name__)

# A signed-in session lasts a working day; then the operator signs in again.
SESSION_SECONDS = 12 * 3600
OPERATOR_KEY = "ops_operator"
SINCE_KEY = "ops_since"
CREDENTIALS_KEY = "ops_credentials"
SESSION_ID_KEY = "ops_session"
# With Redis down the console is needed most (its overview says what is down), so a sign-in then
# still opens it, for a short session that the server has no record of and so cannot end early.
OUTAGE_SESSION_SECONDS = 15 * 60
OUTAGE_KEY = "ops_outage_session"
THROTTLE_EXTENSION = "membersync_auth_throttle"
SESSIONS_EXTENSION = "membersync_ops_sessions"
OPERATORS_EXTENSION = "membersync_ops_operators"


def init_app(flask_app: Flask, settings: Settings) -> None:
    """One throttle and one session registry per app, on the Redis every process shares, and the
    named operators (a malformed OPS_USERS or OPS_USERS_FILE refuses to start: ConfigError)."""
    flask_app.extensions[THROTTLE_EXTENSION] = FailureThrottle.from_settings(settings)
    flask_app.extensions[SESSIONS_EXTENSION] = SessionRegistry.from_settings(settings)
    flask_app.extensions[OPERATORS_EXTENSION] = load_operators(settings)


def credentials_match(username: str, password: str) -> bool:
    """True when the pair is the shared ops login or a named operator's. A wrong pair's time reveals
    neither which half was wrong nor whether a named operator exists; the shared login's right pair
    skips the named check (scrypt: a /metrics scrape with it stays cheap)."""
    expected_username, expected_password = services().settings.ops_credentials()
    shared = credentials.credentials_match(username, password, expected_username, expected_password)
    return shared or operator_matches(_operators(), username, password)


def _operators() -> Mapping[str, str]:
    operators: Mapping[str, str] = current_app.extensions[OPERATORS_EXTENSION]
    return operators


def check_credentials(username: str, password: str) -> Verdict:
    """The ops login, throttled per client address and per username (429 once over the limit,
    even for the right pair)."""
    # A callable: the (scrypt) check runs only when neither the address nor the name is blocked.
    return _throttle().check(request.remote_addr, username, lambda: credentials_match(username, password))


def check_token(given: str, expected: str) -> Verdict:
    """A bearer token (no username: throttled per client address only)."""
    return _throttle().check(request.remote_addr, None, credentials.same_secret(given, expected))


def _throttle() -> FailureThrottle:
    throttle: FailureThrottle = current_app.extensions[THROTTLE_EXTENSION]
    return throttle


def _sessions() -> SessionRegistry:
    registry: SessionRegistry = current_app.extensions[SESSIONS_EXTENSION]
    return registry


def _credentials_tag(operator: str) -> str:
    # Changing OPS_PASSWORD (or SECRET_KEY) ends every session signed in under the old one; changing
    # a named operator's hash (or removing them) ends theirs. A keyed digest, not the password's
    # hash: the cookie is readable by whoever holds it.
    username, password = services().settings.ops_credentials()
    named = _operators().get(operator)
    material = f"{operator}\0named\0{named}" if named else f"{username}\0{password}"
    secret = current_app.secret_key or ""
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(key, material.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def sign_in(username: str) -> None:
    """Start a fresh session for `username` (nothing of the anonymous session is kept)."""
    try:
        session_id: str | None = _sessions().open(SESSION_SECONDS)
    except SessionStoreUnavailable:
        log.warning(
            "ops sessions: the session store did not answer; a short session that sign-out cannot end"
        )
        session_id = None
    session.clear()
    session[OPERATOR_KEY] = username
    session[SINCE_KEY] = int(time.time())
    session[CREDENTIALS_KEY] = _credentials_tag(username)
    if session_id is None:
        session[OUTAGE_KEY] = True
    else:
        session[SESSION_ID_KEY] = session_id


def sign_out() -> None:
    """End the session on the server (a copy of the cookie is refused from now on) and forget it."""
    session_id = session.get(SESSION_ID_KEY)
    if isinstance(session_id, str):
        _sessions().close(session_id)
    session.clear()
    g.pop("ops_session_open", None)


def current_operator() -> str | None:
    """The signed-in operator's name, or None (never signed in, expired, or credentials changed)."""
    operator = session.get(OPERATOR_KEY)
    since = session.get(SINCE_KEY)
    if not isinstance(operator, str) or not isinstance(since, int):
        return None
    if time.time() - since > SESSION_SECONDS:
        return None
    tag = session.get(CREDENTIALS_KEY)
    if not isinstance(tag, str) or not hmac.compare_digest(tag, _credentials_tag(operator)):
        return None
    return operator if _session_is_open() else None


def _session_is_open() -> bool:
    """The cookie's session is still open on the server (asked once per request), or is a short
    one opened while the server could not record it."""
    if "ops_session_open" not in g:
        session_id = session.get(SESSION_ID_KEY)
        if isinstance(session_id, str):
            g.ops_session_open = _sessions().is_open(session_id)
        else:
            since = session.get(SINCE_KEY)
            g.ops_session_open = (
                session.get(OUTAGE_KEY) is True
                and isinstance(since, int)
                and time.time() - since <= OUTAGE_SESSION_SECONDS
            )
    return bool(g.ops_session_open)
