"""Logging and Sentry set-up, with personal data kept out of both.

Tasks carry ids only, so tracebacks rarely hold personal data; these hooks make sure of it: no
request bodies, cookies, headers, user info or local variables ever leave the process.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from config.settings import Settings

# An email address anywhere in a message or exception text is replaced before sending.
_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")
_REDACTED = "[redacted]"


def scrub_text(text: str) -> str:
    """`text` with email addresses removed."""
    return _EMAIL.sub(_REDACTED, text)


def scrub_event(event: dict[str, Any], _hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry before_send: drop request data and user, and redact addresses in messages."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {key: request[key] for key in ("method", "url") if key in request}
        if "url" in event["request"]:
            event["request"]["url"] = event["request"]["url"].split("?", 1)[0]
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
    return event


def init_sentry(settings: Settings) -> bool:
    """Start Sentry when SENTRY_DSN is set; returns whether it was started."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.value,
        environment=settings.environment,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,  # type: ignore[arg-type]
    )
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
