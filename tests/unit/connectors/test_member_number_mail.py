"""The member-number email: sent when the welcome went out before Smaregi gave the number."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

import pytest

from connectors.errors import PermanentError
from connectors.fakes import FakeMailer
from connectors.mailer import (
    MemberNumberMessage,
    code128_png,
    member_number_message_id,
    render_member_number,
    welcome_message_id,
)
from tests.support.mail import MAIL_FROM, body, recording_mailer

REGISTRATION_ID = "7d6f1c2e-8a3b-4c5d-9e0f-112233445566"
MEMBER_NUMBER = "4913205588312347"


def number_mail(**changes: Any) -> MemberNumberMessage:
    fields: dict[str, Any] = {
        "to": "hanako@example.jp",
        "first_name": "花子",
        "last_name": "山田",
        "locale": "ja",
        "member_number": MEMBER_NUMBER,
        "message_id": member_number_message_id(REGISTRATION_ID, domain="membersync.example"),
        **changes,
    }
    return MemberNumberMessage(**fields)


def test_its_message_id_is_deterministic_and_never_the_welcomes() -> None:
    number_id = member_number_message_id(REGISTRATION_ID, domain="membersync.example")
    assert number_id == f"<member-number.{REGISTRATION_ID}@membersync.example>"
    assert number_id == member_number_message_id(REGISTRATION_ID, domain="membersync.example")
    assert number_id != welcome_message_id(REGISTRATION_ID, domain="membersync.example")
    with pytest.raises(ValueError):
        member_number_message_id("a b", domain="membersync.example")


@pytest.mark.parametrize(
    ("locale", "subject", "greeting", "number_line"),
    [
        (
            "ja",
            "【会員番号のお知らせ】会員バーコードをお送りします",
            "山田 花子 様",
            f"会員番号: {MEMBER_NUMBER}",
        ),
        ("en", "Your membership number", "Dear 花子 山田,", f"Membership number: {MEMBER_NUMBER}"),
    ],
)
def test_it_carries_the_number_as_text_and_as_an_inline_barcode(
    locale: str, subject: str, greeting: str, number_line: str
) -> None:
    message = render_member_number(number_mail(locale=locale), mail_from=MAIL_FROM)
    assert message["Subject"] == subject
    assert message["Message-ID"] == f"<member-number.{REGISTRATION_ID}@membersync.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = body(message, "plain"), body(message, "html")
    assert text.startswith(greeting) and number_line in text
    assert MEMBER_NUMBER in html and f'<html lang="{locale}">' in html
    [image] = [part for part in message.walk() if part.get_content_maintype() == "image"]
    assert image.get_content() == code128_png(MEMBER_NUMBER, height_px=1).png
    content_id = image["Content-ID"]
    assert re.fullmatch(r"<barcode\.[0-9a-f]{16}@membersync\.example>", content_id)
    assert f'src="cid:{content_id[1:-1]}"' in html


def test_it_does_not_promise_the_number_again() -> None:
    for locale in ("ja", "en"):
        text = body(render_member_number(number_mail(locale=locale), mail_from=MAIL_FROM), "plain")
        assert "separate email" not in text and "あらためて" not in text


def test_customer_values_are_escaped_in_html() -> None:
    html = body(render_member_number(number_mail(first_name="<b>x</b>"), mail_from=MAIL_FROM), "html")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_the_mailer_sends_it_with_its_own_message_id() -> None:
    real, connections = recording_mailer()
    real.send_member_number(number_mail(message_id=real.member_number_message_id(REGISTRATION_ID)))
    [sent] = [message for smtp in connections for message in smtp.sent]
    assert sent["Message-ID"] == f"<member-number.{REGISTRATION_ID}@membersync.example>"
    assert sent["To"] == "hanako@example.jp"


def test_a_number_that_cannot_be_drawn_is_permanent_and_nothing_is_sent() -> None:
    real, connections = recording_mailer()
    for number in ("", "会員"):
        with pytest.raises(PermanentError):
            real.send_member_number(number_mail(member_number=number))
    assert connections == []  # refused before any connection


def test_the_fake_mailer_keeps_number_mails_in_order_with_welcomes() -> None:
    fake = FakeMailer()
    fake.send_member_number(number_mail())
    fake.send_member_number(number_mail())
    assert fake.sent == [number_mail(), number_mail()]
    assert [name for name, _ in fake.calls] == ["send_member_number", "send_member_number"]


def test_a_long_message_id_is_never_folded() -> None:
    """A folded Message-ID reads back with a leading space, and would look like another message."""
    long_domain = "mail.a-rather-long-shop-name.example.co.jp"
    message_id = member_number_message_id(REGISTRATION_ID, domain=long_domain)
    raw = render_member_number(number_mail(message_id=message_id), mail_from=MAIL_FROM).as_bytes()
    assert f"\nMessage-ID: {message_id}\n".encode() in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == message_id
