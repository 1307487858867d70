"""Finding a person the way shop staff ask: one search text tried as every kind of id and name.

Read from our own database only (registrations, identities, the Smaregi member directory and the
steps' external ids): a search never calls a vendor, so it is fast, costs no rate budget and works
while a vendor is down. What one text can be (several at once: "12345" may be a Shopify id, a HubSpot
id, a Smaregi id, a member number and a dead letter's number):

- a registration id, or the first characters of one (the lists show 8) — at least 4 hex characters;
- a dead letter's number ("12" or "#12");
- an e-mail address (canonical, as the intake stores it);
- a phone number in any spelling a Japanese phone number is written in (compared as E.164);
- a member number (Smaregi's customerCode: our 16 digits, or a code a shop typed in by hand);
- a Shopify customer id (numeric, or gid://shopify/Customer/N), a HubSpot contact id, a Smaregi
  customerId;
- a name: every word must appear in the family or given name, in either order, in kanji or Latin
  letters, or in the katakana reading (hiragana and half-width katakana are read as katakana).

No index was added for the search (and so no migration). The name words are LIKE '%word%', which no
ordinary index serves; the exact kinds the intake or the pipeline already index (the e-mail, the
directory's code and e-mail) are instant, and the rest (phone, the identities' vendor ids, the steps'
external ids, an id prefix) are scans. Measured on PostgreSQL with 100,000 registrations (400,000
steps, 100,000 identities) on a loaded two-core machine: an e-mail 3 ms, a phone 50 ms, a gid 110 ms,
a name 210-230 ms, a bare number (tried as five kinds of id) 410 ms. A search is a person's click,
so that is acceptable; an index on sync_steps (system, external_id) is the first to add if a shop
grows past that.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import phonenumbers
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from config.email_address import canonical_email
from registrations.models import DeadLetter, DirectoryMember, Identity, Registration, SyncStep

RESULT_LIMIT = 50
# The longest text a search takes: the longest e-mail address any system holds.
MAX_QUERY_LENGTH = 254
MAX_RECORD_NUMBER = 2**31 - 1
MIN_PREFIX = 4

# What a search matched on (English; the console translates these words).
BY_ID = "registration id"
BY_PREFIX = "registration id prefix"
BY_EMAIL = "e-mail"
BY_PHONE = "phone"
BY_NAME = "name"
BY_KANA = "kana"
BY_MEMBER_NUMBER = "member number"
BY_SHOPIFY = "Shopify id"
BY_HUBSPOT = "HubSpot id"
BY_SMAREGI = "Smaregi id"

_SHOPIFY_GID = re.compile(r"gid://shopify/Customer/([0-9]{1,20})", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]{1,20}")
_ID_PREFIX = re.compile(rf"[0-9a-f][0-9a-f-]{{{MIN_PREFIX - 1},35}}")
# A customerCode: up to 20 printable ASCII characters without spaces (Smaregi's own limit).
_MEMBER_CODE = re.compile(r"[!-~]{1,20}")
_PHONE_CHARACTERS = re.compile(r"\+?[0-9()\- .]{6,24}")
# What the lists append to a shortened id ("1a2b3c4d…"), copied along with it.
_ELLIPSIS = ("…", "...")


@dataclass
class Match:
    """One registration a search found, and on what."""

    registration: Registration
    matched_by: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    """The registrations a search found (newest first), a dead letter with that number, if any."""

    matches: list[Match]
    dead_letter_id: int | None = None
    truncated: bool = False


def katakana(text: str) -> str:
    """`text` with hiragana as katakana (the readings are stored in full-width katakana)."""
    return "".join(chr(ord(ch) + 0x60) if "\u3041" <= ch <= "\u3096" else ch for ch in text)


def normalised(text: str) -> str:
    """NFKC (full-width digits and letters, half-width katakana, the ideographic space), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def phone_e164(text: str) -> str | None:
    """`text` as E.164 when it is a valid phone number (Japan by default), else None."""
    if not _PHONE_CHARACTERS.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, "JP")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def dead_letter_number(text: str) -> int | None:
    """`text` ("12" or "#12") as a dead letter's number that can exist, else None."""
    digits = text[1:] if text.startswith("#") else text
    if not _DIGITS.fullmatch(digits) or len(digits) > 10:
        return None
    number = int(digits)
    return number if 0 < number <= MAX_RECORD_NUMBER else None


class _Found:
    """Registration ids with what each was found by, in the order they were found."""

    def __init__(self) -> None:
        self.by_id: dict[str, list[str]] = {}

    def add(self, registration_ids: Iterable[str], label: str) -> None:
        for registration_id in registration_ids:
            labels = self.by_id.setdefault(registration_id, [])
            if label not in labels:
                labels.append(label)


def search(session: Session, typed: str, *, limit: int = RESULT_LIMIT) -> SearchResult:
    """Everything `typed` can mean, looked up at once (see the module's docstring)."""
    text = normalised(typed)
    for ellipsis in _ELLIPSIS:
        text = text.removesuffix(ellipsis).strip()
    found = _Found()
    letter_number = dead_letter_number(text)
    letter_id = None
    if letter_number is not None and session.get(DeadLetter, letter_number) is not None:
        letter_id = letter_number
    if text.startswith("#"):
        return SearchResult(matches=[], dead_letter_id=letter_id)

    lowered = text.lower()
    try:
        found.add(_registration_ids(session, Registration.id == str(uuid.UUID(lowered))), BY_ID)
    except ValueError:
        if _ID_PREFIX.fullmatch(lowered):
            found.add(
                _registration_ids(session, Registration.id.startswith(lowered, autoescape=True)), BY_PREFIX
            )

    if "@" in text:
        found.add(_registration_ids(session, Registration.email == canonical_email(text)), BY_EMAIL)
        return _result(session, found, letter_id, limit)

    phone = phone_e164(text)
    if phone is not None:
        found.add(_registration_ids(session, Registration.phone == phone), BY_PHONE)

    gid = _SHOPIFY_GID.fullmatch(text)
    if gid is not None:
        _by_vendor_id(session, found, "shopify", {gid.group(1), f"gid://shopify/Customer/{gid.group(1)}"})
    elif _DIGITS.fullmatch(text):
        _by_vendor_id(session, found, "shopify", {text, f"gid://shopify/Customer/{text}"})
        _by_vendor_id(session, found, "hubspot", {text})
        _by_vendor_id(session, found, "smaregi", {text})
    if _MEMBER_CODE.fullmatch(text):
        _by_member_number(session, found, text)
    if not _DIGITS.fullmatch(text.replace("-", "")) and gid is None:
        _by_name(session, found, text, limit)
    return _result(session, found, letter_id, limit)


def _registration_ids(session: Session, condition: ColumnElement[bool]) -> list[str]:
    return list(session.scalars(select(Registration.id).where(condition).limit(RESULT_LIMIT + 1)))


def _by_emails(session: Session, emails: Collection[str]) -> list[str]:
    if not emails:
        return []
    return _registration_ids(session, Registration.email.in_(sorted(emails)))


def _by_vendor_id(session: Session, found: _Found, system: str, ids: set[str]) -> None:
    """The registrations whose step in `system` made or found that id, or whose person holds it."""
    label = {"shopify": BY_SHOPIFY, "hubspot": BY_HUBSPOT, "smaregi": BY_SMAREGI}[system]
    steps = select(SyncStep.registration_id).where(SyncStep.system == system, SyncStep.external_id.in_(ids))
    found.add(session.scalars(steps.limit(RESULT_LIMIT + 1)), label)
    column = {
        "shopify": Identity.shopify_customer_id,
        "hubspot": Identity.hubspot_contact_id,
        "smaregi": Identity.smaregi_customer_id,
    }[system]
    emails = set(session.scalars(select(Identity.email).where(column.in_(ids)).limit(RESULT_LIMIT)))
    if system == "smaregi":
        emails |= _directory_emails(session, DirectoryMember.customer_id.in_(ids))
    found.add(_by_emails(session, emails), label)


def _by_member_number(session: Session, found: _Found, code: str) -> None:
    """The people whose Smaregi member has this customerCode (ours, or the directory's record)."""
    emails = set(
        session.scalars(
            select(Identity.email).where(Identity.smaregi_customer_code == code).limit(RESULT_LIMIT)
        )
    )
    emails |= _directory_emails(session, DirectoryMember.customer_code == code)
    customer_ids = list(
        session.scalars(
            select(DirectoryMember.customer_id)
            .where(DirectoryMember.customer_code == code)
            .limit(RESULT_LIMIT)
        )
    )
    if customer_ids:
        steps = select(SyncStep.registration_id).where(
            SyncStep.system == "smaregi", SyncStep.external_id.in_(customer_ids)
        )
        found.add(session.scalars(steps.limit(RESULT_LIMIT + 1)), BY_MEMBER_NUMBER)
    found.add(_by_emails(session, emails), BY_MEMBER_NUMBER)


def _directory_emails(session: Session, condition: ColumnElement[bool]) -> set[str]:
    rows = session.scalars(
        select(DirectoryMember.email).where(condition, DirectoryMember.email.is_not(None)).limit(RESULT_LIMIT)
    )
    return {canonical_email(email) for email in rows if email}


def _name_words(text: str) -> list[str]:
    return [word for word in text.split() if word]


def _by_name(session: Session, found: _Found, text: str, limit: int) -> None:
    """Every word in the name (kanji or Latin, either order) or in its katakana reading."""
    words = _name_words(text)
    if not words:
        return
    name_columns = (
        Registration.last_name,
        Registration.first_name,
        Registration.last_name + Registration.first_name,
        Registration.first_name + Registration.last_name,
    )
    kana_columns = (
        Registration.last_name_kana,
        Registration.first_name_kana,
        Registration.last_name_kana + Registration.first_name_kana,
    )
    conditions = [
        or_(
            *(column.icontains(word, autoescape=True) for column in name_columns),
            *(column.contains(katakana(word), autoescape=True) for column in kana_columns),
        )
        for word in words
    ]
    query = (
        select(Registration)
        .where(and_(*conditions))
        .order_by(Registration.created_at.desc())
        .limit(limit + 1)
    )
    for registration in session.scalars(query):
        by_name = all(_in_name(word, registration) for word in words)
        found.add([registration.id], BY_NAME if by_name else BY_KANA)


def _in_name(word: str, registration: Registration) -> bool:
    last, first = registration.last_name.casefold(), registration.first_name.casefold()
    return word.casefold() in f"{last}{first} {first}{last}"


def _result(session: Session, found: _Found, letter_id: int | None, limit: int) -> SearchResult:
    ids = list(found.by_id)
    if not ids:
        return SearchResult(matches=[], dead_letter_id=letter_id)
    rows = list(
        session.scalars(
            select(Registration)
            .where(Registration.id.in_(ids[: limit * 4]))
            .order_by(Registration.created_at.desc())
            .limit(limit + 1)
        )
    )
    return SearchResult(
        matches=[Match(registration, found.by_id[registration.id]) for registration in rows[:limit]],
        dead_letter_id=letter_id,
        truncated=len(rows) > limit or len(ids) > limit * 4,
    )


def member_numbers(session: Session, registration_ids: Iterable[str | None]) -> dict[str, str]:
    """Each registration's member number (Smaregi customerCode), where one is known.

    From the person's identity (what our Smaregi step or reconciliation recorded), else from the
    member directory through the Smaregi step's customerId. Two queries for a whole list.
    """
    ids = sorted({registration_id for registration_id in registration_ids if registration_id})
    if not ids:
        return {}
    numbers: dict[str, str] = {}
    by_identity = (
        select(Registration.id, Identity.smaregi_customer_code)
        .join(Identity, Identity.email == Registration.email)
        .where(Registration.id.in_(ids), Identity.smaregi_customer_code.is_not(None))
    )
    for registration_id, code in session.execute(by_identity):
        if code:
            numbers[registration_id] = code
    missing = [registration_id for registration_id in ids if registration_id not in numbers]
    if missing:
        by_directory = (
            select(SyncStep.registration_id, DirectoryMember.customer_code)
            .join(DirectoryMember, DirectoryMember.customer_id == SyncStep.external_id)
            .where(SyncStep.system == "smaregi", SyncStep.registration_id.in_(missing))
        )
        for registration_id, code in session.execute(by_directory):
            if code:
                numbers[registration_id] = code
    return numbers
