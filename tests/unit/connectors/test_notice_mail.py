"""The "you are already a member" notice: no personal data, its own Message-ID, sent like the others."""

from __future__ import annotations

import dataclasses
from typing import Any

import jinja2
import pytest
from markupsafe import escape

from connectors.errors import PermanentError
from connectors.fakes import FakeMailer
from connectors.interfaces import MailSender
from connectors.mailer import (
    NoticeMessage,
    member_number_message_id,
    notice_message_id,
    render_notice,
    welcome_message_id,
)
from tests.support.mail import MAIL_FROM, body, recording_mailer

REGISTRATION_ID = "7d6f1c2e-8a3b-4c5d-9e0f-112233445566"
CONFIRM = "https://shop.example/confirm/eyJjIjoiOSJ9.Z1x2.xyz?kind=profile&from=notice"


def notice(**changes: Any) -> NoticeMessage:
    fields: dict[str, Any] = {
        "to": "hanako@example.jp",
        "locale": "ja",
        "message_id": notice_message_id(REGISTRATION_ID, domain="membersync.example"),
        "confirm_url": CONFIRM,
        **changes,
    }
    return NoticeMessage(**fields)


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, dict[str, Any]]]:
    """Every template render's name and context, as the templates see them."""
    seen: list[tuple[str | None, dict[str, Any]]] = []
    original = jinja2.Template.render

    def render(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        seen.append((self.name, dict(*args, **kwargs)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", render)
    return seen


@pytest.mark.parametrize(
    ("locale", "subject", "sentences"),
    [
        (
            "ja",
            "【ご確認】このメールアドレスでの会員登録について",
            [
                "先ほど、このメールアドレスで会員登録のお申し込みがありました（お客様ご本人によるお申し込みかもしれません）。",
                "お客様の会員情報には何も変更はございません。",
                "今回ご入力いただいた内容を会員情報に反映する場合は、下記のページでご確認ください",
                "リンクの有効期限は 7 日間です",
                "お心当たりのない場合は、お手数ですがこのメールを破棄してください。",
            ],
        ),
        (
            "en",
            "About a registration with your e-mail address",
            [
                "Someone (perhaps you) has just registered with this e-mail address, which already belongs"
                " to a member.",
                "Nothing about your membership has changed.",
                "If it was you and you want us to use the details you entered, please confirm on this page",
                "the link is valid for 7 days",
                "If it was not you, please ignore this message.",
            ],
        ),
    ],
)
def test_the_notice_says_nothing_changed_and_how_to_accept_the_new_details(
    locale: str, subject: str, sentences: list[str]
) -> None:
    message = render_notice(notice(locale=locale), mail_from=MAIL_FROM)
    assert message["Subject"] == subject
    assert message["To"] == "hanako@example.jp"
    assert message["Message-ID"] == f"<notice.{REGISTRATION_ID}@membersync.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text, html = body(message, "plain"), body(message, "html")
    for sentence in sentences:
        assert sentence in text.replace("\n", " " if locale == "en" else "")
        assert sentence in html
    assert text.count(CONFIRM) == 1 and CONFIRM in text.splitlines()
    assert html.count(f'href="{escape(CONFIRM)}"') == 1 and CONFIRM not in html
    assert f'<html lang="{locale}">' in html
    assert [part for part in message.walk() if part.get_content_maintype() == "image"] == []


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_without_a_link_the_notice_only_says_nothing_changed(locale: str) -> None:
    message = render_notice(notice(locale=locale, confirm_url=None), mail_from=MAIL_FROM)
    text, html = body(message, "plain"), body(message, "html")
    assert "http" not in text and "href" not in html
    ignore = {"ja": "このメールを破棄してください", "en": "please ignore this message"}[locale]
    assert ignore in text and ignore in html


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_notice_carries_no_personal_data(
    locale: str, contexts: list[tuple[str | None, dict[str, Any]]]
) -> None:
    # The message itself has nowhere to put a name, a number or an address...
    assert {field.name for field in dataclasses.fields(NoticeMessage)} == {
        "to",
        "locale",
        "message_id",
        "confirm_url",
        "confirm_days",
    }
    message = render_notice(notice(locale=locale, confirm_days=5), mail_from=MAIL_FROM)
    # ...and its templates are given nothing but the link, its validity and the sender's name.
    assert sorted(name or "" for name, _ in contexts) == [f"notice.{locale}.html", f"notice.{locale}.txt"]
    for _, context in contexts:
        assert set(context) == {"confirm_url", "confirm_days", "locale", "subject", "sender_name"}
    text = body(message, "plain")
    assert " 様" not in text and "Dear" not in text  # no "<name> 様" or "Dear <name>" salutation
    assert "会員番号" not in text and "membership number" not in text
    # The only digits a reader sees are the link's and its validity's.
    assert {char for char in text.replace(CONFIRM, "") if char.isdigit()} == {"5"}


def test_a_template_that_asked_for_a_name_would_fail_to_render() -> None:
    # StrictUndefined: the notice's context has no name, so a template change that used one breaks
    # loudly (a PermanentError in the step) instead of mailing a stranger's name.
    from connectors.mailer.client import _templates

    with pytest.raises(jinja2.UndefinedError):
        _templates.from_string("{{ first_name }}").render({"confirm_url": None})


def test_its_message_id_is_deterministic_and_never_another_kinds() -> None:
    notice_id = notice_message_id(REGISTRATION_ID, domain="membersync.example")
    assert notice_id == f"<notice.{REGISTRATION_ID}@membersync.example>"
    assert notice_id == notice_message_id(REGISTRATION_ID, domain="membersync.example")
    assert notice_id not in {
        welcome_message_id(REGISTRATION_ID, domain="membersync.example"),
        member_number_message_id(REGISTRATION_ID, domain="membersync.example"),
    }
    for registration_id, domain in [("", "a.example"), ("a b", "a.example"), ("a>", "a.example"), ("1", "")]:
        with pytest.raises(ValueError):
            notice_message_id(registration_id, domain=domain)


def test_send_notice_renders_and_sends_once() -> None:
    mailer, connections = recording_mailer()
    sender: MailSender = mailer  # the real mailer satisfies the pipeline's interface (mypy checks)
    message_id = mailer.notice_message_id(REGISTRATION_ID)
    assert message_id == f"<notice.{REGISTRATION_ID}@membersync.example>"
    sender.send_notice(notice(message_id=message_id))
    [smtp] = connections
    [sent] = smtp.sent
    assert sent["Message-ID"] == message_id and sent["Subject"].startswith("【ご確認】")
    mailer.close()  # the connection was kept for the next message
    assert smtp.quit_called


def test_an_unrenderable_notice_is_permanent_and_never_connects() -> None:
    mailer, connections = recording_mailer()
    for broken in (
        notice(confirm_url="javascript:alert(1)"),
        notice(confirm_days=0),
        notice(to='"a..b"@x.example'),
    ):
        with pytest.raises(PermanentError, match="notice email cannot be rendered"):
            mailer.send_notice(broken)
    assert connections == []


def test_the_fake_records_notices_with_the_other_mail_in_order() -> None:
    fake = FakeMailer()
    sender: MailSender = fake
    sender.send_notice(notice())
    sender.send_notice(notice())
    assert fake.sent == [notice(), notice()]
    assert fake.count("send_notice") == 2
    fake.fail_next("send_notice", PermanentError("refused", system="email"))
    with pytest.raises(PermanentError):
        fake.send_notice(notice())
    assert len(fake.sent) == 2
