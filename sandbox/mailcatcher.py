"""SMTP catcher (default 8025) with an HTTP inbox (default 8026) for the welcome emails.

`MailCatcher(host, smtp_port, http_port).start()` runs an aiosmtpd server that keeps every message raw
(multipart intact) and a Flask inbox: `GET /api/messages` (newest first), `GET /api/messages/<id>`
(`?raw=1` or `/raw` for the RFC 822 source), `DELETE /api/messages`, `/_sandbox/state` /
`/_sandbox/reset`, and pages for people (the inbox at `/`, each mail at `/messages/<id>` as its
recipient sees it: sandbox.mailpage). `create_inbox_app(mailbox)` builds the HTTP side alone.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import itertools
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask, Response, jsonify, request

from sandbox.common import ThreadedServer
from sandbox.mailpage import install_mail_pages

SUMMARY_HEADERS = ("From", "To", "Subject", "Message-ID", "Date")
TEXT_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class CaughtMessage:
    """One message as it came over SMTP: the envelope and the raw bytes, parsed on demand."""

    id: str
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    received_at: str
    parsed: EmailMessage = field(repr=False, compare=False)

    @classmethod
    def from_smtp(cls, message_id: str, mail_from: str, recipients: list[str], raw: bytes) -> CaughtMessage:
        """Parse a message received over SMTP."""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return cls(message_id, mail_from, tuple(recipients), raw, stamp, parsed)

    def header(self, name: str) -> str | None:
        """A header's decoded value (RFC 2047 words decoded), or None."""
        value = self.parsed.get(name)
        return None if value is None else str(value)

    def text(self, subtype: str) -> str | None:
        """The decoded text/plain or text/html body, or None."""
        part = self.parsed.get_body(preferencelist=(subtype,))
        return None if part is None else str(part.get_content())

    def _other_parts(self) -> list[EmailMessage]:
        """Every non-multipart part except the text bodies: attachments and inline images."""
        bodies = {id(self.parsed.get_body(preferencelist=(subtype,))) for subtype in ("plain", "html")}
        return [
            part
            for part in self.parsed.walk()
            if not part.is_multipart() and id(part) not in bodies and isinstance(part, EmailMessage)
        ]

    def parts(self) -> list[dict[str, Any]]:
        """Every non-multipart part except the text bodies: attachments and inline images."""
        listed = []
        for part in self._other_parts():
            payload = part.get_payload(decode=True) or b""
            listed.append(
                {
                    "content_type": part.get_content_type(),
                    "content_id": part.get("Content-ID"),
                    "disposition": part.get_content_disposition(),
                    "filename": part.get_filename(),
                    "size": len(payload),
                }
            )
        return listed

    def part_at(self, index: int) -> tuple[str, bytes] | None:
        """The content type and decoded bytes of `parts()[index]`, or None."""
        others = self._other_parts()
        if not 0 <= index < len(others):
            return None
        part = others[index]
        return part.get_content_type(), bytes(part.get_payload(decode=True) or b"")

    def part_by_content_id(self, content_id: str) -> tuple[str, bytes] | None:
        """The part a `cid:` URL names (the Content-ID without its angle brackets), or None."""
        for part in self._other_parts():
            if str(part.get("Content-ID", "")).strip().strip("<>") == content_id:
                return part.get_content_type(), bytes(part.get_payload(decode=True) or b"")
        return None

    def summary(self) -> dict[str, Any]:
        """The listing entry: envelope, main headers, size, a text preview and the parts (a copy)."""
        return dict(self._summary)

    @cached_property
    def _summary(self) -> dict[str, Any]:
        # Worked out once: a caught message never changes, and a listing of thousands (a chaos run's
        # check) would otherwise parse every body again on each request.
        text = self.text("plain")
        return {
            "id": self.id,
            "from": self.header("From"),
            "to": self.header("To"),
            "recipients": list(self.recipients),
            "subject": self.header("Subject"),
            "message_id": self.header("Message-ID"),
            "date": self.header("Date"),
            "received_at": self.received_at,
            "size": len(self.raw),
            "text": None if text is None else text[:TEXT_PREVIEW_CHARS],
            "parts": self.parts(),
        }

    def detail(self) -> dict[str, Any]:
        """Everything: the summary, all headers, the full text and HTML bodies."""
        return {
            **self.summary(),
            "mail_from": self.mail_from,
            "headers": [[name, str(value)] for name, value in self.parsed.items()],
            "text": self.text("plain"),
            "html": self.text("html"),
        }


class Mailbox:
    """Caught messages, safe to use from the SMTP thread and the HTTP threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, CaughtMessage] = {}
        self._ids = itertools.count(1)

    def deliver(self, mail_from: str, recipients: list[str], raw: bytes) -> CaughtMessage:
        """Keep one message; returns it with its id."""
        with self._lock:
            message = CaughtMessage.from_smtp(str(next(self._ids)), mail_from, recipients, raw)
            self._messages[message.id] = message
        return message

    def newest_first(self) -> list[CaughtMessage]:
        """Every message, newest first."""
        with self._lock:
            return list(reversed(self._messages.values()))

    def get(self, message_id: str) -> CaughtMessage | None:
        """One message by id, or None."""
        with self._lock:
            return self._messages.get(message_id)

    def clear(self) -> None:
        """Drop every message."""
        with self._lock:
            self._messages.clear()


class _CatchAll:
    """The aiosmtpd handler: accept every message for every recipient."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # original_content is the exact byte stream (no decoding), so multipart bodies stay intact.
        raw = envelope.original_content or envelope.content
        self.mailbox.deliver(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw))
        return "250 Message accepted for delivery"


def create_inbox_app(mailbox: Mailbox) -> Flask:
    """The HTTP inbox over a mailbox: JSON API, raw source, HTML list and the sandbox controls."""
    app = Flask("sandbox.mailcatcher")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # 山田, not \u5c71\u7530

    @app.get("/api/messages")
    def list_messages() -> Response:
        recipient = (request.args.get("to") or "").lower()
        messages = [
            message.summary()
            for message in mailbox.newest_first()
            if not recipient or recipient in (address.lower() for address in message.recipients)
        ]
        return jsonify(messages)

    @app.delete("/api/messages")
    def delete_messages() -> Response:
        mailbox.clear()
        return jsonify({"deleted": True})

    @app.get("/api/messages/<message_id>")
    def show_message(message_id: str) -> Response | tuple[Response, int]:
        message = mailbox.get(message_id)
        if message is None:
            return jsonify({"error": f"no message {message_id}"}), 404
        if request.args.get("raw"):
            return _raw(message)
        return jsonify(message.detail())

    @app.get("/api/messages/<message_id>/raw")
    def show_raw(message_id: str) -> Response | tuple[Response, int]:
        message = mailbox.get(message_id)
        if message is None:
            return jsonify({"error": f"no message {message_id}"}), 404
        return _raw(message)

    install_mail_pages(app, mailbox)

    @app.get("/_sandbox/state")
    def state() -> Response:
        return jsonify({"messages": [message.summary() for message in mailbox.newest_first()]})

    @app.post("/_sandbox/reset")
    def reset() -> Response:
        mailbox.clear()
        return jsonify({"reset": True})

    return app


def _raw(message: CaughtMessage) -> Response:
    return Response(message.raw, mimetype="message/rfc822")


def _free_port(host: str) -> int:
    # aiosmtpd's controller probes the port it was given, so port 0 must become a real port first.
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class MailCatcher:
    """The SMTP server and its HTTP inbox, started and stopped together."""

    def __init__(self, host: str = "127.0.0.1", smtp_port: int = 8025, http_port: int = 8026) -> None:
        self.host = host
        self.mailbox = Mailbox()
        self.smtp_port = smtp_port or _free_port(host)
        self._smtp = Controller(_CatchAll(self.mailbox), hostname=host, port=self.smtp_port)
        self.inbox = ThreadedServer(create_inbox_app(self.mailbox), host, http_port, name="mailcatcher")
        self._smtp_running = False

    @property
    def url(self) -> str:
        """The HTTP inbox's base URL."""
        return self.inbox.url

    def start(self) -> MailCatcher:
        """Start the SMTP server and the HTTP inbox."""
        self._smtp.start()
        self._smtp_running = True
        try:
            self.inbox.start()
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers."""
        self.inbox.stop()
        if self._smtp_running:
            self._smtp.stop()
            self._smtp_running = False
