"""Log lines carry the registration, task and system they concern; JSON in production, readable in dev."""

from __future__ import annotations

import io
import json
import logging

from config.logs import ContextFilter, JsonFormatter, ReadableFormatter, log_context
from config.observability import install_log_redaction


def _line(formatter: logging.Formatter, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("membersync.test.logs")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    install_log_redaction()
    logger.info(message, *args)
    return stream.getvalue().strip()


def test_production_lines_are_json_with_their_context() -> None:
    with log_context(registration_id="r-1", system="smaregi"):
        line = _line(JsonFormatter("worker"), "step %s retries for %s", "smaregi", "hanako@example.com")
    document = json.loads(line)
    assert document["registration_id"] == "r-1" and document["system"] == "smaregi"
    assert document["process"] == "worker" and document["level"] == "INFO"
    assert document["message"] == "step smaregi retries for [redacted]"
    assert "task_id" not in document  # outside a task: no empty fields


def test_dev_lines_are_readable_and_context_ends_with_the_block() -> None:
    with log_context(registration_id="r-2", system="email"):
        inside = _line(ReadableFormatter(), "sent")
    outside = _line(ReadableFormatter(), "idle")
    assert inside.endswith("membersync.test.logs: sent [registration=r-2 system=email]")
    assert outside.endswith("membersync.test.logs: idle")
