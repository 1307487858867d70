"""hypothesis properties of the intake's validators and normalisers, with no services.

For any input: the normal form is a fixed point (normalising it again changes nothing), the only
exception that escapes is marshmallow's ValidationError, and what is accepted holds every limit of
FIELD_LIMITS, every character rule of app/text.py and the field's own format. The hostile corpus
(tests/integration/test_hostile_input.py) pins the known-bad inputs; these look for the unknown ones.
"""

from __future__ import annotations

import io
import re
import unicodedata
from datetime import date
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.request_body import read_at_most
from app.schemas import FIELD_LIMITS, GENDERS, LOCALES, RegistrationSchema, load_registration
from app.text import MESSAGES, character_problem, text_problem
from config.email_address import canonical_email
from tests.fuzz.budget import PROPERTY_EXAMPLES

PROPERTY = settings(
    max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Any code point, surrogates included (a JSON body can carry "\ud800"), weighted towards the
# characters the rules are about: controls, format and separator characters, combining marks,
# full- and half-width forms, katakana, the letters whose case mapping grows.
TRICKY = st.sampled_from(
    "\x00\x1f\x7f\x85\x9b\xad\u0130\u0307\u0301\u00df\u200b\u200d\u202e\u2028\u2029\u2060\u3000"
    "\ufeff\ufffd\uffff\ud800\udfff\ufdd0\uff21\uff41\uff10\uff71\uff9e\uff9f\u30a2\u30fc\u30ff"
    "\u1e9e\u212a\ufb00\u2126\u00a0\t\n\r @.-+_"
)
CHARACTERS = st.one_of(TRICKY, st.characters(codec=None), st.characters(max_codepoint=0x7F))
TEXT = st.text(CHARACTERS, max_size=40)
LONG_TEXT = st.text(CHARACTERS, min_size=60, max_size=300)

KATAKANA = st.text(st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA), min_size=1, max_size=20)
HALF_WIDTH_KANA = st.text(st.characters(min_codepoint=0xFF71, max_codepoint=0xFF9D), min_size=1, max_size=20)
DIGITS = st.sampled_from(["0123456789", "０１２３４５６７８９"])  # ASCII, full-width


@st.composite
def postal_codes(draw: st.DrawFn) -> str:
    digits = draw(DIGITS)
    code = "".join(draw(st.sampled_from(digits)) for _ in range(7))
    hyphen = draw(st.sampled_from(["", "-", "－"]))
    return f"{code[:3]}{hyphen}{code[3:]}"


@st.composite
def addresses(draw: st.DrawFn) -> str:
    local = draw(st.from_regex(r"[A-Za-z0-9_+-]{1,20}(\.[A-Za-z0-9_+-]{1,10}){0,2}", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z0-9]{1,12}(\.[a-z]{2,6}){1,2}", fullmatch=True))
    padding = draw(st.sampled_from(["", " ", "\u3000", "\t"]))
    address = f"{padding}{local}@{domain}{padding}"
    return draw(st.sampled_from([address, address.upper(), unicodedata.normalize("NFKC", address)]))


PHONES = st.one_of(
    st.from_regex(r"0[789]0-?[0-9]{4}-?[0-9]{4}", fullmatch=True),
    st.from_regex(r"\+81 ?[1-9][0-9]{8,9}", fullmatch=True),
    st.from_regex(r"\+[1-9][0-9 ()-]{4,18}", fullmatch=True),
    TEXT,
)

# Values a registration may hold: plausible ones for each field (so acceptance is explored) and
# anything at all (so refusal is).
ANY_JSON = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT, st.lists(TEXT, max_size=2))
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "email": st.one_of(addresses(), TEXT, LONG_TEXT),
    "first_name": st.one_of(TEXT, LONG_TEXT),
    "last_name": st.one_of(TEXT, LONG_TEXT),
    "first_name_kana": st.one_of(KATAKANA, HALF_WIDTH_KANA, TEXT),
    "last_name_kana": st.one_of(KATAKANA, HALF_WIDTH_KANA, TEXT),
    "phone": PHONES,
    "birth_date": st.one_of(st.dates().map(date.isoformat), TEXT),
    "postal_code": st.one_of(postal_codes(), TEXT),
    "address": st.one_of(TEXT, LONG_TEXT),
    "gender": st.one_of(st.sampled_from(GENDERS), TEXT),
    "accepts_marketing": st.one_of(st.booleans(), TEXT),
    "locale": st.one_of(st.sampled_from(LOCALES), TEXT),
}
REQUIRED = ("email", "first_name", "last_name")
REGISTRATIONS = st.fixed_dictionaries(
    {name: FIELD_VALUES[name] for name in REQUIRED},
    optional={
        name: st.one_of(values, ANY_JSON) for name, values in FIELD_VALUES.items() if name not in REQUIRED
    },
)
TEXT_COLUMNS = ("email", "first_name", "last_name", "first_name_kana", "last_name_kana", "address")
KATAKANA_ONLY = re.compile(r"[\u30A0-\u30FF \u3000]+")


def as_posted(loaded: dict[str, Any]) -> dict[str, Any]:
    """A loaded registration as a client would post it again (a date as ISO 8601)."""
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in loaded.items()}


# --- app/text.py ---------------------------------------------------------------------------------


@PROPERTY
@given(TEXT)
def test_text_problem_answers_for_any_string_and_agrees_with_each_character(value: str) -> None:
    problem = text_problem(value)  # never raises, surrogates included
    assert problem is None or problem in MESSAGES
    # The ASCII fast path and the per-character rule say the same.
    first = next((reason for reason in map(character_problem, value) if reason is not None), None)
    assert problem == first


# --- config/email_address.py ---------------------------------------------------------------------


@PROPERTY
@given(st.one_of(TEXT, LONG_TEXT, addresses()))
@example("\u0130\u0307")  # lower-casing leaves "i", U+0307, U+0307 in another order than NFKC
@example("ＨＡＮＡＫＯ＠ＥＸＡＭＰＬＥ．ＣＯＭ\u3000")
def test_canonical_email_is_idempotent_and_never_raises(address: str) -> None:
    canonical = canonical_email(address)
    assert canonical_email(canonical) == canonical
    assert canonical == canonical.strip()
    assert unicodedata.is_normalized("NFKC", canonical)


@PROPERTY
@given(addresses())
def test_an_ascii_address_is_only_trimmed_and_lower_cased(address: str) -> None:
    if address.isascii():
        assert canonical_email(address) == address.strip().lower()


# --- app/schemas.py: the whole registration ------------------------------------------------------


@PROPERTY
@given(REGISTRATIONS)
@example({"email": "a@example.com", "first_name": " \u0301", "last_name": "x"})
@example({"email": "a@example.com", "first_name": "x", "last_name": "x", "address": "\ufb03" * 40})
def test_a_registration_loads_or_is_refused_field_by_field_and_loading_is_idempotent(
    payload: dict[str, Any],
) -> None:
    try:
        loaded = load_registration(payload)
    except ValidationError as error:
        # Refused with messages, each under a field that was posted (or the schema as a whole).
        assert isinstance(error.messages, dict) and error.messages
        assert set(error.messages) <= {*payload, *RegistrationSchema().fields, "_schema"}
        return
    for name, limit in FIELD_LIMITS.items():
        value = loaded.get(name)
        if value is not None:
            assert limit.size(value) <= limit.max_length, (name, value)
    for name in TEXT_COLUMNS:
        value = loaded.get(name)
        if value is not None:
            assert value and text_problem(value) is None and value == value.strip(), (name, value)
            assert unicodedata.is_normalized("NFKC", value), (name, value)
    assert loaded["email"] == canonical_email(loaded["email"])
    for name in ("first_name_kana", "last_name_kana"):
        if loaded.get(name) is not None:
            assert KATAKANA_ONLY.fullmatch(loaded[name])
    if loaded.get("postal_code") is not None:
        assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", loaded["postal_code"])
    if loaded.get("phone") is not None:
        assert re.fullmatch(r"\+[1-9][0-9]{1,14}", loaded["phone"])
    # The normal form is a fixed point: posting what was stored stores the same thing.
    assert load_registration(as_posted(loaded)) == loaded


@PROPERTY
@given(
    st.sampled_from(sorted(FIELD_VALUES)), st.one_of(ANY_JSON, st.dictionaries(TEXT, ANY_JSON, max_size=3))
)
def test_any_value_in_any_field_is_accepted_or_refused_by_name(field: str, value: Any) -> None:
    payload = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada", field: value}
    try:
        load_registration(payload)
    except ValidationError as error:
        assert isinstance(error.messages, dict) and set(error.messages) == {field}


@PROPERTY
@given(st.one_of(ANY_JSON, st.dictionaries(TEXT, ANY_JSON, max_size=4)))
def test_any_body_is_a_registration_or_a_validation_error(body: Any) -> None:
    with pytest.raises(ValidationError):
        load_registration(body)  # never a required field among these, so never accepted


# --- the field rules one by one ------------------------------------------------------------------


def load_field(field: str, value: str) -> Any:
    loaded = load_registration(
        {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada", field: value}
    )
    return loaded[field]


@PROPERTY
@given(HALF_WIDTH_KANA, KATAKANA)
def test_half_width_kana_become_full_width_katakana(half: str, full: str) -> None:
    assert load_field("last_name_kana", half) == unicodedata.normalize("NFKC", half)
    assert load_field("first_name_kana", full) == full


@PROPERTY
@given(postal_codes())
def test_a_postal_code_in_any_width_becomes_nnn_nnnn(code: str) -> None:
    ascii_digits = re.sub(r"[^0-9]", "", unicodedata.normalize("NFKC", code))
    assert load_field("postal_code", code) == f"{ascii_digits[:3]}-{ascii_digits[3:]}"


@PROPERTY
@given(PHONES)
def test_a_phone_is_stored_as_e164_that_parses_back_to_itself(phone: str) -> None:
    try:
        stored = load_field("phone", phone)
    except ValidationError:
        return
    if stored is None:  # blank: not given
        assert not unicodedata.normalize("NFKC", phone).strip()
        return
    number = phonenumbers.parse(stored, "JP")
    assert phonenumbers.is_valid_number(number)
    assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == stored
    assert load_field("phone", stored) == stored


# --- app/request_body.py -------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=300_000), st.integers(min_value=0, max_value=200_000))
def test_read_at_most_reads_a_prefix_and_never_past_the_limit(body: bytes, limit: int) -> None:
    stream = io.BytesIO(body)
    read = read_at_most(stream, limit)
    assert read == body[:limit]
    assert stream.tell() == len(read)
