"""The welcome email's links (double opt-in, "is this card yours?", unsubscribe), the List-Unsubscribe
headers, and the recipient check that keeps anything but a plain address out of To: and the envelope."""

from __future__ import annotations

import email
import email.generator
import email.policy
import email.utils
import io
import smtplib
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from connectors.errors import PermanentError
from connectors.mailer import (
    Mailer,
    MemberNumberMessage,
    NoticeMessage,
    WelcomeMessage,
    recipient,
    render_member_number,
    render_notice,
    render_welcome,
)
from connectors.mailer.client import MAX_URL_OCTETS

MAIL_FROM = "Membersync <welcome@membersync.example>"
MEMBER_NUMBER = "4913205588312347"
# Each link distinct, with the characters HTML must escape and a mail client must not cut at.
CONFIRM = "https://shop.example/confirm/eyJjIjoiMSJ9.Z1x2.abc-_?from=mail&kind=marketing"
CARD = "https://shop.example/confirm/eyJjIjoiMiJ9.Z1x2.def-_?kind=card&it's=1"
UNSUBSCRIBE = "https://shop.example/unsubscribe/eyJjIjoiMyJ9.Z1x2.ghi-_?a=1&b=2"


def welcome(**changes: Any) -> WelcomeMessage:
    fields: dict[str, Any] = {
        "to": "hanako@example.jp",
        "first_name": "花子",
        "last_name": "山田",
        "locale": "ja",
        "member_number": MEMBER_NUMBER,
        "message_id": "<welcome.r1@membersync.example>",
        **changes,
    }
    return WelcomeMessage(**fields)


def wire_bytes(message: EmailMessage) -> bytes:
    """The bytes smtplib.send_message sends: the message's own policy, CRLF line ends."""
    with io.BytesIO() as out:
        email.generator.BytesGenerator(out).flatten(message, linesep="\r\n")
        return out.getvalue()


def over_the_wire(message: EmailMessage) -> EmailMessage:
    """The message as a receiving client reads it: serialised as smtplib sends it, then parsed."""
    parsed = email.message_from_bytes(wire_bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    assert parts[0] is not None and parts[1] is not None
    return str(parts[0].get_content()), str(parts[1].get_content())


def assert_link_once(url: str, text: str, html: str) -> None:
    """Exactly once in each part: whole in the text, escaped in one href of the HTML."""
    assert text.count(url) == 1
    assert html.count(f'href="{escape(url)}"') == 1
    assert html.count(str(escape(url))) == 1
    assert url not in html, "the HTML has the link escaped, never raw"


# --- the welcome's links --------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_every_link_is_in_both_parts_exactly_once_and_escaped_in_html(locale: str) -> None:
    message = over_the_wire(
        render_welcome(
            welcome(
                locale=locale,
                member_number=None,
                confirm_marketing_url=CONFIRM,
                card_url=CARD,
                unsubscribe_url=UNSUBSCRIBE,
            ),
            mail_from=MAIL_FROM,
        )
    )
    text, html = text_and_html(message)
    for url in (CONFIRM, CARD, UNSUBSCRIBE):
        assert_link_once(url, text, html)
    lines = text.splitlines()
    # The opt-in and card links stand on their own line: no client can take a neighbour's character.
    assert CONFIRM in lines and CARD in lines
    footer = {"ja": "メールでのお知らせの配信停止はこちら: ", "en": "To stop news by e-mail: "}[locale]
    assert footer + UNSUBSCRIBE in lines
    assert "&amp;" in html and "&#39;" in html


@pytest.mark.parametrize(
    ("locale", "asks", "days"),
    [
        (
            "ja",
            "確定いただくまで、お知らせのメールはお送りいたしません。",
            "このリンクの有効期限は 3 日間です。",
        ),
        ("en", "until you do, we\nsend none", "The link is valid for 3 days."),
    ],
)
def test_the_opt_in_link_says_nothing_is_sent_until_confirmed_and_for_how_long(
    locale: str, asks: str, days: str
) -> None:
    message = render_welcome(
        welcome(locale=locale, confirm_marketing_url=CONFIRM, confirm_days=3), mail_from=MAIL_FROM
    )
    text, html = text_and_html(message)
    assert asks in text and days in text
    assert days in html
    # The number and its barcode are unaffected by the link.
    assert MEMBER_NUMBER in text and "cid:" in html


def test_one_day_is_singular_and_a_validity_under_a_day_is_refused() -> None:
    message = render_welcome(
        welcome(locale="en", confirm_marketing_url=CONFIRM, confirm_days=1), mail_from=MAIL_FROM
    )
    assert "The link is valid for 1 day." in text_and_html(message)[0]
    for days in (0, -1, True):
        with pytest.raises(ValueError, match="days"):
            render_welcome(welcome(confirm_marketing_url=CONFIRM, confirm_days=days), mail_from=MAIL_FROM)


@pytest.mark.parametrize(
    ("locale", "found", "follows", "ready"),
    [
        (
            "ja",
            "このメールアドレスが登録されているものが見つかりました。",
            "会員番号は、ご回答いただいた後にあらためてお知らせいたします。",
            "準備ができ次第",
        ),
        (
            "en",
            "We found a member card made in our shop with this e-mail address. Is it yours?",
            "Your membership number will follow in a separate email once you have answered.",
            "as soon as it is ready",
        ),
    ],
)
def test_the_card_question_says_the_number_follows_the_answer(
    locale: str, found: str, follows: str, ready: str
) -> None:
    message = render_welcome(welcome(locale=locale, member_number=None, card_url=CARD), mail_from=MAIL_FROM)
    text, html = text_and_html(message)
    for part in (text, html):
        assert found in part.replace("\n", " ")
        assert follows in part
        assert ready not in part, "one sentence about the number, the card's"
    assert [p for p in message.walk() if p.get_content_maintype() == "image"] == []


def test_a_card_question_with_a_member_number_is_refused() -> None:
    # The number would be the found card's (someone else's, maybe) or a second member's.
    with pytest.raises(ValueError, match="card"):
        render_welcome(welcome(card_url=CARD), mail_from=MAIL_FROM)


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_without_links_the_welcome_is_as_before(locale: str) -> None:
    text, html = text_and_html(render_welcome(welcome(locale=locale), mail_from=MAIL_FROM))
    assert "http" not in text and "http" not in html and "href" not in html


# --- List-Unsubscribe -----------------------------------------------------------------------------


def test_an_unsubscribe_link_brings_the_one_click_headers() -> None:
    message = over_the_wire(render_welcome(welcome(unsubscribe_url=UNSUBSCRIBE), mail_from=MAIL_FROM))
    assert message.get_all("List-Unsubscribe") == [f"<{UNSUBSCRIBE}>"]
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]


@pytest.mark.parametrize(
    "render",
    [
        lambda: render_welcome(welcome(), mail_from=MAIL_FROM),
        lambda: render_welcome(
            welcome(confirm_marketing_url=CONFIRM, member_number=None, card_url=CARD), mail_from=MAIL_FROM
        ),
        lambda: render_member_number(
            MemberNumberMessage(
                "hanako@example.jp", "花子", "山田", "ja", MEMBER_NUMBER, "<member-number.r1@x.example>"
            ),
            mail_from=MAIL_FROM,
        ),
        lambda: render_notice(
            NoticeMessage("hanako@example.jp", "ja", "<notice.r1@x.example>", CONFIRM), mail_from=MAIL_FROM
        ),
    ],
    ids=["welcome", "welcome-with-other-links", "member-number", "notice"],
)
def test_no_unsubscribe_link_no_list_headers(render: Any) -> None:
    message = over_the_wire(render())
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


def test_a_long_unsubscribe_link_is_never_folded_or_encoded() -> None:
    url = "https://shop.example/unsubscribe/" + "A1b2-_." * ((MAX_URL_OCTETS - 40) // 7)
    message = render_welcome(welcome(unsubscribe_url=url), mail_from=MAIL_FROM)
    lines = wire_bytes(message).split(b"\r\n")
    assert f"List-Unsubscribe: <{url}>".encode() in lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert all(len(line) <= 998 for line in lines)
    received = over_the_wire(message)
    assert received["List-Unsubscribe"] == f"<{url}>"
    # And the text part keeps it whole on its footer line, however the body is transfer-encoded.
    text, _ = text_and_html(received)
    assert text.splitlines()[-1] == f"メールでのお知らせの配信停止はこちら: {url}"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://shop.example/x",
        "https://shop.example/a b",
        'https://shop.example/a"onclick="x',
        "https://shop.example/<b>",
        "https://shop.example/a\r\nBcc: victim@example.com",
        "https://shop.example/ü",
        "https://shop.example/a\\b",
        "",
        "https://shop.example/" + "a" * MAX_URL_OCTETS,
    ],
)
def test_a_link_that_is_not_a_plain_http_url_is_refused(url: str) -> None:
    for field in ("confirm_marketing_url", "card_url", "unsubscribe_url"):
        changes: dict[str, Any] = {field: url, "member_number": None}
        with pytest.raises(ValueError, match="link"):
            render_welcome(welcome(**changes), mail_from=MAIL_FROM)
    with pytest.raises(ValueError, match="link"):
        render_notice(
            NoticeMessage("hanako@example.jp", "en", "<notice.1@x.example>", url), mail_from=MAIL_FROM
        )


# --- the recipient --------------------------------------------------------------------------------

REFUSED_RECIPIENTS = [
    '"a..b"@example.com',  # the quoted local part that once reached another mailbox
    '"hanako"@example.jp',
    "a..b@example.com",
    ".hanako@example.jp",
    "hanako.@example.jp",
    "hanako@example.jp\r\nBcc: victim@example.com",
    "hanako\n@example.jp",
    "hanako @example.jp",
    " hanako@example.jp",
    "hanako@example.jp ",
    "はなこ@example.jp",
    "hanakö@example.jp",
    "Hanako <hanako@example.jp>",
    "hanako@example.jp, victim@example.com",
    "(comment)hanako@example.jp",
    "a@b@example.jp",
    "hanako@",
    "@example.jp",
    "hanako",
    "",
    "hanako@localhost",
    "hanako@example.jp.",
    "hanako@[127.0.0.1]",
    "x" * 65 + "@example.jp",
    "hanako@" + "a" * 250 + ".jp",
]


@pytest.mark.parametrize("to", REFUSED_RECIPIENTS)
def test_anything_but_a_plain_address_is_refused(to: str) -> None:
    with pytest.raises(ValueError, match="recipient"):
        recipient(to)


@pytest.mark.parametrize("to", REFUSED_RECIPIENTS[:8])
def test_every_kind_of_mail_refuses_it_permanently_before_connecting(to: str) -> None:
    connections: list[object] = []

    def factory(*args: Any, **kwargs: Any) -> smtplib.SMTP:
        connections.append(args)
        raise AssertionError("no connection for a message that cannot be addressed")

    mailer = Mailer(
        host="smtp.example",
        port=25,
        username=None,
        password="",
        starttls=False,
        mail_from=MAIL_FROM,
        timeout=5,
        smtp_factory=factory,
    )
    sends = [
        lambda: mailer.send_welcome(welcome(to=to)),
        lambda: mailer.send_member_number(
            MemberNumberMessage(
                to, "花子", "山田", "ja", MEMBER_NUMBER, "<member-number.1@membersync.example>"
            )
        ),
        lambda: mailer.send_notice(NoticeMessage(to, "ja", "<notice.1@membersync.example>", None)),
    ]
    for send in sends:
        with pytest.raises(PermanentError, match="cannot be rendered") as raised:
            send()
        assert "@" not in str(raised.value), "the error never quotes the address"
    assert connections == []


@pytest.mark.parametrize(
    ("to", "plain"),
    [
        ("hanako@example.jp", "hanako@example.jp"),
        ("HANAKO@Example.JP", "HANAKO@Example.JP"),
        ("o'brien+news@mail.example.co.uk", "o'brien+news@mail.example.co.uk"),
        ("a.b-c_d@x-y.example", "a.b-c_d@x-y.example"),
        ("hanako@例え.jp", "hanako@xn--r8jz45g.jp"),
    ],
)
def test_a_plain_address_is_the_to_header_and_the_envelope(to: str, plain: str) -> None:
    assert recipient(to) == plain
    message = render_welcome(welcome(to=to), mail_from=MAIL_FROM)
    assert f"To: {plain}".encode() in wire_bytes(message).split(b"\r\n")
    # What smtplib.send_message takes as the envelope recipients.
    assert email.utils.getaddresses(message.get_all("To", [])) == [("", plain)]


# Characters that have broken address headers: quotes, specials, whitespace, line ends, non-ASCII.
_HOSTILE = st.sampled_from([*'"\\()<>[]:;,@. \t\r\n\x00\x85\u2028é日', "a", "b", "0", "-", "+", "'"])


@given(st.lists(_HOSTILE, max_size=30).map("".join) | st.text(max_size=40))
def test_a_recipient_is_always_exactly_one_plain_ascii_address(to: str) -> None:
    try:
        plain = recipient(to)
    except ValueError:
        return
    assert plain.isascii() and plain.isprintable()
    assert not set(plain) & set('"\\()<>[]:;, \t\r\n')
    assert plain.count("@") == 1
    assert email.utils.getaddresses([plain]) == [("", plain)]
    message = render_notice(NoticeMessage(plain, "en", "<notice.1@x.example>", None), mail_from=MAIL_FROM)
    assert f"To: {plain}".encode() in wire_bytes(message).split(b"\r\n")
