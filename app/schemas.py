"""Validation and normalisation of a registration, shared by the JSON API and the HTML form.

Every length limit is the tightest rule of the systems the field reaches (Shopify, Smaregi, HubSpot,
SMTP), kept in one table (`FIELD_LIMITS`) that the schema, the form's maxlength attributes and the
OpenAPI document all read, so an accepted registration never fails later on a length rule. Limits are
checked on what is stored and sent, after normalisation (NFKC; for the address `canonical_email`).

Every text field refuses the characters `app/text.py` names (surrogates, controls, format characters,
line separators), checked on what was sent. The address's part before the @ is an unquoted ASCII
dot-atom: a quoted local part (`"a..b"@example.com`) would go raw into a mail header and, on some
servers, to another mailbox.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates

from app.text import text_problem
from config.email_address import canonical_email


@dataclass(frozen=True)
class FieldLimit:
    """The most a field may hold after normalisation, and which system's rule that is."""

    max_length: int
    imposed_by: str
    # SMTP counts an address in octets; the other systems count characters.
    in_octets: bool = False

    @property
    def unit(self) -> str:
        return "bytes" if self.in_octets else "characters"

    def size(self, value: str) -> int:
        return len(value.encode("utf-8")) if self.in_octets else len(value)


# Field -> tightest limit. Smaregi's create documents customerCode up to 20 printable ASCII (ours is
# generated: 16 digits), lastName/firstName up to 85, postCode up to 10, address up to 85 and
# phoneNumber up to 20 ASCII characters. Shopify's Admin schema (CustomerInput, MailingAddressInput)
# documents no length for any of these fields, and no HubSpot limit for these contact properties is
# documented where we looked: neither adds a limit here, and none is made up. Whether Smaregi counts
# characters as code points is not documented either; we count code points after NFKC, which is what
# we send.
FIELD_LIMITS: Mapping[str, FieldLimit] = {
    # RFC 5321 (4.5.3.1.3): a path is at most 256 octets including its angle brackets.
    "email": FieldLimit(254, "SMTP (RFC 5321 path length)", in_octets=True),
    "last_name": FieldLimit(85, "Smaregi lastName"),
    "first_name": FieldLimit(85, "Smaregi firstName"),
    # Smaregi documents lastKana/firstKana as katakana without a length we could confirm; 85 is the
    # size of our own column (the same as the names).
    "last_name_kana": FieldLimit(85, "Membersync (registrations.last_name_kana)"),
    "first_name_kana": FieldLimit(85, "Membersync (registrations.first_name_kana)"),
    # Checked on what is typed too, so the form and the API say the same; what we send is E.164
    # (ASCII, at most 16 characters), which Shopify also asks for.
    "phone": FieldLimit(20, "Smaregi phoneNumber"),
    # The format (123-4567) is tighter still; this is the vendor's ceiling.
    "postal_code": FieldLimit(10, "Smaregi postCode"),
    # Our column is 255 wide (older rows may be longer); Smaregi takes 85.
    "address": FieldLimit(85, "Smaregi address"),
}

OLDEST_BIRTH_DATE = date(1900, 1, 1)
GENDERS = ("female", "male", "unspecified")
LOCALES = ("ja", "en")

# Full-width katakana (U+30A0-30FF: with the prolonged sound mark and middle dot) and spaces; the
# Ainu small-kana extension is left out because Smaregi does not take it.
_KATAKANA = re.compile(r"[\u30A0-\u30FF \u3000]+")
_POSTAL_CODE = re.compile(r"^([0-9]{3})-?([0-9]{4})$")
# RFC 5322 dot-atom of ASCII atext: no quoted string, no dot first, last or twice in a row.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
# RFC 5321 4.5.3.1.1: the part before the @ is at most 64 octets.
LOCAL_PART_MAX = 64
# Letter-digit-hyphen labels of at most 63, at least two of them: Shopify refuses addresses without a
# dotted domain name (a@localhost, ab@[127.0.0.1]). An internationalised domain is typed as xn--.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")

NOT_AN_EMAIL = "Not a valid email address."
EMAIL_LOCAL_PART = (
    "Before the @, use only ASCII letters, digits and symbols such as . _ + - "
    "(no quotes or spaces; a dot neither first, last nor doubled)."
)
EMAIL_LOCAL_PART_LENGTH = f"Must be at most {LOCAL_PART_MAX} characters before the @."
EMAIL_DOMAIN = (
    "After the @, use a domain name of ASCII letters, digits, hyphens and dots "
    "(an internationalised domain in its xn-- form)."
)
UNSAFE_FIELD_NAME = "A field name holds characters that are not allowed."


class AtMost(validate.Validator):
    """The field's limit from FIELD_LIMITS; the message names the limit (the 422 names the field)."""

    def __init__(self, field_name: str) -> None:
        self.limit = FIELD_LIMITS[field_name]

    def __call__(self, value: str) -> str:
        if self.limit.size(value) > self.limit.max_length:
            raise ValidationError(f"Must be at most {self.limit.max_length} {self.limit.unit}.")
        return value


def limited(field_name: str) -> dict[str, Any]:
    """OpenAPI metadata of a limited field: maxLength and the system that imposes it."""
    limit = FIELD_LIMITS[field_name]
    return {"maxLength": limit.max_length, "x-limit-unit": limit.unit, "x-limit-imposed-by": limit.imposed_by}


_NOT_EMPTY = validate.Length(min=1, error="Must not be empty.")


class Text(fields.String):
    """A string that refuses the characters `app.text` names, with the reason, on the field.

    The schema's pre-load normalises only text that passes this check and leaves the rest as sent,
    so the refusal here sees what the client sent (trimming would drop a trailing U+0085 unseen).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(text)
        if problem is not None:
            raise ValidationError(problem)
        return text


def _clean_text(value: str) -> str:
    """NFKC-normalise and trim a string (half-width katakana become full-width)."""
    return unicodedata.normalize("NFKC", value).strip()


def _email_address(value: str) -> None:
    """An address we can store, send and put in a mail header, checked once it is canonical.

    One message at a time: the length first (lower-casing can lengthen an address), then the part
    before the @ (an unquoted ASCII dot-atom), then the domain.
    """
    AtMost("email")(value)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError(NOT_AN_EMAIL)
    if not _LOCAL_PART.fullmatch(local):
        raise ValidationError(EMAIL_LOCAL_PART)
    if len(local) > LOCAL_PART_MAX:
        raise ValidationError(EMAIL_LOCAL_PART_LENGTH)
    if not _DOMAIN.fullmatch(domain):
        raise ValidationError(EMAIL_DOMAIN)


def _katakana(value: str) -> None:
    if not _KATAKANA.fullmatch(value):
        raise ValidationError("Must be written in katakana (カタカナ).")


def _name(field_name: str, *, required: bool) -> fields.String:
    return Text(
        required=required,
        allow_none=not required,
        validate=[_NOT_EMPTY, AtMost(field_name)],
        metadata=limited(field_name),
    )


def _kana(field_name: str) -> fields.String:
    return Text(
        allow_none=True,
        validate=[_NOT_EMPTY, AtMost(field_name), _katakana],
        metadata=limited(field_name),
    )


class RegistrationSchema(Schema):
    """A registration as posted; loads into normalised column values."""

    class Meta:
        unknown = RAISE

    email = Text(
        required=True,
        validate=_email_address,
        metadata={
            "format": "email",
            "description": "Canonical once stored (NFKC, trimmed, lower case); before the @ an unquoted "
            "ASCII dot-atom of at most 64 characters, after it an ASCII domain name",
            **limited("email"),
        },
    )
    first_name = _name("first_name", required=True)
    last_name = _name("last_name", required=True)
    first_name_kana = _kana("first_name_kana")
    last_name_kana = _kana("last_name_kana")
    phone = Text(
        allow_none=True,
        validate=AtMost("phone"),
        metadata={"description": "Any format; stored as E.164 (JP default)", **limited("phone")},
    )
    # ISO 8601 (YYYY-MM-DD): the default format, which the OpenAPI document can state as `date`
    # (a strptime format would be published as `format: null`, an invalid document).
    birth_date = fields.Date(allow_none=True)
    postal_code = Text(
        allow_none=True,
        validate=AtMost("postal_code"),
        metadata={"description": "Japanese postal code, 123-4567", **limited("postal_code")},
    )
    address = Text(
        allow_none=True,
        validate=[_NOT_EMPTY, AtMost("address")],
        metadata=limited("address"),
    )
    gender = Text(allow_none=True, validate=validate.OneOf(GENDERS))
    accepts_marketing = fields.Boolean(load_default=False)
    locale = Text(load_default="ja", validate=validate.OneOf(LOCALES))

    @pre_load
    def _normalise_text(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.", field_name="_schema")
        if any(not isinstance(key, str) or text_problem(key) is not None for key in data):
            # Not echoed back as an "unknown field": the name itself is what must not travel.
            raise ValidationError(UNSAFE_FIELD_NAME, field_name="_schema")
        # An empty optional field in a form means "not given", not "invalid".
        optional = set(self.fields) - {"email", "first_name", "last_name"}
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str) and text_problem(value) is None:
                # The canonical address before the checks: lower-casing can lengthen a non-ASCII
                # address, and the limit must hold for what is stored and sent. Text that fails
                # app.text's check stays as sent, for its field to refuse.
                value = canonical_email(value) if key == "email" else _clean_text(value)
                if key in optional and value == "":
                    value = None
            cleaned[key] = value
        return cleaned

    @validates("phone")
    def _check_phone(self, value: str | None, **_kwargs: Any) -> None:
        if value is not None:
            _parse_phone(value)

    @validates("birth_date")
    def _check_birth_date(self, value: date | None, **_kwargs: Any) -> None:
        if value is None:
            return
        if value >= date.today():
            raise ValidationError("Must be in the past.")
        if value < OLDEST_BIRTH_DATE:
            raise ValidationError(f"Must be on or after {OLDEST_BIRTH_DATE.isoformat()}.")

    @validates("postal_code")
    def _check_postal_code(self, value: str | None, **_kwargs: Any) -> None:
        if value is not None and not _POSTAL_CODE.match(value):
            raise ValidationError("Must be a Japanese postal code such as 150-0001.")

    @post_load
    def _to_columns(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        # data["email"] is canonical already (pre-load), the form every system and lock uses.
        if data.get("phone") is not None:
            data["phone"] = phonenumbers.format_number(
                _parse_phone(data["phone"]), phonenumbers.PhoneNumberFormat.E164
            )
        if data.get("postal_code") is not None:
            match = _POSTAL_CODE.match(data["postal_code"])
            assert match is not None  # checked by _check_postal_code
            data["postal_code"] = f"{match.group(1)}-{match.group(2)}"
        return data


def _parse_phone(value: str) -> phonenumbers.PhoneNumber:
    """Parse with Japan as the default region; a number that is not valid is an error."""
    try:
        number = phonenumbers.parse(value, "JP")
    except phonenumbers.NumberParseException:
        raise ValidationError("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("Not a valid phone number.")
    # E.164 is ASCII and at most 16 characters, so this holds for every valid number; kept so the
    # table stays the one rule for what Smaregi receives.
    AtMost("phone")(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return number


# Built once: a schema's fields are bound when it is made, and loading keeps no state on the schema
# (no context, no nested schemas), so every request and thread can share it.
_REGISTRATION_SCHEMA = RegistrationSchema()


def load_registration(payload: Any) -> dict[str, Any]:
    """Validate and normalise `payload`; raises marshmallow.ValidationError with per-field messages."""
    result: dict[str, Any] = _REGISTRATION_SCHEMA.load(payload)
    return result


class AcceptedSchema(Schema):
    """The 202 answer to a registration."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = fields.String(required=True)


class StepStatusSchema(Schema):
    """One system's step as the public status shows it: its state only (vendor ids, attempts,
    errors and notes are for ops: `registrations.status.public_status_document` says why)."""

    state = fields.String(required=True)


class RegistrationStatusSchema(Schema):
    """A registration's status, with no personal data (the body of `public_status_document`)."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    steps = fields.Dict(keys=fields.String(), values=fields.Nested(StepStatusSchema), required=True)


class ErrorsSchema(Schema):
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
