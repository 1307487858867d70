"""Properties of the validators every text field goes through (app/text.py, app/schemas.py and the
console's inputs): a forbidden character anywhere is refused naming the field and the reason, what
is accepted holds none, an accepted address is canonical and fits SMTP, and no console value can be
turned into an exception."""

from __future__ import annotations

import string
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.ops.blueprint import console_path
from app.ops.inputs import MAX_RECORD_NUMBER, record_number, shown_as_typed
from app.schemas import FIELD_LIMITS, LOCAL_PART_MAX, RegistrationSchema, Text, load_registration
from app.text import CONTROL, FORMAT, GARBLED, SEPARATOR, SURROGATE, character_problem, text_problem
from config.email_address import canonical_email

VALID = {"email": "hanako@example.com", "first_name": "花子", "last_name": "山田"}

# The characters the issue names, and each one's reason (as pairs: ruff takes surrogate keys for repeats).
NAMED = dict(
    [
        ("\ud800", SURROGATE),
        ("\udfff", SURROGATE),
        ("\x00", CONTROL),
        ("\t", CONTROL),
        ("\n", CONTROL),
        ("\x1f", CONTROL),
        ("\x7f", CONTROL),
        ("\x85", CONTROL),
        ("\x9b", CONTROL),
        ("\u202a", FORMAT),
        ("\u202e", FORMAT),
        ("\u2066", FORMAT),
        ("\u2069", FORMAT),
        ("\u200b", FORMAT),
        ("\u200d", FORMAT),
        ("\u2060", FORMAT),
        ("\ufeff", FORMAT),
        ("\U000e0001", FORMAT),
        ("\u2028", SEPARATOR),
        ("\u2029", SEPARATOR),
        ("\ufffd", GARBLED),
        ("\ufdd0", GARBLED),
        ("\uffff", GARBLED),
        ("\U0010fffe", GARBLED),
    ]
)
REFUSED_CATEGORIES = ("Cs", "Cc", "Cf", "Zl", "Zp")
FORBIDDEN = st.sampled_from(sorted(NAMED)) | st.characters(categories=REFUSED_CATEGORIES)
ALLOWED = st.characters(exclude_categories=REFUSED_CATEGORIES).filter(
    lambda ch: character_problem(ch) is None
)
TEXT_FIELDS = sorted(name for name, field in RegistrationSchema().fields.items() if isinstance(field, Text))


def refusal(payload: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        load_registration(payload)
    messages = raised.value.messages
    assert isinstance(messages, dict)
    return {str(field): list(value) for field, value in messages.items()}


def test_every_text_field_of_the_registration_is_checked() -> None:
    assert set(TEXT_FIELDS) == set(FIELD_LIMITS) | {"gender", "locale"}


@pytest.mark.parametrize(("character", "reason"), list(NAMED.items()), ids=[ascii(ch) for ch in NAMED])
def test_each_named_character_is_refused_with_its_reason(character: str, reason: str) -> None:
    assert character_problem(character) == reason
    assert text_problem(f"Hanako{character}") == reason


@hsettings(max_examples=400)
@given(st.sampled_from(TEXT_FIELDS), st.text(ALLOWED, max_size=12), FORBIDDEN, st.text(ALLOWED, max_size=12))
@example("first_name", "Hanako", "\x85", "")  # trailing: whitespace to str.strip, refused all the same
@example("address", "", "\u2028", "")  # alone in an optional field: not "not given"
@example("email", "hanako", "\u200b", "@example.com")
def test_a_forbidden_character_anywhere_is_refused_naming_the_field(
    field: str, before: str, forbidden: str, after: str
) -> None:
    value = before + forbidden + after
    messages = refusal({**VALID, field: value})
    assert field in messages
    assert messages[field] == [text_problem(value)]


@given(st.text(ALLOWED, max_size=40))
def test_text_without_forbidden_characters_passes_the_character_check(value: str) -> None:
    assert text_problem(value) is None


@hsettings(max_examples=300)
@given(st.dictionaries(st.sampled_from(TEXT_FIELDS), st.text(max_size=30), max_size=6))
def test_nothing_accepted_holds_a_forbidden_character(fields: dict[str, str]) -> None:
    try:
        loaded = load_registration({**VALID, **fields})
    except ValidationError:
        return
    for name, value in loaded.items():
        if isinstance(value, str):
            assert text_problem(value) is None, name


def test_a_forbidden_character_in_a_field_name_is_refused_without_echoing_it() -> None:
    messages = refusal({**VALID, "\ud800": "x"})
    assert list(messages) == ["_schema"]
    assert "\ud800" not in str(messages)


# --- e-mail addresses -----------------------------------------------------------------------------

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LOCAL = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=4).map(".".join)
LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
DOMAIN = st.lists(LABEL, min_size=2, max_size=4).map(".".join)
GOOD_ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)


def _full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


# Good addresses as people type them (capitals, full width, spaces around), and anything at all.
TYPED_ADDRESS = st.one_of(
    GOOD_ADDRESS,
    GOOD_ADDRESS.map(str.upper),
    GOOD_ADDRESS.map(_full_width),
    GOOD_ADDRESS.map(lambda address: f" \u3000{address} "),
    st.text(ATEXT + '@."\\ \u0130\u00e9', max_size=80),
    st.text(max_size=80),
)


@hsettings(max_examples=600)
@given(TYPED_ADDRESS)
@example("İ" * 240 + "@example.com")
@example('"a..b"@example.com')
@example("a..b@example.com")
@example(".a@example.com")
@example("a.@example.com")
@example("a" * 64 + "@example.com")
def test_an_accepted_address_is_canonical_ascii_and_fits_smtp(typed: str) -> None:
    try:
        email = load_registration({**VALID, "email": typed})["email"]
    except ValidationError as error:
        assert isinstance(error.messages, dict) and "email" in error.messages
        return
    assert email == canonical_email(email) == canonical_email(typed)
    assert email.isascii() and len(email.encode()) <= FIELD_LIMITS["email"].max_length
    local, _, _ = email.rpartition("@")
    assert '"' not in local and ".." not in local and not local.startswith(".") and not local.endswith(".")
    assert len(local) <= LOCAL_PART_MAX


@given(GOOD_ADDRESS)
def test_every_dot_atom_address_with_a_dotted_domain_is_accepted(address: str) -> None:
    assume(len(address.rpartition("@")[0]) <= LOCAL_PART_MAX)
    assert load_registration({**VALID, "email": address})["email"] == address.lower()


@pytest.mark.parametrize(
    "address",
    ['"a..b"@example.com', '"hanako"@example.com', "a..b@example.com", ".a@example.com", "a.@example.com"],
)
def test_a_quoted_or_badly_dotted_local_part_is_refused(address: str) -> None:
    assert refusal({**VALID, "email": address})["email"][0].startswith("Before the @, use only ASCII")


def test_a_non_ascii_local_part_or_domain_is_refused_with_its_reason() -> None:
    assert refusal({**VALID, "email": "はなこ@example.com"})["email"][0].startswith("Before the @")
    assert refusal({**VALID, "email": "hanako@例え.jp"})["email"][0].startswith("After the @")
    # Typed in its ASCII form, an internationalised domain is fine.
    assert load_registration({**VALID, "email": "hanako@xn--r8jz45g.jp"})["email"] == "hanako@xn--r8jz45g.jp"


def test_the_length_is_checked_on_the_canonical_address() -> None:
    typed = "İ" * 240 + "@example.com"  # 252 characters typed, 732 bytes once lower-cased
    assert refusal({**VALID, "email": typed}) == {"email": ["Must be at most 254 bytes."]}


# --- the console's inputs -------------------------------------------------------------------------


@given(st.text(max_size=40))
@example("²")
@example("9" * 30)
@example("0")
@example(str(MAX_RECORD_NUMBER + 1))
def test_a_record_number_is_an_integer_the_database_holds_or_none(raw: str) -> None:
    number = record_number(raw)
    assert number is None or 0 < number <= MAX_RECORD_NUMBER
    if number is not None:
        assert raw.strip() == str(number) or raw.strip().lstrip("0") == str(number)


@given(st.text(max_size=40), FORBIDDEN | st.sampled_from(" \r\n\\"), st.text(max_size=10))
@example("/ops/", "\r", "\nSet-Cookie: x=1")
def test_a_next_target_with_a_control_space_or_backslash_is_never_followed(
    before: str, bad: str, after: str
) -> None:
    assert console_path(f"/ops/{before}{bad}{after}") is None


@given(st.text(max_size=40))
def test_a_followed_target_stays_in_the_console(target: str) -> None:
    kept = console_path(target)
    assert kept is None or (kept == target and (kept == "/ops" or kept.startswith("/ops/")))


@given(st.text(max_size=30))
def test_what_the_console_keeps_of_a_strangers_text_is_visible(typed: str) -> None:
    shown = shown_as_typed(typed)
    assert text_problem(shown) is None
    if text_problem(typed) is None:
        assert shown == typed


def test_a_bidi_override_in_a_kept_username_shows_as_its_code_point() -> None:
    assert shown_as_typed("ops\u202eadmin") == "ops\\u202eadmin"
    assert unicodedata.category(shown_as_typed("\x85")[0]) == "Po"
