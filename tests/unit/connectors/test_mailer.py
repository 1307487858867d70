"""The welcome email: rendering in both locales, the member-number barcode, SMTP failure classes."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import smtplib
import socket
import ssl
import struct
import zlib
from email.message import EmailMessage
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import Settings
from connectors.errors import PermanentError, TransientError
from connectors.mailer import (
    Mailer,
    WelcomeMessage,
    code128_png,
    render_welcome,
    sender_domain,
    welcome_message_id,
)
from connectors.mailer.barcode import (
    CODE_B,
    PATTERNS,
    QUIET_ZONE_MODULES,
    START_B,
    START_C,
    STOP,
    code128_modules,
    code128_values,
)
from connectors.mailer.client import MAX_MESSAGES_PER_CONNECTION

MAIL_FROM = "Membersync <welcome@membersync.example>"
REGISTRATION_ID = "7d6f1c2e-8a3b-4c5d-9e0f-112233445566"
MESSAGE_ID = f"<welcome.{REGISTRATION_ID}@membersync.example>"
MEMBER_NUMBER = "4913205588312347"


def welcome(**changes: Any) -> WelcomeMessage:
    fields: dict[str, Any] = {
        "to": "hanako@example.jp",
        "first_name": "花子",
        "last_name": "山田",
        "locale": "ja",
        "member_number": MEMBER_NUMBER,
        "message_id": MESSAGE_ID,
        **changes,
    }
    return WelcomeMessage(**fields)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def structure(part: EmailMessage) -> Any:
    """The MIME tree as nested (content type, children) pairs."""
    if part.is_multipart():
        return (part.get_content_type(), [structure(child) for child in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


def image_parts(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if part.get_content_maintype() == "image"]


# --- rendering ----------------------------------------------------------------------------------


def test_japanese_welcome_carries_the_number_as_text_and_as_an_inline_barcode() -> None:
    message = render_welcome(welcome(), mail_from=MAIL_FROM)

    assert message["Subject"] == "会員登録ありがとうございます【会員番号のお知らせ】"
    assert message["From"] == MAIL_FROM
    assert message["To"] == "hanako@example.jp"
    assert message["Message-ID"] == MESSAGE_ID
    assert email.utils.parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert structure(message) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
    )
    text, html = text_of(message), html_of(message)
    # Japanese order: family name, given name, then 様.
    assert text.startswith("山田 花子 様\n")
    assert "山田 花子 様" in html
    assert f"会員番号: {MEMBER_NUMBER}" in text
    assert MEMBER_NUMBER in html
    assert '<html lang="ja">' in html

    [image] = image_parts(message)
    content_id = image["Content-ID"]
    assert re.fullmatch(r"<barcode\.[0-9a-f]{16}@membersync\.example>", content_id)
    assert len(f"Content-ID: {content_id}") <= 78, "short enough never to be folded"
    assert f'src="cid:{content_id[1:-1]}"' in html
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "member-barcode.png"
    # One row of pixels (the member number's bars), stretched by the HTML to a scannable height.
    barcode = code128_png(MEMBER_NUMBER, height_px=1)
    assert image.get_content() == barcode.png
    assert decode(scan(read_png(barcode.png)[2][0])) == MEMBER_NUMBER
    assert f'width="{barcode.width}" height="100"' in html and "height:100px" in html


def test_english_welcome_uses_given_name_first() -> None:
    message = render_welcome(
        welcome(first_name="Taro", last_name="Yamada", locale="en", to="taro@example.com"),
        mail_from=MAIL_FROM,
    )
    assert message["Subject"] == "Welcome — your membership number"
    text, html = text_of(message), html_of(message)
    assert text.startswith("Dear Taro Yamada,\n")
    assert "Dear Taro Yamada," in html
    assert f"Membership number: {MEMBER_NUMBER}" in text
    assert f"<strong>{MEMBER_NUMBER}</strong>" in html
    assert '<html lang="en">' in html
    assert "様" not in text
    assert len(image_parts(message)) == 1


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_without_a_member_number_the_mail_says_it_follows_and_has_no_barcode(locale: str) -> None:
    message = render_welcome(welcome(locale=locale, member_number=None), mail_from=MAIL_FROM)

    assert structure(message) == ("multipart/alternative", ["text/plain", "text/html"])
    assert image_parts(message) == []
    text, html = text_of(message), html_of(message)
    assert "cid:" not in html and "<img" not in html
    follows = {"ja": "会員番号は、準備ができ次第あらためてお知らせいたします。", "en": "will follow"}[locale]
    assert follows in text and follows in html
    subject = {"ja": "会員登録ありがとうございます", "en": "Welcome — thank you for registering"}[locale]
    assert message["Subject"] == subject
    assert message["Message-ID"] == MESSAGE_ID


def test_an_empty_member_number_counts_as_none() -> None:
    message = render_welcome(welcome(member_number=""), mail_from=MAIL_FROM)
    assert image_parts(message) == []


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_html_escapes_every_customer_value(locale: str) -> None:
    hostile = "<script>alert(1)</script>"
    message = render_welcome(
        welcome(locale=locale, first_name=hostile, last_name='"Tom" & <b>', member_number="A<B&C"),
        mail_from=MAIL_FROM,
    )
    html = html_of(message)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;Tom&#34; &amp; &lt;b&gt;" in html
    assert 'alt="A&lt;B&amp;C"' in html
    # The text part is plain text: the name as typed, nothing to escape.
    assert hostile in text_of(message)


def test_an_unknown_locale_falls_back_to_japanese() -> None:
    message = render_welcome(welcome(locale="fr"), mail_from=MAIL_FROM)
    assert message["Subject"].startswith("会員登録ありがとうございます")
    assert '<html lang="ja">' in html_of(message)


def test_rendering_is_deterministic_apart_from_the_date() -> None:
    first, second = (render_welcome(welcome(), mail_from=MAIL_FROM) for _ in range(2))
    assert first["Message-ID"] == second["Message-ID"]
    assert text_of(first) == text_of(second) and html_of(first) == html_of(second)
    assert [part["Content-ID"] for part in image_parts(first)] == [
        part["Content-ID"] for part in image_parts(second)
    ]


def test_nothing_in_the_html_is_fetched_from_elsewhere() -> None:
    html = html_of(render_welcome(welcome(), mail_from=MAIL_FROM))
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "<script" not in html


def test_sign_off_uses_the_sender_display_name_or_its_domain() -> None:
    assert text_of(render_welcome(welcome(), mail_from=MAIL_FROM)).rstrip().endswith("Membersync")
    plain = render_welcome(welcome(), mail_from="welcome@shop.example")
    assert text_of(plain).rstrip().endswith("shop.example")


def test_welcome_message_id_is_deterministic_per_registration() -> None:
    assert welcome_message_id(REGISTRATION_ID, domain="membersync.example") == MESSAGE_ID
    assert welcome_message_id("42", domain="shop.example") == "<welcome.42@shop.example>"
    for registration_id, domain in [("", "a.example"), ("a b", "a.example"), ("a>", "a.example"), ("1", "")]:
        with pytest.raises(ValueError):
            welcome_message_id(registration_id, domain=domain)


def test_sender_domain_reads_mail_from() -> None:
    assert sender_domain(MAIL_FROM) == "membersync.example"
    assert sender_domain("welcome@Shop.Example") == "Shop.Example"
    assert sender_domain("ショップ <welcome@例え.jp>") == "xn--r8jz45g.jp"
    for bad in ("", "Membersync", "welcome@", "<>"):
        with pytest.raises(ValueError, match="MAIL_FROM"):
            sender_domain(bad)


# --- the barcode --------------------------------------------------------------------------------


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and pixel rows of an 8-bit greyscale, unfiltered PNG; checks every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        position += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 0, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (width + 1)
    rows = [raw[row * (width + 1) : (row + 1) * (width + 1)] for row in range(height)]
    assert all(row[0] == 0 for row in rows), "filter type none"
    return width, height, [row[1:] for row in rows]


def scan(row: bytes) -> list[int]:
    """Run lengths of one pixel row in modules, as a scanner sees them (quiet zones excluded)."""
    assert set(row) <= {0, 255}
    runs: list[int] = []
    previous, count = row[0], 0
    for pixel in row:
        if pixel == previous:
            count += 1
        else:
            runs.append(count)
            previous, count = pixel, 1
    runs.append(count)
    assert row[0] == 255 and row[-1] == 255, "white quiet zones on both sides"
    module = min(runs[1:-1])
    assert all(run % module == 0 for run in runs)
    assert runs[0] >= QUIET_ZONE_MODULES * module and runs[-1] >= QUIET_ZONE_MODULES * module
    return [run // module for run in runs[1:-1]]


def decode(widths: list[int]) -> str:
    """Decode Code 128 (subsets B and C) from element widths; checks start, check symbol and stop."""
    assert "".join(map(str, widths[-7:])) == STOP
    symbols = ["".join(map(str, widths[index : index + 6])) for index in range(0, len(widths) - 7, 6)]
    values = [PATTERNS.index(symbol) for symbol in symbols]
    *data, check = values
    assert check == (data[0] + sum(position * value for position, value in enumerate(data) if position)) % 103
    subset = {START_B: "B", START_C: "C"}[data[0]]
    text = ""
    for value in data[1:]:
        if subset == "C" and value == CODE_B:
            subset = "B"
        elif subset == "C":
            text += f"{value:02d}"
        else:
            assert value < 95, "subset B data"
            text += chr(value + 32)
    return text


def decode_png(data: bytes) -> str:
    width, height, rows = read_png(data)
    assert all(row == rows[0] for row in rows)
    assert height >= 50 and width <= 600
    return decode(scan(rows[0]))


def test_the_pattern_table_is_code_128() -> None:
    assert len(PATTERNS) == 106 and len(set(PATTERNS)) == 106
    for pattern in PATTERNS:
        widths = [int(width) for width in pattern]
        assert len(widths) == 6 and sum(widths) == 11 and set(widths) <= {1, 2, 3, 4}
        # Parity: the bars of every symbol add up to an even number of modules.
        assert sum(widths[0::2]) % 2 == 0
    assert (PATTERNS[0], PATTERNS[START_B], PATTERNS[START_C], PATTERNS[CODE_B]) == (
        "212222",
        "211214",
        "211232",
        "114131",
    )


@pytest.mark.parametrize(
    ("text", "values"),
    [
        # Check: (104 + 1·48 + 2·42 + 3·42 + 4·17 + 5·18 + 6·19 + 7·35) mod 103 = 879 mod 103 = 55.
        ("PJJ123C", [START_B, 48, 42, 42, 17, 18, 19, 35, 55]),
        ("1234", [START_C, 12, 34, 82]),
        ("123", [START_C, 12, CODE_B, 19, 65]),  # 105 + 12 + 2·100 + 3·19 = 374 ≡ 65
        # A leading "99" is data, not a subset switch (python-barcode 0.16.1 drops it).
        ("9912", [START_C, 99, 12, 22]),
        ("7", [START_B, 23, 24]),
    ],
)
def test_symbol_values(text: str, values: list[int]) -> None:
    assert code128_values(text) == values


@pytest.mark.parametrize(
    "text",
    [
        MEMBER_NUMBER,
        "9912345678901234",
        "99999999999999999999",
        "0000000000000000",
        "123",
        "7",
        "W-0001",
        "~ !",
    ],
)
def test_the_png_decodes_back_to_the_text(text: str) -> None:
    assert decode_png(code128_png(text).png) == text


@given(
    st.from_regex(r"[0-9]{16}", fullmatch=True)
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20)
)
def test_any_member_number_or_walk_in_code_round_trips(text: str) -> None:
    assert decode(scan(read_png(code128_png(text).png)[2][0])) == text


def test_a_member_number_is_subset_c_and_fits_a_mail_column() -> None:
    image = code128_png(MEMBER_NUMBER)
    assert code128_values(MEMBER_NUMBER)[0] == START_C
    modules = len(code128_modules(MEMBER_NUMBER)) + 2 * QUIET_ZONE_MODULES
    assert image.width == modules * (600 // modules) <= 600
    assert (image.width, image.height) == read_png(image.png)[:2]


def test_a_real_decoder_reads_the_png() -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    for text in (MEMBER_NUMBER, "9912345678901234", "W-0001 a~"):
        width, height, rows = read_png(code128_png(text).png)
        pixels = memoryview(b"".join(rows)).cast("B", shape=[height, width])
        assert [found.text for found in zxingcpp.read_barcodes(pixels)] == [text]


@pytest.mark.parametrize("text", ["", "会員１", "tab\there", "é"])
def test_only_printable_ascii_is_encoded(text: str) -> None:
    with pytest.raises(ValueError):
        code128_png(text)


# --- sending ------------------------------------------------------------------------------------


class FakeSMTP:
    """Stands in for smtplib.SMTP: records the conversation, fails where a test says."""

    instances: list[FakeSMTP] = []

    def __init__(self, host: str, port: int, *, timeout: float, fail: dict[str, BaseException]) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.fail = fail
        self.calls: list[str] = []
        self.sent: list[EmailMessage] = []
        self.closed = False
        self._maybe_fail("connect")

    def _maybe_fail(self, stage: str) -> None:
        self.calls.append(stage)
        if stage in self.fail:
            raise self.fail[stage]

    def starttls(self, *, context: ssl.SSLContext) -> None:
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        self._maybe_fail("starttls")

    def login(self, user: str, password: str) -> None:
        self.credentials = (user, password)
        self._maybe_fail("login")

    def ehlo_or_helo_if_needed(self) -> None:
        pass

    def mail(self, sender: str, options: Any = ()) -> tuple[int, bytes]:
        if "mail" in self.fail:  # the server dropped this connection while it was idle
            self._maybe_fail("mail")
        return 250, b"2.1.0 Ok"

    def rcpt(self, address: str) -> tuple[int, bytes]:
        return 250, b"2.1.5 Ok"

    def data(self, data: bytes) -> tuple[int, bytes]:
        self._maybe_fail("send")
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""), "CRLF line ends only"
        self.sent.append(cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default)))
        return 250, b"2.0.0 Ok: queued"

    def quit(self) -> None:
        self._maybe_fail("quit")
        self.closed = True

    def close(self) -> None:
        self.calls.append("close")
        self.closed = True


def fake_mailer(
    fail: dict[str, BaseException] | None = None, **options: Any
) -> tuple[Mailer, list[FakeSMTP]]:
    connections: list[FakeSMTP] = []

    def factory(host: str, port: int, *, timeout: float) -> FakeSMTP:
        connections.append(FakeSMTP(host, port, timeout=timeout, fail=fail or {}))
        return connections[-1]

    settings: dict[str, Any] = {
        "host": "smtp.example",
        "port": 587,
        "username": None,
        "password": "",
        "starttls": False,
        "mail_from": MAIL_FROM,
        "timeout": 7.5,
        **options,
    }
    return Mailer(**settings, smtp_factory=factory), connections  # type: ignore[arg-type]


def test_send_welcome_renders_and_sends_once_and_the_next_message_reuses_the_connection() -> None:
    mailer, connections = fake_mailer()
    mailer.send_welcome(welcome())
    [smtp] = connections
    assert (smtp.host, smtp.port, smtp.timeout) == ("smtp.example", 587, 7.5)
    assert smtp.calls == ["connect", "send"]
    [sent] = smtp.sent
    assert sent["Message-ID"] == MESSAGE_ID and len(image_parts(sent)) == 1
    mailer.send_welcome(welcome(message_id=MESSAGE_ID.replace("welcome.", "welcome.2")))
    assert len(connections) == 1 and smtp.calls == ["connect", "send", "send"]
    mailer.close()
    assert smtp.calls[-1] == "quit" and smtp.closed


def test_starttls_and_login_when_configured() -> None:
    mailer, connections = fake_mailer(starttls=True, username="mailer", password="s3cret")
    mailer.send_welcome(welcome())
    mailer.send_welcome(welcome())
    [smtp] = connections
    assert smtp.calls == ["connect", "starttls", "login", "send", "send"]
    assert smtp.credentials == ("mailer", "s3cret")
    assert "s3cret" not in repr(mailer)


def test_a_failing_quit_after_the_message_was_accepted_is_not_a_failure() -> None:
    # Raising here would make the pipeline retry and send the welcome email twice.
    for failure in (smtplib.SMTPServerDisconnected("gone"), smtplib.SMTPResponseException(421, b"bye")):
        mailer, connections = fake_mailer({"quit": failure})
        for _ in range(MAX_MESSAGES_PER_CONNECTION):
            mailer.send_welcome(welcome())
        [smtp] = connections  # its last message ends it
        assert smtp.calls == ["connect", *["send"] * MAX_MESSAGES_PER_CONNECTION, "quit", "close"]


def test_a_reused_connection_dropped_before_mail_from_sends_once_on_a_new_one() -> None:
    mailer, connections = fake_mailer()
    mailer.send_welcome(welcome())
    connections[0].fail["mail"] = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    mailer.send_welcome(welcome())
    first, second = connections
    assert first.closed and len(first.sent) == 1
    assert second.calls == ["connect", "send"] and len(second.sent) == 1


def test_a_reused_connection_that_fails_once_the_message_is_under_way_never_resends_it() -> None:
    mailer, connections = fake_mailer()
    mailer.send_welcome(welcome())
    connections[0].fail["send"] = TimeoutError("timed out")  # the final dot's answer never came
    with pytest.raises(TransientError):
        mailer.send_welcome(welcome())
    [smtp] = connections
    assert smtp.calls == ["connect", "send", "send", "close"]
    mailer.send_welcome(welcome())  # the next message takes a new connection
    assert len(connections) == 2 and connections[1].calls == ["connect", "send"]


REFUSED_PERMANENTLY = smtplib.SMTPRecipientsRefused(
    {"hanako@example.jp": (550, b"5.1.1 <hanako@example.jp>: Recipient address rejected")}
)


@pytest.mark.parametrize(
    ("stage", "failure", "kind", "status", "shown"),
    [
        ("connect", ConnectionRefusedError(111, "Connection refused"), TransientError, None, "refused"),
        ("connect", TimeoutError("timed out"), TransientError, None, "timed out"),
        ("connect", socket.gaierror(-2, "Name or service not known"), TransientError, None, "gaierror"),
        ("connect", smtplib.SMTPConnectError(421, b"4.3.2 too busy"), TransientError, 421, "SMTP 421 4.3.2"),
        ("send", smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), TransientError, None, ""),
        ("send", TimeoutError("timed out"), TransientError, None, "timed out"),
        ("send", ConnectionResetError(104, "Connection reset by peer"), TransientError, None, "reset"),
        (
            "send",
            smtplib.SMTPRecipientsRefused(
                {"hanako@example.jp": (450, b"4.2.1 <hanako@example.jp> try later")}
            ),
            TransientError,
            450,
            "SMTP 450 4.2.1",
        ),
        (
            "send",
            smtplib.SMTPSenderRefused(451, b"4.3.0 local error", "welcome@membersync.example"),
            TransientError,
            451,
            "SMTP 451 4.3.0",
        ),
        ("send", smtplib.SMTPDataError(452, b"Insufficient system storage"), TransientError, 452, "SMTP 452"),
        ("send", REFUSED_PERMANENTLY, PermanentError, 550, "SMTPRecipientsRefused: SMTP 550 5.1.1"),
        (
            "send",
            smtplib.SMTPSenderRefused(553, b"5.7.1 <welcome@membersync.example> not owned", "x@y.z"),
            PermanentError,
            553,
            "SMTP 553 5.7.1",
        ),
        ("send", smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam"), PermanentError, 554, "554"),
        (
            "send",
            smtplib.SMTPNotSupportedError("SMTPUTF8 needed but not advertised"),
            PermanentError,
            None,
            "SMTPNotSupportedError",
        ),
        (
            "login",
            smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"),
            PermanentError,
            535,
            "SMTPAuthenticationError: SMTP 535 5.7.8",
        ),
        (
            "login",
            smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure"),
            TransientError,
            454,
            "454 4.7.0",
        ),
        (
            "login",
            smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."),
            PermanentError,
            None,
            "",
        ),
        (
            "starttls",
            smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server."),
            PermanentError,
            None,
            "",
        ),
        (
            "starttls",
            ssl.SSLCertVerificationError(1, "certificate verify failed"),
            PermanentError,
            None,
            "certificate",
        ),
        ("starttls", smtplib.SMTPResponseException(454, b"4.7.0 TLS not available"), TransientError, 454, ""),
        ("send", smtplib.SMTPResponseException(-1, b"garbled"), TransientError, -1, ""),
    ],
)
def test_failures_are_classified_and_name_no_address(
    stage: str, failure: BaseException, kind: type[Exception], status: int | None, shown: str
) -> None:
    mailer, connections = fake_mailer({stage: failure}, starttls=True, username="mailer", password="pw")
    with pytest.raises(kind) as raised:
        mailer.send_welcome(welcome())
    error = raised.value
    assert type(error) is kind
    assert getattr(error, "system", None) == "email"
    assert getattr(error, "status", None) == status
    assert shown in str(error)
    assert "@" not in str(error), "no address in the message"
    assert error.__cause__ is None and error.__suppress_context__, "the vendor text stays out of tracebacks"
    if connections and stage != "connect":
        assert connections[0].closed, "the connection is closed after a failure"


def test_a_refusal_is_permanent_when_any_recipient_is_refused_permanently() -> None:
    mixed = smtplib.SMTPRecipientsRefused({"a@example.jp": (450, b"busy"), "b@example.jp": (550, b"no")})
    mailer, _ = fake_mailer({"send": mixed})
    with pytest.raises(PermanentError):
        mailer.send_welcome(welcome())


def test_an_unrenderable_member_number_is_permanent() -> None:
    mailer, connections = fake_mailer()
    with pytest.raises(PermanentError, match="cannot be rendered"):
        mailer.send_welcome(welcome(member_number="会員１"))
    assert connections == []


def test_from_settings_reads_the_smtp_settings() -> None:
    settings = Settings.from_env(
        environ={
            "MEMBERSYNC_ENV": "test",
            "DATABASE_URL": "sqlite://",
            "SMTP_HOST": "mail.shop.example",
            "SMTP_PORT": "2525",
            "SMTP_USERNAME": "membersync",
            "SMTP_PASSWORD": "p4ss",
            "SMTP_STARTTLS": "true",
            "MAIL_FROM": "Shop <hello@shop.example>",
            "SMTP_TIMEOUT_SECONDS": "4",
        }
    )
    mailer = Mailer.from_settings(settings)
    assert (mailer.host, mailer.port, mailer.username, mailer.starttls, mailer.timeout) == (
        "mail.shop.example",
        2525,
        "membersync",
        True,
        4.0,
    )
    assert mailer.mail_from == "Shop <hello@shop.example>"
    assert mailer.domain == "shop.example"
    assert mailer.welcome_message_id("42") == "<welcome.42@shop.example>"
    assert "p4ss" not in repr(mailer)


def test_a_mail_from_without_a_domain_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="MAIL_FROM"):
        fake_mailer(mail_from="Membersync")


@pytest.mark.parametrize(
    "message_id", ["<a@b.example>\r\nBcc: x@y.example", "a@b.example", "<a b@c.example>"]
)
def test_a_message_id_that_is_not_one_plain_header_line_is_refused(message_id: str) -> None:
    # The prebuilt message writes it as it is: a line break would add a header of its own.
    mailer, connections = fake_mailer()
    with pytest.raises(PermanentError, match="cannot be rendered"):
        mailer.send_welcome(welcome(message_id=message_id))
    assert connections == []
