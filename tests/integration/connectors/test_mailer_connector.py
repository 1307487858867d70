"""The mailer over a real SMTP conversation with the sandbox mail catcher, read back from its inbox."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from connectors.errors import PermanentError, TransientError
from connectors.mailer import Mailer, NoticeMessage, WelcomeMessage, code128_png
from sandbox.mailcatcher import MailCatcher

pytestmark = pytest.mark.integration

MAIL_FROM = "Membersync <welcome@membersync.example>"
MEMBER_NUMBER = "4913205588312347"


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    running = MailCatcher(smtp_port=0, http_port=0).start()
    yield running
    running.stop()


def mailer_for(host: str, port: int, **options: Any) -> Mailer:
    settings: dict[str, Any] = {
        "username": None,
        "password": "",
        "starttls": False,
        "mail_from": MAIL_FROM,
        "timeout": 5.0,
        **options,
    }
    return Mailer(host=host, port=port, **settings)


def inbox(catcher: MailCatcher) -> list[dict[str, Any]]:
    response = requests.get(f"{catcher.url}/api/messages", timeout=5)
    response.raise_for_status()
    listing: list[dict[str, Any]] = response.json()
    return listing


def raw_message(catcher: MailCatcher, message_id: str) -> EmailMessage:
    response = requests.get(f"{catcher.url}/api/messages/{message_id}/raw", timeout=5)
    response.raise_for_status()
    parsed = email.message_from_bytes(response.content, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_send_welcome_delivers_both_alternatives_and_the_inline_barcode(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)
    registration_id = str(uuid.uuid4())
    message_id = mailer.welcome_message_id(registration_id)
    mailer.send_welcome(
        WelcomeMessage(
            to="hanako@example.jp",
            first_name="花子",
            last_name="山田",
            locale="ja",
            member_number=MEMBER_NUMBER,
            message_id=message_id,
        )
    )

    [summary] = inbox(catcher)
    assert summary["recipients"] == ["hanako@example.jp"]
    assert summary["message_id"] == message_id == f"<welcome.{registration_id}@membersync.example>"
    assert summary["subject"] == "会員登録ありがとうございます【会員番号のお知らせ】"
    assert summary["from"] == MAIL_FROM
    assert "山田 花子 様" in summary["text"] and MEMBER_NUMBER in summary["text"]

    detail = requests.get(f"{catcher.url}/api/messages/{summary['id']}", timeout=5).json()
    assert detail["mail_from"] == "welcome@membersync.example"
    assert "山田 花子 様" in detail["html"] and MEMBER_NUMBER in detail["html"]
    [image] = detail["parts"]
    assert image["content_type"] == "image/png"
    assert image["disposition"] == "inline"
    assert re.fullmatch(r"<barcode\.[0-9a-f]{16}@membersync\.example>", image["content_id"])
    assert f'src="cid:{image["content_id"][1:-1]}"' in detail["html"]

    # The bytes that crossed SMTP: the barcode is exactly the member number's, in the HTML's related part.
    parsed = raw_message(catcher, summary["id"])
    assert parsed.get_content_type() == "multipart/alternative"
    plain, related = parsed.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, png_part = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    assert png_part.get_content() == code128_png(MEMBER_NUMBER, height_px=1).png


def test_english_welcome_without_a_member_number(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)
    message_id = mailer.welcome_message_id("42")
    mailer.send_welcome(
        WelcomeMessage(
            to="taro@example.com",
            first_name="Taro",
            last_name="<b>Yamada</b>",
            locale="en",
            member_number=None,
            message_id=message_id,
        )
    )
    [summary] = inbox(catcher)
    assert summary["recipients"] == ["taro@example.com"]
    assert summary["message_id"] == "<welcome.42@membersync.example>"
    assert summary["parts"] == []
    assert "will follow" in summary["text"]
    detail = requests.get(f"{catcher.url}/api/messages/{summary['id']}", timeout=5).json()
    assert "Dear Taro &lt;b&gt;Yamada&lt;/b&gt;," in detail["html"]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound, so nothing else takes it, but never listening."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts the connection (the kernel's backlog) but never sends a greeting."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield int(listener.getsockname()[1])


def welcome() -> WelcomeMessage:
    return WelcomeMessage(
        to="hanako@example.jp",
        first_name="花子",
        last_name="山田",
        locale="ja",
        member_number=MEMBER_NUMBER,
        message_id="<welcome.1@membersync.example>",
    )


def test_connection_refused_is_transient(closed_port: int) -> None:
    with pytest.raises(TransientError, match="ConnectionRefusedError") as raised:
        mailer_for("127.0.0.1", closed_port).send_welcome(welcome())
    assert raised.value.system == "email"


def test_a_server_that_never_greets_times_out_as_transient(silent_port: int) -> None:
    with pytest.raises(TransientError, match="timed out"):
        mailer_for("127.0.0.1", silent_port, timeout=0.5).send_welcome(welcome())


def test_starttls_not_offered_is_permanent(catcher: MailCatcher) -> None:
    # The catcher speaks plain SMTP: no STARTTLS in its EHLO answer.
    with pytest.raises(PermanentError, match="SMTPNotSupportedError"):
        mailer_for(catcher.host, catcher.smtp_port, starttls=True).send_welcome(welcome())
    assert inbox(catcher) == []


def test_auth_not_offered_is_permanent(catcher: MailCatcher) -> None:
    with pytest.raises(PermanentError, match="SMTPNotSupportedError"):
        mailer_for(catcher.host, catcher.smtp_port, username="membersync", password="pw").send_welcome(
            welcome()
        )
    assert inbox(catcher) == []


def test_links_and_one_click_unsubscribe_survive_a_real_smtp_conversation(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)
    confirm = "https://shop.example/confirm/eyJjIjoiMSJ9.Z1x2.abc?from=mail&kind=marketing"
    unsubscribe = "https://shop.example/unsubscribe/" + "eyJjIjoiMyJ9.Z1x2.ghi-_" * 8
    mailer.send_welcome(
        WelcomeMessage(
            to="taro@example.com",
            first_name="Taro",
            last_name="Yamada",
            locale="en",
            member_number=MEMBER_NUMBER,
            message_id=mailer.welcome_message_id("43"),
            confirm_marketing_url=confirm,
            unsubscribe_url=unsubscribe,
        )
    )
    [summary] = inbox(catcher)
    parsed = raw_message(catcher, summary["id"])
    # Longer than a line, yet never folded: a client's one-click unsubscribe POSTs to exactly this.
    assert parsed["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert confirm in summary["text"].splitlines()
    assert f"To stop news by e-mail: {unsubscribe}" in summary["text"].splitlines()
    detail = requests.get(f"{catcher.url}/api/messages/{summary['id']}", timeout=5).json()
    assert (
        'href="https://shop.example/confirm/eyJjIjoiMSJ9.Z1x2.abc?from=mail&amp;kind=marketing"'
        in detail["html"]
    )


def test_the_notice_reaches_the_address_with_no_name_or_number(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)
    message_id = mailer.notice_message_id("44")
    mailer.send_notice(
        NoticeMessage(
            to="hanako@example.jp",
            locale="ja",
            message_id=message_id,
            confirm_url="https://shop.example/confirm/eyJjIjoiOSJ9.Z1x2.xyz",
        )
    )
    [summary] = inbox(catcher)
    assert summary["recipients"] == ["hanako@example.jp"]
    assert summary["message_id"] == "<notice.44@membersync.example>"
    assert summary["subject"] == "【ご確認】このメールアドレスでの会員登録について"
    assert summary["parts"] == []
    assert "https://shop.example/confirm/eyJjIjoiOSJ9.Z1x2.xyz" in summary["text"].splitlines()
    assert raw_message(catcher, summary["id"])["List-Unsubscribe"] is None


def test_a_quoted_local_part_never_reaches_the_server(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)
    with pytest.raises(PermanentError, match="cannot be rendered"):
        mailer.send_notice(NoticeMessage('"a..b"@example.com', "en", mailer.notice_message_id("45"), None))
    assert inbox(catcher) == []


def test_messages_share_a_connection_and_one_the_server_dropped_is_replaced(catcher: MailCatcher) -> None:
    mailer = mailer_for(catcher.host, catcher.smtp_port)

    def send(name: str) -> str:
        message_id = mailer.welcome_message_id(name)
        mailer.send_welcome(
            WelcomeMessage(
                to=f"{name}@example.jp",
                first_name="花子",
                last_name="山田",
                locale="ja",
                member_number=MEMBER_NUMBER,
                message_id=message_id,
            )
        )
        return message_id

    sent = [send("one"), send("two")]
    assert sorted(summary["message_id"] for summary in inbox(catcher)) == sorted(sent)
    # The server goes away with the idle connection (a restart, its idle timeout) and comes back.
    catcher.stop()
    again = MailCatcher(smtp_port=catcher.smtp_port, http_port=0).start()
    try:
        third = send("three")
        [summary] = inbox(again)
        assert summary["message_id"] == third and summary["recipients"] == ["three@example.jp"]
    finally:
        mailer.close()
        again.stop()
