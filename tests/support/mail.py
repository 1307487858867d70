"""A Mailer whose SMTP connections are recorded instead of opened: for the mailer's unit tests."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any, cast

from connectors.mailer import Mailer

MAIL_FROM = "Membersync <welcome@membersync.example>"


class RecordingSMTP:
    """Stands in for smtplib.SMTP: keeps what was sent on this connection and whether it quit."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.sent: list[EmailMessage] = []
        self.quit_called = False

    def ehlo_or_helo_if_needed(self) -> None:
        pass

    def mail(self, sender: str, options: Any = ()) -> tuple[int, bytes]:
        return 250, b"2.1.0 Ok"

    def rcpt(self, address: str) -> tuple[int, bytes]:
        return 250, b"2.1.5 Ok"

    def data(self, data: bytes) -> tuple[int, bytes]:
        self.sent.append(cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default)))
        return 250, b"2.0.0 Ok: queued"

    def quit(self) -> None:
        self.quit_called = True

    def close(self) -> None:
        pass


def recording_mailer(mail_from: str = MAIL_FROM) -> tuple[Mailer, list[RecordingSMTP]]:
    """A Mailer and the connections it opened, in order."""
    connections: list[RecordingSMTP] = []

    def factory(host: str, port: int, *, timeout: float) -> RecordingSMTP:
        connections.append(RecordingSMTP(host, port, timeout=timeout))
        return connections[-1]

    mailer = Mailer(
        host="smtp.example",
        port=25,
        username=None,
        password="",
        starttls=False,
        mail_from=mail_from,
        timeout=5,
        smtp_factory=factory,  # type: ignore[arg-type]
    )
    return mailer, connections


def body(message: EmailMessage, subtype: str) -> str:
    """The decoded text of a message's `subtype` ("plain" / "html") part."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())
