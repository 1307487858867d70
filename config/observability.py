"""Logging and Sentry set-up, with personal data kept out of both.

Tasks carry ids only, so tracebacks rarely hold personal data; these hooks make sure of it: no
request bodies, cookies, headers, user info or local variables ever leave the process.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from config.settings import Settings

# What is replaced anywhere in a message, exception text or breadcrumb before it leaves the process:
# email addresses; phone numbers (Japanese national or E.164, with or without separators); and
# credentials (bearer tokens, Shopify and HubSpot access tokens, basic-auth user info in URLs, the
# Smaregi webhook's path secret).
_EMAIL = re.compile(r"[^@\s\"'<>/:]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w./])(?:\+\d{1,3}[\s-]?)?\(?0?\d{1,4}\)?(?:[\s-]?\d{2,4}){2,3}(?![\w.])")
_TOKEN = re.compile(r"(?i)\bbearer\s+\S+|\b(?:shpat|shpca|shppa|pat)[-_][\w-]+")
_USERINFO = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# The Smaregi webhook carries its secret in the URL path (app.webhooks): access logs, werkzeug's
# request lines and Sentry URLs would otherwise record it.
_SECRET_PATH = re.compile(r"(/webhooks/smaregi/)[^\s?#\"']+")
_REDACTED = "[redacted]"
# Breadcrumb data that can carry a request or response body, or a query string.
_BODY_KEYS = {"body", "data", "request_body", "response_body", "http.query", "http.fragment", "query"}


def scrub_text(text: str) -> str:
    """`text` without email addresses, phone numbers or credentials."""
    text = _TOKEN.sub(_REDACTED, text)
    text = _USERINFO.sub("://" + _REDACTED + "@", text)
    text = _SECRET_PATH.sub(r"\1***", text)
    text = _EMAIL.sub(_REDACTED, text)
    return _PHONE.sub(
        lambda match: _REDACTED if sum(c.isdigit() for c in match.group()) >= 9 else match.group(), text
    )


def _without_query(url: str) -> str:
    return scrub_text(url.split("?", 1)[0].split("#", 1)[0])


def scrub_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry before_breadcrumb: URLs without query strings, no bodies, messages scrubbed."""
    if isinstance(crumb.get("message"), str):
        crumb["message"] = scrub_text(crumb["message"])
    data = crumb.get("data")
    if isinstance(data, dict):
        for key in list(data):
            if key in _BODY_KEYS:
                del data[key]
            elif key == "url" and isinstance(data[key], str):
                data[key] = _without_query(data[key])
            elif isinstance(data[key], str):
                data[key] = scrub_text(data[key])
    return crumb


def scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry before_send: drop request data and user, and redact addresses in messages."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in ("method", "url") if key in request}
        if "url" in event["request"]:
            event["request"]["url"] = _without_query(event["request"]["url"])
    for exception in (event.get("exception") or {}).get("values", []) or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = scrub_text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames", []) or []:
            frame.pop("vars", None)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = scrub_text(logentry[key])
        logentry.pop("params", None)
    if isinstance(event.get("message"), str):
        event["message"] = scrub_text(event["message"])
    event.pop("extra", None)
    breadcrumbs = event.get("breadcrumbs")
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in crumbs if isinstance(crumbs, list) else []:
        if isinstance(crumb, dict):
            scrub_breadcrumb(crumb)
    return event


def _knows_data_collection() -> bool:
    """Whether this sentry-sdk has the `data_collection` option (2.x releases from late 2026)."""
    import importlib.util

    return importlib.util.find_spec("sentry_sdk.data_collection") is not None


def init_sentry(settings: Settings, *, transport: Any = None) -> bool:
    """Start Sentry when SENTRY_DSN is set; returns whether it was started (`transport`: tests)."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn.value,
        "environment": settings.environment,
        "include_local_variables": False,
        "max_request_body_size": "never",
        "before_send": scrub_event,
        "before_breadcrumb": scrub_breadcrumb,
        "transport": transport,
    }
    if _knows_data_collection():
        # Newer SDKs: collect nothing personal by category (user, cookies, headers, query, bodies,
        # frame variables); `send_default_pii` is deprecated there.
        off = {"mode": "off"}
        options["data_collection"] = {
            "user_info": False,
            "cookies": off,
            "http_headers": {"request": off},
            "http_bodies": [],
            "url_query_params": off,
            "stack_frame_variables": False,
            "database_query_data": False,
        }
    else:
        options["send_default_pii"] = False
    sentry_sdk.init(**options)
    return True


_original_factory = logging.getLogRecordFactory()


def _redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _original_factory(*args, **kwargs)
    redact_record(record)
    return record


def redact_record(record: logging.LogRecord) -> None:
    """Format the record's message (and traceback) now, with addresses removed."""
    message = record.getMessage()
    record.msg = scrub_text(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))


def install_log_redaction() -> None:
    """Redact every log record at creation, whatever handler or library formats it later.

    A record factory rather than a handler filter: Celery, gunicorn and Flask install handlers of
    their own after start-up, and a filter on today's handlers would miss tomorrow's.
    """
    if logging.getLogRecordFactory() is not _redacted_record:
        logging.setLogRecordFactory(_redacted_record)
