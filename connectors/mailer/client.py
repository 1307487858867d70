"""The welcome email, the member-number email and the "already a member" notice: rendered from
templates (Japanese and English) and sent over plain SMTP; and the ops alert (the dead-letter digest,
steps past their retry budget) to OPS_ALERT_EMAIL, plain English text.

The welcome goes to every new member; the member-number email follows only when the welcome went out
before Smaregi had given the number; the notice goes to an address that already belongs to a member
when someone registers with it again. Each is multipart/alternative: a text part and an HTML part
(multipart/related with the member-number barcode inline, cid:, when there is a number). Each
Message-ID is derived from the registration id (a different one per kind), so every retry sends the
same message and a client that sees it twice shows it once. Nothing is fetched when a message is
opened: no remote images, no tracking.

Links (double opt-in, "is this card yours?", unsubscribe) are capabilities the domain signs; here they
are only checked to be plain http(s) URLs, set on a line of their own in the text part and escaped in
the HTML part, and never folded or broken. A welcome with an unsubscribe link also carries the
List-Unsubscribe headers (RFC 2369, one-click per RFC 8058).

The notice carries no personal data: the typed name may be a stranger's, so its template is given
no name, number or address at all.

Every recipient is a plain addr-spec (dot-atom local part, ASCII): anything else is refused before a
header is written, so a quoted or folded address can never reach the To: header or the envelope.

Failures, as the pipeline needs them (`connectors.errors`):
- no connection, timeouts, a dropped connection, 4xx replies → TransientError (retry later);
- 5xx replies (recipient, sender or message refused, authentication failed), STARTTLS or AUTH not
  offered, a certificate that does not verify → PermanentError (retrying cannot help).
Messages name the SMTP reply code and enhanced status only; a server's reply text often quotes the
addresses, so it is never kept.
"""

from __future__ import annotations

import binascii
import contextlib
import email
import email.utils
import functools
import hashlib
import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any, cast

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from connectors.errors import ConnectorError, PermanentError, TransientError
from connectors.mailer.barcode import code128_png

if TYPE_CHECKING:
    from config.settings import Settings

SYSTEM = "email"
LOCALES = ("ja", "en")
# The registration form's default; a locale we have no template for falls back to it.
DEFAULT_LOCALE = "ja"
SUBJECTS: Mapping[tuple[str, bool], str] = {
    # (locale, has a member number)
    ("ja", True): "会員登録ありがとうございます【会員番号のお知らせ】",
    ("ja", False): "会員登録ありがとうございます",
    ("en", True): "Welcome — your membership number",
    ("en", False): "Welcome — thank you for registering",
}
MEMBER_NUMBER_SUBJECTS: Mapping[str, str] = {
    "ja": "【会員番号のお知らせ】会員バーコードをお送りします",
    "en": "Your membership number",
}
NOTICE_SUBJECTS: Mapping[str, str] = {
    "ja": "【ご確認】このメールアドレスでの会員登録について",
    "en": "About a registration with your e-mail address",
}
CARD_QUESTION_SUBJECTS: Mapping[str, str] = {
    "ja": "【ご確認】店舗で作成された会員カードについて",
    "en": "Is this member card yours?",
}
# The domain's default lifetime of a confirmation link (CONFIRMATION_DAYS), for messages built without one.
DEFAULT_CONFIRM_DAYS = 7
BARCODE_FILENAME = "member-barcode.png"
_ID_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# Written into its header as it is (never folded): no space, CR, LF or brackets inside.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_ENHANCED_STATUS = re.compile(rb"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
# RFC 5322 dot-atom: atext runs joined by single dots. No quoted strings, comments, spaces or
# non-ASCII: a quoted local part once went raw into To: and reached another mailbox.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})+")
# RFC 5321: a path of at most 256 octets with its brackets, a local part of at most 64.
MAX_ADDRESS_OCTETS, MAX_LOCAL_OCTETS = 254, 64
# A link: http(s), then only the characters RFC 3986 allows in a URI (no space, quote, angle
# bracket or backslash, so it cannot end an HTML attribute, a header's <...> or a line).
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# A header line may hold 998 octets (RFC 5322 2.1.1); "List-Unsubscribe: <" and ">" take 21.
MAX_URL_OCTETS = 900
# Headers whose value must never be folded: a folded id reads back with a leading space in some
# parsers (Python's among them), and a folded URL is a broken link for a mail client's unsubscribe.
_UNFOLDED_HEADERS = frozenset({"message-id", "list-unsubscribe", "list-unsubscribe-post"})

_templates = Environment(
    loader=PackageLoader("connectors.mailer", "templates"),
    # HTML escapes every value (a name is whatever the customer typed); the text part is plain text.
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class _MailPolicy(EmailPolicy):
    """The default policy, except that Message-ID and the List-Unsubscribe headers are never folded.

    A Message-ID longer than a line (a long sender domain) would be folded, and a folded one reads
    back with a leading space in some parsers (Python's among them), so two sends of one message
    could look like two messages. A List-Unsubscribe URL has no space to fold at, and the policy
    would split it into encoded words a mail client cannot follow. All are ASCII checked here,
    below the 998-octet line limit.
    """

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in _UNFOLDED_HEADERS:
            return f"{name}: {str(value).strip()}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() in _UNFOLDED_HEADERS:
            return self.fold(name, value).encode("ascii")
        return super().fold_binary(name, value)


_MAIL_POLICY = _MailPolicy()


@dataclass(frozen=True)
class WelcomeMessage:
    """What the welcome email says to one new member."""

    to: str
    first_name: str
    last_name: str
    locale: str  # "ja" | "en"
    # None when the Smaregi step is dead or skipped, or waits for the card answer: the mail then
    # says the number follows.
    member_number: str | None
    message_id: str
    # The double opt-in page: the registrant asked for news by e-mail; none is sent until confirmed.
    confirm_marketing_url: str | None = None
    # How long the confirm link is valid (the domain's CONFIRMATION_DAYS), said in the mail.
    confirm_days: int = DEFAULT_CONFIRM_DAYS
    # The "is this card yours?" page, for a till-made card found with this address. The number then
    # follows once they answer, so a message with both a card link and a number is refused.
    card_url: str | None = None
    # The withdraw link: a footer line and the List-Unsubscribe headers.
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class MemberNumberMessage:
    """The member number for someone whose welcome email went out without it."""

    to: str
    first_name: str
    last_name: str
    locale: str  # "ja" | "en"
    member_number: str
    message_id: str


@dataclass(frozen=True)
class NoticeMessage:
    """The "you are already a member" notice to an address someone registered with again.

    No name, number or postal address, by design: whoever registered typed them, and they may be a
    stranger's; the owner's own details are not repeated to an inbox we only know by its address.
    """

    to: str
    locale: str  # "ja" | "en"
    message_id: str
    # The page where the owner can accept the details typed in this registration (None: nothing to
    # accept, the notice only says nothing changed).
    confirm_url: str | None
    confirm_days: int = DEFAULT_CONFIRM_DAYS


@dataclass(frozen=True)
class CardQuestionMessage:
    """ "Is this card yours?" to the owner of an address a card made at the till holds, asked on its
    own when the welcome (which asks it at registration) went out long before the card was found.

    No name, number or postal address: the card's details were typed at a till by whoever stood
    there; the page behind the link asks the question.
    """

    to: str
    locale: str  # "ja" | "en"
    message_id: str
    confirm_url: str
    confirm_days: int = DEFAULT_CONFIRM_DAYS


@dataclass(frozen=True)
class OpsAlertMessage:
    """A message to ops: what happened and what to do (`summary`), then one line per dead letter or
    step. Ids, systems and reasons only: the caller never puts a registrant's personal data in it.
    """

    to: str
    subject: str
    summary: tuple[str, ...]
    lines: tuple[str, ...]
    # The Message-ID's left part ("dead-letters", "over-budget"): each alert is a new message.
    kind: str


@dataclass(frozen=True)
class _InlineBarcode:
    cid: str
    png: bytes  # one row of pixels
    width: int
    height: int  # as shown: the HTML stretches the row


def sender_domain(mail_from: str) -> str:
    """The domain of MAIL_FROM's address ("Shop <welcome@shop.example>" → "shop.example")."""
    _, address = email.utils.parseaddr(mail_from)
    domain = address.rpartition("@")[2] if "@" in address else ""
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not _DOMAIN.fullmatch(domain):
        raise ValueError("MAIL_FROM needs an address with a domain, such as welcome@shop.example")
    return domain


def _message_id(kind: str, registration_id: str, domain: str) -> str:
    if not _ID_TEXT.fullmatch(registration_id) or not _DOMAIN.fullmatch(domain):
        raise ValueError("a Message-ID needs a plain registration id and an ASCII domain")
    return f"<{kind}.{registration_id}@{domain}>"


def welcome_message_id(registration_id: str, *, domain: str) -> str:
    """The welcome email's Message-ID for a registration: the same on every retry."""
    return _message_id("welcome", registration_id, domain)


def member_number_message_id(registration_id: str, *, domain: str) -> str:
    """The member-number email's Message-ID for a registration: the same on every retry, never the
    welcome's (a client would take the second for a copy of the first and hide it)."""
    return _message_id("member-number", registration_id, domain)


def notice_message_id(registration_id: str, *, domain: str) -> str:
    """The "already a member" notice's Message-ID for the registration that caused it: the same on
    every retry, never another kind's."""
    return _message_id("notice", registration_id, domain)


def card_question_message_id(registration_id: str, *, domain: str) -> str:
    """The card question's Message-ID for the registration whose owner is asked: never another kind's."""
    return _message_id("card", registration_id, domain)


def recipient(address: str) -> str:
    """`address` as the To: header and the envelope carry it: a plain addr-spec, or ValueError.

    The local part must be an RFC 5322 dot-atom in ASCII (no quotes, spaces, CR/LF, comments or
    display name); the domain a dotted host name, converted to its ASCII (IDNA) form if typed in
    Unicode. The error never quotes the address (it ends up in step notes and logs).
    """
    local, at, domain = address.rpartition("@")
    if not at or not _DOT_ATOM.fullmatch(local) or len(local) > MAX_LOCAL_OCTETS:
        raise ValueError("the recipient's local part is not a plain ASCII dot-atom")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = ""
    if not _HOSTNAME.fullmatch(ascii_domain):
        raise ValueError("the recipient's domain is not a host name")
    plain = f"{local}@{ascii_domain}"
    if len(plain) > MAX_ADDRESS_OCTETS:
        raise ValueError(f"the recipient's address is longer than {MAX_ADDRESS_OCTETS} octets")
    return plain


def _link(url: str | None, what: str) -> str | None:
    """A link the domain made, checked to be a plain http(s) URL that survives a header and HTML."""
    if url is None:
        return None
    if not _URL.fullmatch(url) or len(url) > MAX_URL_OCTETS:
        raise ValueError(f"the {what} link is not a plain http(s) URL of at most {MAX_URL_OCTETS} characters")
    return url


def _days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError("a link's validity is a whole number of days, at least 1")
    return days


def _welcome(message: WelcomeMessage, *, mail_from: str) -> _Outgoing:
    """The welcome email as a MIME message: text and HTML alternatives, the barcode inline."""
    locale = message.locale if message.locale in LOCALES else DEFAULT_LOCALE
    member_number = message.member_number or None
    card_url = _link(message.card_url, "card")
    if card_url is not None and member_number is not None:
        # The number would be the found card's or a second member's: both wait for the answer.
        raise ValueError("a welcome that asks about a found card carries no member number yet")
    unsubscribe_url = _link(message.unsubscribe_url, "unsubscribe")
    subject = SUBJECTS[locale, member_number is not None]
    context = {
        "first_name": message.first_name,
        "last_name": message.last_name,
        "member_number": member_number,
        "confirm_marketing_url": _link(message.confirm_marketing_url, "marketing confirmation"),
        "confirm_days": _days(message.confirm_days),
        "card_url": card_url,
        "unsubscribe_url": unsubscribe_url,
    }
    return _render(
        "welcome", locale, subject, message, context, member_number, unsubscribe_url, mail_from=mail_from
    )


def _member_number(message: MemberNumberMessage, *, mail_from: str) -> _Outgoing:
    """The member-number email as a MIME message: text and HTML alternatives, the barcode inline."""
    locale = message.locale if message.locale in LOCALES else DEFAULT_LOCALE
    if not message.member_number:
        raise ValueError("a member-number email needs the member number")
    subject = MEMBER_NUMBER_SUBJECTS[locale]
    context = {
        "first_name": message.first_name,
        "last_name": message.last_name,
        "member_number": message.member_number,
    }
    return _render(
        "member_number", locale, subject, message, context, message.member_number, None, mail_from=mail_from
    )


def _notice(message: NoticeMessage, *, mail_from: str) -> _Outgoing:
    """The "already a member" notice as a MIME message: text and HTML alternatives, no image.

    Its templates see only the link and its validity: no name, number or address can slip in.
    """
    locale = message.locale if message.locale in LOCALES else DEFAULT_LOCALE
    context = {
        "confirm_url": _link(message.confirm_url, "confirmation"),
        "confirm_days": _days(message.confirm_days),
    }
    return _render(
        "notice", locale, NOTICE_SUBJECTS[locale], message, context, None, None, mail_from=mail_from
    )


def _card_question(message: CardQuestionMessage, *, mail_from: str) -> _Outgoing:
    """The card question as a MIME message: text and HTML alternatives, no image, no personal data."""
    locale = message.locale if message.locale in LOCALES else DEFAULT_LOCALE
    confirm_url = _link(message.confirm_url, "card")
    if confirm_url is None:
        raise ValueError("a card question needs its link")
    context = {"confirm_url": confirm_url, "confirm_days": _days(message.confirm_days)}
    return _render(
        "card_question",
        locale,
        CARD_QUESTION_SUBJECTS[locale],
        message,
        context,
        None,
        None,
        mail_from=mail_from,
    )


def render_welcome(message: WelcomeMessage, *, mail_from: str) -> EmailMessage:
    """The welcome email as a MIME message: text and HTML alternatives, the barcode inline."""
    return _welcome(message, mail_from=mail_from).parsed()


def render_member_number(message: MemberNumberMessage, *, mail_from: str) -> EmailMessage:
    """The member-number email as a MIME message: text and HTML alternatives, the barcode inline."""
    return _member_number(message, mail_from=mail_from).parsed()


def render_notice(message: NoticeMessage, *, mail_from: str) -> EmailMessage:
    """The "already a member" notice as a MIME message: text and HTML alternatives, no image."""
    return _notice(message, mail_from=mail_from).parsed()


def render_card_question(message: CardQuestionMessage, *, mail_from: str) -> EmailMessage:
    """The card question as a MIME message: text and HTML alternatives, no image, no personal data."""
    return _card_question(message, mail_from=mail_from).parsed()


def render_ops_alert(message: OpsAlertMessage, *, mail_from: str) -> EmailMessage:
    """The ops alert as a MIME message: plain text, a fresh Message-ID in MAIL_FROM's domain."""
    if not _ID_TEXT.fullmatch(message.kind):
        raise ValueError("an ops alert's kind is a plain word")
    text = _templates.get_template("ops_alert.txt").render(summary=message.summary, lines=message.lines)
    mime = EmailMessage(policy=_MAIL_POLICY)
    mime["From"] = mail_from
    mime["To"] = recipient(message.to)
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.format_datetime(datetime.now(UTC))
    mime["Message-ID"] = email.utils.make_msgid(message.kind, domain=sender_domain(mail_from))
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(text)
    return mime


@dataclass(frozen=True)
class _Outgoing:
    """A message ready for SMTP: its envelope recipient and its bytes (CRLF line ends)."""

    to: str
    data: bytes

    def parsed(self) -> EmailMessage:
        """The message as a reader's mail client sees it."""
        return cast(EmailMessage, email.message_from_bytes(self.data, policy=_MAIL_POLICY))


_CRLF_POLICY = _MAIL_POLICY.clone(linesep="\r\n")
# The part headers of the prebuilt message: every body is UTF-8 in base64, whose lines can never
# start with "--", so a boundary can never occur in a body.
_TEXT_PART = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
_HTML_PART = b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
# The barcode is one row of pixels; the HTML stretches it to this height (an image a hundredth of
# the size, and nothing to resample across the bars).
BARCODE_HEIGHT_PX = 100


@functools.lru_cache(maxsize=64)
def _fixed_headers(mail_from: str, subject: str) -> bytes:
    """From and Subject as the mail policy encodes and folds them: the same for every message of a
    kind, so encoded once (the header machinery is most of what building a message costs)."""
    headers = EmailMessage(policy=_CRLF_POLICY)
    headers["From"] = mail_from
    headers["Subject"] = subject
    return b"".join(_CRLF_POLICY.fold_binary(name, value) for name, value in headers.items())


def _base64(text: str | bytes) -> bytes:
    """`text` (UTF-8) in base64, lines of 76 characters with CRLF ends."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    lines = (binascii.b2a_base64(data[at : at + 57], newline=False) for at in range(0, len(data), 57))
    return b"".join(line + b"\r\n" for line in lines)


def _render(
    template: str,
    locale: str,
    subject: str,
    message: WelcomeMessage | MemberNumberMessage | NoticeMessage | CardQuestionMessage,
    fields: Mapping[str, Any],
    member_number: str | None,
    unsubscribe_url: str | None,
    *,
    mail_from: str,
) -> _Outgoing:
    """`template`'s text and HTML for `locale`, given `fields`, as one MIME message: the barcode
    inline when there is a member number, the List-Unsubscribe headers when there is a link.

    A prebuilt message: the fixed headers come encoded from a cache, and only the per-person parts
    (recipient, date, ids, links, the two bodies and the barcode) are filled in, as bytes.
    multipart/alternative of text/plain and text/html, the HTML in multipart/related with the
    barcode when there is one. Message-ID and List-Unsubscribe are checked ASCII on one line.
    """
    to = recipient(message.to)
    if not _MESSAGE_ID.fullmatch(message.message_id):
        raise ValueError("a Message-ID is a plain ASCII <left@right>")
    display_name, _ = email.utils.parseaddr(mail_from)
    context: dict[str, Any] = {
        **fields,
        "locale": locale,
        "subject": subject,
        "sender_name": display_name or sender_domain(mail_from),
    }
    digest = hashlib.sha256(message.message_id.encode()).hexdigest()[:16]
    barcode = None
    if member_number is not None:
        image = code128_png(member_number, height_px=1)
        barcode = _InlineBarcode(
            cid=_barcode_content_id(message.message_id),
            png=image.png,
            width=image.width,
            height=BARCODE_HEIGHT_PX,
        )
        context["barcode"] = barcode
    text = _templates.get_template(f"{template}.{locale}.txt").render(context)
    html = _templates.get_template(f"{template}.{locale}.html").render(context)

    # Derived from the Message-ID, like the Content-ID: every retry builds the same message.
    alternative = f"=_alt.{digest}".encode()
    related = f"=_rel.{digest}".encode()
    out = [
        _fixed_headers(mail_from, subject),
        b"To: %s\r\n" % to.encode("ascii"),
        b"Date: %s\r\n" % email.utils.format_datetime(datetime.now(UTC)).encode("ascii"),
        b"Message-ID: %s\r\n" % message.message_id.encode("ascii"),
        # RFC 3834: an automatic message, so out-of-office responders do not answer it.
        b"Auto-Submitted: auto-generated\r\n",
    ]
    if unsubscribe_url is not None:
        # RFC 2369 and RFC 8058: the mail client's own "unsubscribe" POSTs to the link, no page to read.
        out += [
            b"List-Unsubscribe: <%s>\r\n" % unsubscribe_url.encode("ascii"),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ]
    out += [
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/alternative; boundary="%s"\r\n\r\n' % alternative,
        b"--%s\r\n" % alternative,
        _TEXT_PART,
        _base64(text),
        b"--%s\r\n" % alternative,
    ]
    if barcode is None:
        out += [_HTML_PART, _base64(html)]
    else:
        out += [
            b'Content-Type: multipart/related; boundary="%s"\r\n\r\n' % related,
            b"--%s\r\n" % related,
            _HTML_PART,
            _base64(html),
            b"--%s\r\n" % related,
            b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n",
            b"Content-ID: <%s>\r\n" % barcode.cid.encode("ascii"),
            b'Content-Disposition: inline; filename="%s"\r\n\r\n' % BARCODE_FILENAME.encode("ascii"),
            _base64(barcode.png),
            b"--%s--\r\n" % related,
        ]
    out.append(b"--%s--\r\n" % alternative)
    return _Outgoing(to=to, data=b"".join(out))


def _barcode_content_id(message_id: str) -> str:
    """The barcode's Content-ID (without brackets): derived from the Message-ID, so a retry renders
    the same message, and short, so the header is not folded (a folded Content-ID reads back with a
    leading space in some parsers, Python's among them)."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
    _, at, domain = message_id.strip("<>").rpartition("@")
    return f"barcode.{digest}@{domain if at else 'localhost'}"


SmtpFactory = Callable[..., smtplib.SMTP]
# A connection carries this many messages at most, and is not reused after idling this long: within
# what SMTP servers commonly allow (Exchange 20 messages a connection by default; RFC 5321 asks a
# server to wait 5 minutes for a command).
MAX_MESSAGES_PER_CONNECTION = 20
MAX_IDLE_SECONDS = 30.0


class _NotStarted(Exception):
    """A reused connection failed before any of the message was sent."""


@dataclass
class _Open:
    smtp: smtplib.SMTP
    sent: int = 0
    idle_since: float = 0.0


class _IdleConnections:
    """Connections between messages, shared by the threads of one process: a message takes one
    (or none) and gives it back once the server took the message; a failed one is closed instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: list[_Open] = []

    def take(self) -> _Open | None:
        stale: list[_Open] = []
        found = None
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():  # a forked child: those sockets are its parent's
                self._pid, self._open = os.getpid(), []
            while self._open:
                candidate = self._open.pop()
                if now - candidate.idle_since <= MAX_IDLE_SECONDS:
                    found = candidate
                    break
                stale.append(candidate)
        for old in stale:
            _quit(old.smtp)
        return found

    def give_back(self, connection: _Open) -> None:
        """After a message the server took: nothing may fail the step now (a retry would send it again)."""
        connection.sent += 1
        if connection.sent >= MAX_MESSAGES_PER_CONNECTION:
            _quit(connection.smtp)
            return
        connection.idle_since = time.monotonic()
        with self._lock:
            if self._pid == os.getpid():
                self._open.append(connection)
                return
        _close(connection.smtp)

    def drain(self) -> list[_Open]:
        with self._lock:
            drained, self._open = self._open, []
        return drained


class Mailer:
    """Sends mail through one SMTP server (STARTTLS and AUTH when configured)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str,
        starttls: bool,
        mail_from: str,
        timeout: float,
        smtp_factory: SmtpFactory = smtplib.SMTP,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.mail_from = mail_from
        self.timeout = timeout
        self._smtp_factory = smtp_factory
        # Checked here so a bad MAIL_FROM fails at start-up, not in the first welcome step.
        self.domain = sender_domain(mail_from)
        self._envelope_from = email.utils.parseaddr(mail_from)[1]
        # A non-ASCII local part needs the server's SMTPUTF8 (SMTPNotSupportedError without it).
        self._mail_options: tuple[str, ...] = () if self._envelope_from.isascii() else ("SMTPUTF8",)
        self._idle = _IdleConnections()

    def __repr__(self) -> str:
        return f"Mailer(host={self.host!r}, port={self.port!r}, starttls={self.starttls!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        """The mailer the SMTP_* and MAIL_FROM settings describe."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.value,
            starttls=settings.smtp_starttls,
            mail_from=settings.mail_from,
            timeout=settings.smtp_timeout_seconds,
        )

    def welcome_message_id(self, registration_id: str) -> str:
        """The registration's welcome Message-ID in MAIL_FROM's domain."""
        return welcome_message_id(registration_id, domain=self.domain)

    def member_number_message_id(self, registration_id: str) -> str:
        """The registration's member-number Message-ID in MAIL_FROM's domain."""
        return member_number_message_id(registration_id, domain=self.domain)

    def notice_message_id(self, registration_id: str) -> str:
        """The registration's "already a member" notice Message-ID in MAIL_FROM's domain."""
        return notice_message_id(registration_id, domain=self.domain)

    def send(self, message: EmailMessage) -> None:
        """Hand one message to the SMTP server (RFC 5321; STARTTLS RFC 3207; AUTH RFC 4954)."""
        recipients = [address for _, address in email.utils.getaddresses(message.get_all("To", []))]
        self._deliver(recipients, message.as_bytes(policy=_CRLF_POLICY))

    def _deliver(self, recipients: list[str], data: bytes) -> None:
        """Send `data` to `recipients`, on a connection left open by an earlier message when there is one.

        A timeout while the server answers the message's final dot leaves it unknown whether the
        message was taken; that is transient, so a retry may deliver it twice (same Message-ID). A
        message is sent again on a new connection only when a reused one failed at MAIL FROM, before
        any of the message left (a server that closed an idle connection, or its per-connection limit).
        """
        reused = self._idle.take()
        if reused is not None:
            try:
                self._transfer(reused.smtp, recipients, data, reused=True)
            except _NotStarted:
                _close(reused.smtp)
            except (smtplib.SMTPException, OSError) as error:
                _close(reused.smtp)
                raise _classify(error) from None
            else:
                self._idle.give_back(reused)
                return
        fresh = _Open(self._connect())
        try:
            self._transfer(fresh.smtp, recipients, data, reused=False)
        except (smtplib.SMTPException, OSError) as error:
            _close(fresh.smtp)
            raise _classify(error) from None
        self._idle.give_back(fresh)

    def _connect(self) -> smtplib.SMTP:
        """A new connection, through STARTTLS and AUTH when configured; failures classified."""
        try:
            smtp = self._smtp_factory(self.host, self.port, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as error:
            raise _classify(error) from None
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password)
        except (smtplib.SMTPException, OSError) as error:
            _close(smtp)
            raise _classify(error) from None
        return smtp

    def _transfer(self, smtp: smtplib.SMTP, recipients: list[str], data: bytes, *, reused: bool) -> None:
        """MAIL, RCPT and DATA (smtplib's sendmail, split so a failure before DATA is told apart).

        On a `reused` connection any failure at MAIL FROM raises _NotStarted: nothing of the message
        has been sent, so a new connection may send it.
        """
        try:
            smtp.ehlo_or_helo_if_needed()
            code, reply = smtp.mail(self._envelope_from, self._mail_options)
        except (smtplib.SMTPException, OSError):
            if reused:
                raise _NotStarted from None
            raise
        if code != 250:
            if reused:
                raise _NotStarted
            raise smtplib.SMTPSenderRefused(code, reply, self._envelope_from)
        # One recipient per message here: it is either accepted or refused, never partly.
        refused = {}
        for address in recipients:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                refused[address] = (code, reply)
        if len(refused) == len(recipients):
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = smtp.data(data)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)

    def close(self) -> None:
        """QUIT the connections kept open for the next messages (a clean shutdown; else they just drop)."""
        for kept in self._idle.drain():
            _quit(kept.smtp)

    def check(self) -> None:
        """Connect, EHLO, STARTTLS and AUTH when configured, QUIT: nothing is sent (`membersync check`).

        Failures are classified as send() classifies them.
        """
        try:
            smtp = self._smtp_factory(self.host, self.port, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as error:
            raise _classify(error) from None
        try:
            code, reply = smtp.ehlo()
            if code != 250:
                raise smtplib.SMTPHeloError(code, reply)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password)
        except (smtplib.SMTPException, OSError) as error:
            _close(smtp)
            raise _classify(error) from None
        _quit(smtp)

    def send_welcome(self, message: WelcomeMessage) -> None:
        """Render the welcome email and send it."""
        try:
            outgoing = _welcome(message, mail_from=self.mail_from)
        except ValueError as error:
            raise PermanentError(f"welcome email cannot be rendered: {error}", system=SYSTEM) from None
        self._deliver([outgoing.to], outgoing.data)

    def send_member_number(self, message: MemberNumberMessage) -> None:
        """Render the member-number email and send it."""
        try:
            outgoing = _member_number(message, mail_from=self.mail_from)
        except ValueError as error:
            raise PermanentError(f"member-number email cannot be rendered: {error}", system=SYSTEM) from None
        self._deliver([outgoing.to], outgoing.data)

    def send_notice(self, message: NoticeMessage) -> None:
        """Render the "already a member" notice and send it."""
        try:
            outgoing = _notice(message, mail_from=self.mail_from)
        except ValueError as error:
            raise PermanentError(f"notice email cannot be rendered: {error}", system=SYSTEM) from None
        self._deliver([outgoing.to], outgoing.data)

    def send_card_question(self, message: CardQuestionMessage) -> None:
        """Render the card question and send it."""
        try:
            outgoing = _card_question(message, mail_from=self.mail_from)
        except ValueError as error:
            raise PermanentError(f"card question cannot be rendered: {error}", system=SYSTEM) from None
        self._deliver([outgoing.to], outgoing.data)

    def send_ops_alert(self, message: OpsAlertMessage) -> None:
        """Render an ops alert and send it."""
        try:
            rendered = render_ops_alert(message, mail_from=self.mail_from)
        except ValueError as error:
            raise PermanentError(f"ops alert cannot be rendered: {error}", system=SYSTEM) from None
        self.send(rendered)


def _classify(error: smtplib.SMTPException | OSError) -> ConnectorError:
    """Our error for what smtplib or the socket raised."""
    name = type(error).__name__
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return _refused_error(error.recipients)
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply_error(name, error.smtp_code, error.smtp_error)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib's own words ("Connection unexpectedly closed: timed out"), never the server's.
        return TransientError(f"{name}: {str(error)[:100]}", system=SYSTEM)
    if isinstance(error, smtplib.SMTPException):
        # STARTTLS or AUTH not offered, no usable AUTH mechanism, SMTPUTF8 needed but missing.
        return PermanentError(f"{name}: the server cannot take this message as configured", system=SYSTEM)
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentError(f"{name}: the server's certificate does not verify", system=SYSTEM)
    if isinstance(error, TimeoutError):
        return TransientError(f"{name}: timed out", system=SYSTEM)
    # Connection refused or reset, DNS failure, TLS handshake interrupted.
    return TransientError(f"{name}: {error.strerror or 'connection failed'}", system=SYSTEM)


def _refused_error(recipients: Mapping[str, tuple[int, bytes]]) -> ConnectorError:
    """All recipients refused: permanent if any refusal is permanent (5xx), else transient."""
    replies = sorted(recipients.values(), key=lambda reply: reply[0], reverse=True)
    code, reply = replies[0] if replies else (-1, b"")
    return _reply_error("SMTPRecipientsRefused", code, reply)


def _reply_error(name: str, code: int, reply: bytes | str) -> ConnectorError:
    raw = reply.encode("utf-8", "replace") if isinstance(reply, str) else reply
    enhanced = _ENHANCED_STATUS.match(raw)
    detail = f"{name}: SMTP {code}" + (f" {enhanced.group(1).decode()}" if enhanced else "")
    if 500 <= code < 600:
        return PermanentError(detail, system=SYSTEM, status=code)
    # 4xx says "try again later"; anything else (a garbled reply) is no reason to give up.
    return TransientError(detail, system=SYSTEM, status=code)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()
