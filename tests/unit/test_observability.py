"""No personal data leaves the process through Sentry events or log lines."""

from __future__ import annotations

import logging

import pytest

from config.observability import RedactingFilter, scrub_event, scrub_text


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
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "member [redacted]"
