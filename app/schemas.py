"""Validation and normalisation of a registration, shared by the JSON API and the HTML form.

Limits are the tightest of the three downstream systems (Smaregi: names and kana up to 85 chars,
phone up to 20; Shopify/HubSpot: email up to 254), so an accepted registration never fails later on
a length or format rule.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates

NAME_MAX = 85
EMAIL_MAX = 254
ADDRESS_MAX = 255
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


def _name(*, required: bool) -> fields.String:
    return fields.String(
        required=required,
        allow_none=not required,
        validate=[validate.Length(min=1, max=NAME_MAX), _no_control_characters],
    )


def _kana() -> fields.String:
    return fields.String(
        allow_none=True, validate=[validate.Length(min=1, max=NAME_MAX), _katakana, _no_control_characters]
    )


class RegistrationSchema(Schema):
    """A registration as posted; loads into normalised column values."""

    class Meta:
        unknown = RAISE

    email = fields.String(
        required=True,
        validate=[validate.Length(max=EMAIL_MAX), _deliverable_email],
        metadata={"format": "email"},
    )
    first_name = _name(required=True)
    last_name = _name(required=True)
    first_name_kana = _kana()
    last_name_kana = _kana()
    phone = fields.String(
        allow_none=True, metadata={"description": "Any format; stored as E.164 (JP default)"}
    )
    birth_date = fields.Date(allow_none=True, format="%Y-%m-%d")
    postal_code = fields.String(allow_none=True, metadata={"description": "Japanese postal code, 123-4567"})
    address = fields.String(
        allow_none=True, validate=[validate.Length(min=1, max=ADDRESS_MAX), _no_control_characters]
    )
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    accepts_marketing = fields.Boolean(load_default=False)
    locale = fields.String(load_default="ja", validate=validate.OneOf(LOCALES))

    @pre_load
    def _normalise_text(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.", field_name="_schema")
        cleaned = {key: _clean_text(value) for key, value in data.items()}
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
    if len(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)) > 20:
        raise ValidationError("Too long for the shop's systems (20 characters).")
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
