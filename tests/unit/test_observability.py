"""No personal data leaves the process through Sentry events or log lines."""

from __future__ import annotations

import logging

import pytest

from config.observability import redact_record, scrub_event, scrub_text


def test_addresses_are_redacted_from_text() -> None:
    assert (
        scrub_text("no customer for hanako.yamada+1@example.co.jp found")
        == "no customer for [redacted] found"
    )


def test_sentry_event_keeps_no_personal_data() -> None:
    event = {
        "user": {"email": "hanako@example.com", "ip_address": "203.0.113.9"},
        "request": {
            "method": "POST",
            "url": "https://shop.example/api/registrations?email=hanako@example.com",
            "data": {"email": "hanako@example.com"},
            "headers": {"Cookie": "session=abc"},
            "cookies": {"session": "abc"},
        },
        "exception": {
            "values": [
                {
                    "value": "Email hanako@example.com has already been taken",
                    "stacktrace": {"frames": [{"function": "f", "vars": {"email": "hanako@example.com"}}]},
                }
            ]
        },
        "logentry": {"message": "sync failed for %s", "params": ["hanako@example.com"]},
        "extra": {"payload": {"email": "hanako@example.com"}},
    }
    scrubbed = scrub_event(event)
    assert "hanako" not in repr(scrubbed)
    assert scrubbed["request"] == {"method": "POST", "url": "https://shop.example/api/registrations"}


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("membersync.test")
    record = logger.makeRecord(
        "membersync.test", logging.INFO, __file__, 1, "member %s", ("a@b.example",), None
    )
    redact_record(record)
    assert record.getMessage() == "member [redacted]"


def test_every_logger_is_redacted_once_the_app_is_built(caplog: pytest.LogCaptureFixture) -> None:
    from config.settings import Settings
    from tasks.factory import create_celery_app

    create_celery_app(Settings.from_env(environ={"DATABASE_URL": "sqlite:///:memory:"}))
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.worker.strategy").info("Task received for %s", "hanako@example.com")
        try:
            raise ValueError("no member for hanako@example.com")
        except ValueError:
            logging.getLogger("some.library").exception("failed")
    assert "hanako" not in caplog.text
    assert "Task received for [redacted]" in caplog.text
    assert all("hanako" not in (record.exc_text or "") for record in caplog.records)
