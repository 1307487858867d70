"""Smaregi POS members (会員) as Membersync sees them, and the member numbers we give new ones."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from config.email_address import canonical_email

MEMBER_CODE_DIGITS = 16
# Smaregi's clock: times without an offset are Japan time.
JST = timezone(timedelta(hours=9), "JST")

# Keyword names of create_member / update_member -> the customer object's JSON field names.
FIELD_NAMES: Mapping[str, str] = {
    "customer_code": "customerCode",
    "last_name": "lastName",
    "first_name": "firstName",
    "mail_address": "mailAddress",
    "last_kana": "lastKana",
    "first_kana": "firstKana",
    "phone_number": "phoneNumber",
    "post_code": "postCode",
    "address": "address",
    "sex": "sex",
    "birth_date": "birthDate",
    "mail_receive_flag": "mailReceiveFlag",
}


@dataclass(frozen=True)
class SmaregiMember:
    """A POS member: Smaregi's id, the member number on the card, and what we match on."""

    customer_id: str
    customer_code: str  # the member number (printed on the card / barcode)
    mail_address: str | None
    last_name: str | None
    first_name: str | None
    point: str | None = None  # as Smaregi returns it, when it does
    updated_at: datetime | None = None  # updDateTime: Smaregi's time of the member's last change
    # mailReceiveFlag ("1" receives marketing mail, "0" not); None when the answer did not say.
    mail_receive_flag: bool | None = None
    # Smaregi owns these (rank and points); the profile fields are read for drift against Shopify.
    rank: str | None = None
    phone_number: str | None = None
    post_code: str | None = None
    address: str | None = None
    # The point balance as a number (`point` keeps Smaregi's string); None when absent or not a number.
    points: int | None = None

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> SmaregiMember:
        """A member from one customer object of the API."""

        def text(name: str) -> str | None:
            value = record.get(name)
            return None if value is None else str(value)

        return cls(
            customer_id=str(record["customerId"]),
            customer_code=str(record.get("customerCode") or ""),
            mail_address=text("mailAddress") or None,
            last_name=text("lastName"),
            first_name=text("firstName"),
            point=text("point"),
            updated_at=parse_time(text("updDateTime")),
            mail_receive_flag={"1": True, "0": False}.get(text("mailReceiveFlag") or ""),
            rank=text("rank") or None,
            phone_number=text("phoneNumber") or None,
            post_code=text("postCode") or None,
            address=text("address") or None,
            points=parse_int(text("point")),
        )


def parse_int(value: str | None) -> int | None:
    """The integer in one of Smaregi's string numbers ("120", "-5"), or None when absent or not one."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time of Smaregi's (Japan time when it has no offset), or None when absent or bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


def smaregi_time(moment: datetime) -> str:
    """`moment` as Smaregi's filters take it: ISO 8601 in Japan time with its offset, to the second."""
    return moment.astimezone(JST).replace(microsecond=0).isoformat()


def member_code(email: str, *, key: bytes, salt: int = 0) -> str:
    """The customerCode a new member gets: 16 decimal digits, HMAC-SHA256 of the canonical email.

    Deterministic on purpose: when Smaregi stores a member but its answer is lost (timeout), a retry
    asks for the same code and finds our own member by it instead of creating a second card. Keyed,
    so that knowing someone's address is not enough to compute their card number (and spend their
    points at a till). `salt` > 0 only when the code is held by somebody else's member (a collision,
    or a number a shop typed in by hand). Digits only, so the number works on a barcode and a till
    keypad; 16 of them keep collisions negligible for millions of members and fit Smaregi's 20.
    """
    if salt < 0:
        raise ValueError("salt must be zero or positive")
    if not key:
        raise ValueError("a member code needs a key (MEMBER_CODE_KEY)")
    message = f"{canonical_email(email)}\n{salt}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return str(int.from_bytes(digest[:8], "big") % 10**MEMBER_CODE_DIGITS).zfill(MEMBER_CODE_DIGITS)


def member_fields(values: Mapping[str, str | bool | None]) -> dict[str, str]:
    """The JSON body for create/update: Smaregi's names, every value a string, None left out."""
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise TypeError(f"not a Smaregi member field: {', '.join(unknown)}")
    body: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        body[FIELD_NAMES[name]] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return body
