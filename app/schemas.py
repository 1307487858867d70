"""Validation and normalisation of a registration, shared by the JSON API and the HTML form.

Every length limit is the tightest rule of the systems the field reaches (Shopify, Smaregi, HubSpot,
SMTP), kept in one table (`FIELD_LIMITS`) that the schema, the form's maxlength attributes and the
OpenAPI document all read, so an accepted registration never fails later on a length rule.
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
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Shopify refuses addresses without a dotted domain name (a@localhost, ab@[127.0.0.1]).
_DELIVERABLE_EMAIL = re.compile(
    r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


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


def _clean_text(value: Any) -> Any:
    """NFKC-normalise and trim a string (half-width katakana become full-width)."""
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip()
    return value


def _no_control_characters(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("Must not contain control characters.")


_EMAIL_SYNTAX = validate.Email()


def _deliverable_email(value: str) -> None:
    """RFC syntax and a dotted domain name, reported as one message."""
    try:
        _EMAIL_SYNTAX(value.strip())
    except ValidationError:
        raise ValidationError("Not a valid email address.") from None
    if not _DELIVERABLE_EMAIL.match(value.strip()):
        raise ValidationError("Not a valid email address.")


def _katakana(value: str) -> None:
    if not _KATAKANA.fullmatch(value):
        raise ValidationError("Must be written in katakana (カタカナ).")


def _name(field_name: str, *, required: bool) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=[_NOT_EMPTY, AtMost(field_name), _no_control_characters],
        metadata=limited(field_name),
    )


def _kana(field_name: str) -> fields.String:
    return fields.String(
        allow_none=True,
        validate=[_NOT_EMPTY, AtMost(field_name), _katakana, _no_control_characters],
        metadata=limited(field_name),
    )


class RegistrationSchema(Schema):
    """A registration as posted; loads into normalised column values."""

    class Meta:
        unknown = RAISE

    email = fields.String(
        required=True,
        validate=[AtMost("email"), _deliverable_email],
        metadata={"format": "email", **limited("email")},
    )
    first_name = _name("first_name", required=True)
    last_name = _name("last_name", required=True)
    first_name_kana = _kana("first_name_kana")
    last_name_kana = _kana("last_name_kana")
    phone = fields.String(
        allow_none=True,
        validate=AtMost("phone"),
        metadata={"description": "Any format; stored as E.164 (JP default)", **limited("phone")},
    )
    birth_date = fields.Date(allow_none=True, format="%Y-%m-%d")
    postal_code = fields.String(
        allow_none=True,
        validate=AtMost("postal_code"),
        metadata={"description": "Japanese postal code, 123-4567", **limited("postal_code")},
    )
    address = fields.String(
        allow_none=True,
        validate=[_NOT_EMPTY, AtMost("address"), _no_control_characters],
        metadata=limited("address"),
    )
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    accepts_marketing = fields.Boolean(load_default=False)
    locale = fields.String(load_default="ja", validate=validate.OneOf(LOCALES))

    @pre_load
    def _normalise_text(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.", field_name="_schema")
        cleaned = {key: _clean_text(value) for key, value in data.items()}
        if isinstance(cleaned.get("email"), str):
            # Lower case before the checks: lowering can lengthen a non-ASCII address, and the
            # limit must hold for what is stored and sent.
            cleaned["email"] = cleaned["email"].lower()
        # An empty optional field in a form means "not given", not "invalid".
        optional = set(self.fields) - {"email", "first_name", "last_name"}
        return {key: (None if key in optional and value == "" else value) for key, value in cleaned.items()}

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
        data["email"] = data["email"].strip().lower()
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


def load_registration(payload: Any) -> dict[str, Any]:
    """Validate and normalise `payload`; raises marshmallow.ValidationError with per-field messages."""
    result: dict[str, Any] = RegistrationSchema().load(payload)
    return result


class AcceptedSchema(Schema):
    """The 202 answer to a registration."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = fields.String(required=True)


class StepStatusSchema(Schema):
    state = fields.String(required=True)
    external_id = fields.String(allow_none=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    # Why a success took another path (e.g. created without a phone another customer holds).
    note = fields.String(allow_none=True)


class RegistrationStatusSchema(Schema):
    """A registration's status, with no personal data."""

    id = fields.String(required=True)
    status = fields.String(required=True)
    steps = fields.Dict(keys=fields.String(), values=fields.Nested(StepStatusSchema))


class ErrorsSchema(Schema):
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
