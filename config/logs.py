"""Log lines: JSON in production, readable in development, each with the registration, task and
system it concerns (never personal data: records are redacted at creation, see observability).

Only the process entry points (the gunicorn target, the Celery worker and beat) install this, so
a library user or a test keeps its own logging.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from config.settings import Settings

# The registration and system the current code works on (set by a step task around its run).
_context: ContextVar[dict[str, str]] = ContextVar("membersync_log_context", default={})  # noqa: B039
FIELDS = ("registration_id", "task_id", "system")


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Attach `fields` (registration_id, system) to every log record made inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _current_task_id() -> str | None:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    task = current_task._get_current_object() if current_task else None
    request = getattr(task, "request", None)
    return getattr(request, "id", None)


class ContextFilter(logging.Filter):
    """Puts registration_id, task_id and system on every record (None when not known)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        record.registration_id = context.get("registration_id")
        record.system = context.get("system")
        record.task_id = _current_task_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (what log collectors parse without rules)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
            **{name: getattr(record, name, None) for name in FIELDS if getattr(record, name, None)},
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """`time LEVEL logger: message [registration=… task=… system=…]` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = [
            f"{name.removesuffix('_id')}={getattr(record, name)}"
            for name in FIELDS
            if getattr(record, name, None)
        ]
        return f"{line} [{' '.join(known)}]" if known else line


def configure_logging(settings: Settings, process: str, level: str = "INFO") -> None:
    """Send this process's logs to stderr: JSON lines in production, readable lines in dev mode."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(ReadableFormatter() if settings.dev_mode else JsonFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
