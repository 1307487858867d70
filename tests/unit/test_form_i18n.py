"""The form's language choice and the Japanese for every message RegistrationSchema can give."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from app.i18n import HINTS, LABELS, LANGUAGES, TEXT, choose_language, localise_errors, localise_message
from app.schemas import RegistrationSchema, load_registration

VALID = {"email": "a@example.com", "first_name": "Hanako", "last_name": "Yamada"}

# One payload per rule of the schema, so a message added or reworded there shows up here.
INVALID_PAYLOADS: list[dict[str, Any]] = [
    {},
    {**VALID, "first_name": None},
    {**VALID, "first_name": 12},
    {**VALID, "first_name": "x" * 86},
    {**VALID, "email": "nope"},
    {**VALID, "email": "a" * 250 + "@example.com"},
    {**VALID, "address": "line\x01two"},
    {**VALID, "email": '"a..b"@example.com'},
    {**VALID, "email": "a" * 65 + "@example.com"},
    {**VALID, "email": "a@exa_mple.com"},
    {**VALID, "first_name": "\ud800"},
    {**VALID, "first_name": "\u202eevil"},
    {**VALID, "address": "one\u2028two"},
    {**VALID, "address": "garbled\ufffd"},
    {**VALID, "last_name_kana": "やまだ"},
    {**VALID, "birth_date": "1990-13-01"},
    {**VALID, "birth_date": "2999-01-01"},
    {**VALID, "birth_date": "1899-12-31"},
    {**VALID, "postal_code": "15-0001"},
    {**VALID, "phone": "hello"},
    {**VALID, "phone": "0000"},
    {**VALID, "gender": "other"},
    {**VALID, "accepts_marketing": "perhaps"},
    {**VALID, "locale": "fr"},
]


def schema_messages(payload: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        load_registration(payload)
    messages = raised.value.messages
    assert isinstance(messages, dict)
    return {field: list(value) for field, value in messages.items()}


@pytest.mark.parametrize("payload", INVALID_PAYLOADS)
def test_every_schema_message_has_japanese(payload: dict[str, Any]) -> None:
    for field, messages in schema_messages(payload).items():
        for message in messages:
            japanese = localise_message(field, message, "ja")
            assert japanese != message, (field, message)
            assert not japanese.isascii(), (field, message)


def test_required_names_the_field_in_both_languages() -> None:
    localised = localise_errors(schema_messages({}), "ja")
    assert localised["email"] == ["メールアドレスを入力してください。"]
    english = localise_errors(schema_messages({}), "en")
    assert english["last_name"] == ["Enter your family name."]


def test_parameters_of_a_message_are_kept() -> None:
    assert (
        localise_message("first_name", "Longer than maximum length 85.", "ja")
        == "85文字以内で入力してください。"
    )
    assert localise_message("birth_date", "Must be on or after 1900-01-01.", "en") == (
        "Enter a date on or after 1900-01-01."
    )


def test_unknown_message_falls_back_to_its_english_text() -> None:
    assert localise_message("email", "Something new.", "ja") == "Something new."
    assert localise_errors(["Expected a JSON object."], "ja") == {"_schema": ["Expected a JSON object."]}


@pytest.mark.parametrize(
    ("requested", "accepted", "chosen"),
    [
        ("en", [("ja", 1.0)], "en"),
        ("ja", [("en", 1.0)], "ja"),
        (None, [("en-GB", 1.0), ("ja", 0.5)], "en"),
        (None, [("ja", 0.4), ("en", 0.9)], "en"),
        (None, [("fr", 1.0)], "ja"),
        (None, [("en", 0.0)], "ja"),
        ("xx", [], "ja"),
        (None, [], "ja"),
    ],
)
def test_choose_language(requested: str | None, accepted: list[tuple[str, float]], chosen: str) -> None:
    assert choose_language(requested, accepted) == chosen


def test_both_languages_have_the_same_words() -> None:
    for table in (TEXT, LABELS, HINTS):
        assert set(table) == set(LANGUAGES)
        assert set(table["ja"]) == set(table["en"])
    form_fields = set(RegistrationSchema().fields) - {"locale"}
    assert set(LABELS["ja"]) == form_fields
