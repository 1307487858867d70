"""After a real run, the registrant's e-mail, name and phone are nowhere but the database and the
vendors: not in any Redis key or value (broker messages, locks, rate limits), not in any log line of
the worker, not in any Sentry event (sent by the real SDK to a local endpoint)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import sentry_sdk

from registrations.alerts import alert_new_dead_letters
from tests.support.pipeline import Pipeline, person

EMAIL, FIRST, LAST, PHONE = "sakurako.kinoshita@example.com", "Sakurako", "Kinoshita", "09087654321"
PERSONAL = (EMAIL, "sakurako.kinoshita", FIRST, LAST, PHONE, "+819087654321", "90-8765-4321")


class _SentryIngest(BaseHTTPRequestHandler):
    """Sentry's envelope endpoint: keeps what the SDK sends."""

    received: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        _SentryIngest.received.append(body.decode("utf-8", errors="replace"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture()
def sentry_ingest() -> Iterator[tuple[str, list[str]]]:
    _SentryIngest.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SentryIngest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://public@127.0.0.1:{server.server_port}/1", _SentryIngest.received
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # this process's Sentry off again for the tests that follow
        server.shutdown()


def _redis_dump(url: str) -> str:
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        parts.append(key.decode(errors="replace"))
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "list":
            parts.extend(str(item) for item in client.lrange(key, 0, -1))
        elif kind == "hash":
            parts.extend(f"{k!r}={v!r}" for k, v in client.hgetall(key).items())
        elif kind == "set":
            parts.extend(str(item) for item in client.smembers(key))
        elif kind == "zset":
            parts.extend(str(item) for item in client.zrange(key, 0, -1))
    return "\n".join(parts)


def test_the_registrant_is_in_no_key_log_or_event(
    pipeline: Pipeline, sandbox: Any, clean_redis: str, sentry_ingest: tuple[str, list[str]]
) -> None:
    dsn, envelopes = sentry_ingest
    pipeline.configure(SENTRY_DSN=dsn)
    pipeline.start_worker()
    # HubSpot keeps failing: the step is dead-lettered, ops get a digest and Sentry an event.
    sandbox.faults("hubspot", error_rate=1.0)
    registration_id = pipeline.register(person(1, email=EMAIL, first_name=FIRST, last_name=LAST, phone=PHONE))
    assert pipeline.wait_settled([registration_id]) == {registration_id: "partial"}
    assert alert_new_dead_letters(pipeline.settings, pipeline.database) == 1
    sentry_sdk.flush()

    where = {
        "redis": _redis_dump(clean_redis),
        "worker log": pipeline.worker_log_tail(chars=10_000_000),
        "sentry": "\n".join(envelopes),
    }
    assert where["redis"] and where["worker log"] and envelopes
    found = {place: [value for value in PERSONAL if value in text] for place, text in where.items()}
    assert found == {place: [] for place in where}
