"""The SMTP catcher over real sockets: smtplib in, the HTTP inbox out, multipart intact."""

from __future__ import annotations

import email.policy
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import requests

from sandbox.mailcatcher import MailCatcher

PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    running = MailCatcher(smtp_port=0, http_port=0).start()
    yield running
    running.stop()


def welcome_email(to: str = "hanako@example.jp") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Membersync <welcome@example.jp>"
    message["To"] = to
    message["Subject"] = "ようこそ Membersync へ"
    message["Message-ID"] = "<registration-42@membersync.example>"
    message.set_content("会員登録ありがとうございます。")
    image_cid = make_msgid(domain="membersync.example")
    message.add_alternative(f'<p>ようこそ</p><img src="cid:{image_cid[1:-1]}">', subtype="html")
    message.get_payload()[1].add_related(PIXEL, maintype="image", subtype="png", cid=image_cid)
    return message


def send(catcher: MailCatcher, message: EmailMessage) -> bytes:
    """Send the message's exact bytes (send_message would pick fresh MIME boundaries on a copy)."""
    raw = message.as_bytes(policy=email.policy.SMTP)
    with smtplib.SMTP(catcher.host, catcher.smtp_port, timeout=5) as smtp:
        smtp.sendmail("welcome@example.jp", [str(message["To"])], raw)
    return raw


def test_multipart_message_with_inline_image_comes_back_intact(catcher):
    sent = welcome_email()
    sent_bytes = send(catcher, sent)
    listing = requests.get(f"{catcher.url}/api/messages").json()
    assert len(listing) == 1
    summary = listing[0]
    assert summary["subject"] == "ようこそ Membersync へ"
    assert summary["message_id"] == "<registration-42@membersync.example>"
    assert summary["recipients"] == ["hanako@example.jp"]
    assert summary["text"].strip() == "会員登録ありがとうございます。"
    detail = requests.get(f"{catcher.url}/api/messages/{summary['id']}").json()
    assert "<p>ようこそ</p>" in detail["html"]
    [image] = detail["parts"]
    assert image["content_type"] == "image/png" and image["size"] == len(PIXEL)
    assert image["content_id"].startswith("<") and image["content_id"] in str(sent)
    raw = requests.get(f"{catcher.url}/api/messages/{summary['id']}/raw")
    assert raw.headers["Content-Type"].startswith("message/rfc822")
    # SMTP carries CRLF line ends; the catcher keeps them, so compare line by line.
    assert raw.content.splitlines() == sent_bytes.splitlines()
    assert (
        requests.get(f"{catcher.url}/api/messages/{summary['id']}", params={"raw": 1}).content == raw.content
    )


def test_listing_is_newest_first_filterable_and_deletable(catcher):
    send(catcher, welcome_email("a@example.jp"))
    send(catcher, welcome_email("b@example.jp"))
    listing = requests.get(f"{catcher.url}/api/messages").json()
    assert [message["to"] for message in listing] == ["b@example.jp", "a@example.jp"]
    only_a = requests.get(f"{catcher.url}/api/messages", params={"to": "A@example.jp"}).json()
    assert [message["id"] for message in only_a] == ["1"]
    page = requests.get(f"{catcher.url}/")
    assert "ようこそ" in page.text and "b@example.jp" in page.text
    assert requests.delete(f"{catcher.url}/api/messages").status_code == 200
    assert requests.get(f"{catcher.url}/api/messages").json() == []
    assert requests.get(f"{catcher.url}/api/messages/1").status_code == 404


def test_html_view_escapes_subjects(catcher):
    message = welcome_email()
    del message["Subject"]
    message["Subject"] = "<script>alert(1)</script>"
    send(catcher, message)
    assert "<script>" not in requests.get(f"{catcher.url}/").text


def test_sandbox_state_and_reset(catcher):
    send(catcher, welcome_email())
    assert len(requests.get(f"{catcher.url}/_sandbox/state").json()["messages"]) == 1
    requests.post(f"{catcher.url}/_sandbox/reset")
    assert requests.get(f"{catcher.url}/_sandbox/state").json()["messages"] == []
