"""CSRF tokens for HTML forms: a random secret in the signed session, handed out signed and timed.

The session cookie (signed with SECRET_KEY) holds a per-browser secret; each rendered form carries
that secret signed again with a salt and a timestamp. A post is genuine when its token unsigns, is
younger than TOKEN_MAX_AGE and equals the session's secret. Another site can make a browser post,
but it can read neither the cookie nor the page, so it cannot produce a matching token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import current_app, session
from itsdangerous import BadData, URLSafeTimedSerializer

FIELD_NAME = "csrf_token"
SESSION_KEY = "csrf_secret"
# Long enough for someone who leaves the form open over lunch; short enough that a leaked token
# (a proxy log, a shared screen) soon stops working.
TOKEN_MAX_AGE_SECONDS = 6 * 3600
_SALT = "membersync.form.csrf"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=_SALT)


def issue_token() -> str:
    """A token for a form rendered now; starts the browser's session secret if there is none yet."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str):
        secret = secrets.token_urlsafe(32)
        session[SESSION_KEY] = secret
    return _serializer().dumps(secret)


def token_is_valid(token: str | None) -> bool:
    """True when `token` was issued to this browser's session within TOKEN_MAX_AGE_SECONDS."""
    secret = session.get(SESSION_KEY)
    if not token or not isinstance(secret, str):
        return False
    try:
        signed = _serializer().loads(token, max_age=TOKEN_MAX_AGE_SECONDS)
    except BadData:
        return False
    return isinstance(signed, str) and hmac.compare_digest(signed.encode(), secret.encode())
