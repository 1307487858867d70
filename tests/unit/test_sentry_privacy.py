"""What reaches Sentry, captured at its transport: no e-mail, name, phone, address or token, whether
in an event, an exception, a log line, a request or a breadcrumb (URLs, query strings, bodies)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from config.observability import init_sentry
from config.settings import Secret, Settings

EMAIL, NAME, PHONE, ADDRESS = "hanako.yamada@example.com", "Yamada Hanako", "090-1234-5678", "渋谷区神南1-2-3"
TOKEN = "shpat_0123456789abcdef"
SECRETS = (EMAIL, "hanako.yamada", NAME, "Hanako", PHONE, "09012345678", "+819012345678", ADDRESS, TOKEN)


class Captured(Transport):
    """Keeps every envelope instead of sending it."""

    envelopes: list[str] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        Captured.envelopes.append(envelope.serialize().decode("utf-8", errors="replace"))


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture()
def sentry() -> Iterator[list[str]]:
    Captured.envelopes = []
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "test", "DATABASE_URL": "sqlite://"},
        sentry_dsn=Secret("https://public@sentry.invalid/1"),
    )
    assert init_sentry(settings, transport=Captured)
    yield Captured.envelopes
    sentry_sdk.get_client().close()
    sentry_sdk.init()


def test_nothing_personal_reaches_sentry(sentry: list[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # An outgoing call whose URL carries personal data: an HTTP breadcrumb.
        requests.get(
            f"http://127.0.0.1:{server.server_port}/pos/customers",
            params={"mail_address": EMAIL, "phone": PHONE},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
    finally:
        server.shutdown()
    log = logging.getLogger("membersync.test")
    log.info("matched %s by phone %s", EMAIL, PHONE)  # a log breadcrumb
    log.error("refused: %s at %s, token %s", EMAIL, PHONE, TOKEN)  # an event
    try:
        raise ValueError(f"Email {EMAIL} has already been taken; phone {PHONE}; Bearer {TOKEN}")
    except ValueError as error:
        sentry_sdk.capture_exception(error)
    sentry_sdk.flush()

    assert len(sentry) >= 2
    sent = "\n".join(sentry)
    assert "[redacted]" in sent
    leaked = [secret for secret in SECRETS if secret in sent]
    assert leaked == [], leaked
    # The breadcrumb kept the path for ops, without its query string.
    events = [
        json.loads(line) for envelope in sentry for line in envelope.splitlines() if '"breadcrumbs"' in line
    ]
    urls = [
        crumb.get("data", {}).get("url")
        for event in events
        for crumb in (event.get("breadcrumbs") or {}).get("values", [])
        if crumb.get("category") == "httplib"
    ]
    assert urls and all(url.endswith("/pos/customers") for url in urls)


def test_a_failing_request_sends_no_body_query_or_headers(sentry: list[str]) -> None:
    from app import create_app

    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "DATABASE_URL": "sqlite://"})
    flask_app = create_app(settings, test_config={"PROPAGATE_EXCEPTIONS": False})

    def boom() -> str:
        raise RuntimeError("the handler broke")

    flask_app.add_url_rule("/boom", "boom", boom, methods=["POST"])
    response = flask_app.test_client().post(
        f"/boom?email={EMAIL}",
        json={"email": EMAIL, "last_name": NAME, "phone": PHONE, "address": ADDRESS},
        headers={"Authorization": f"Bearer {TOKEN}", "Cookie": f"session={TOKEN}"},
    )
    assert response.status_code == 500
    sentry_sdk.flush()
    sent = "\n".join(sentry)
    assert "the handler broke" in sent
    leaked = [secret for secret in SECRETS if secret in sent]
    assert leaked == [], leaked
