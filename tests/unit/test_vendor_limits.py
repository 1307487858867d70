"""Whatever body the intake accepts fits every vendor's limits as they receive it, and our columns.

The limits below are written out again from the vendors' rules, on purpose apart from
`app.schemas.FIELD_LIMITS`: the test checks what each system is sent (`registrations.profiles`),
after normalisation, so a limit loosened or a normalisation that lengthens a value is caught.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import String

from app.schemas import FIELD_LIMITS, load_registration
from connectors.smaregi import member_code
from registrations.models import Registration
from registrations.profiles import hubspot_properties, shopify_customer, smaregi_member
from registrations.steps.base import Registrant

# Smaregi's member create (keyword names of SmaregiClient.create_member): characters at most.
SMAREGI_LIMITS = {"last_name": 85, "first_name": 85, "post_code": 10, "address": 85, "phone_number": 20}
SMAREGI_ASCII = {"phone_number"}
SMAREGI_CODE = re.compile(r"[\x21-\x7e]{1,20}")  # customerCode: up to 20 printable ASCII
SMTP_PATH_OCTETS = 254  # RFC 5321: 256 octets with the angle brackets
E164 = re.compile(r"\+[1-9][0-9]{1,14}")  # what Shopify asks for a phone

# Characters that change under NFKC or lower-casing: some grow ("㈱" → "(株)", "ﷺ" is 18 characters,
# "İ".lower() is two), some shrink or change width (half-width katakana, full-width digits).
TRICKY = "㈱㌀ﷺİǅｱｶﾞ１２３－　ー・"
ALPHABET = st.sampled_from("山田花子東京都渋谷区アイウエオカタナabcxyz- 0123456789" + TRICKY) | st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc")
)
KANA = st.sampled_from("アイウエオヤマダハナコーｱｲｳ　")


def near(alphabet: st.SearchStrategy[str], limit: int) -> st.SearchStrategy[str]:
    """Short values, and values within a few characters of `limit` either side."""
    return st.text(alphabet, min_size=1, max_size=8) | st.integers(max(1, limit - 3), limit + 3).flatmap(
        lambda size: st.text(alphabet, min_size=size, max_size=size)
    )


def text(limit: int) -> st.SearchStrategy[str]:
    return near(ALPHABET, limit)


def kana(limit: int) -> st.SearchStrategy[str]:
    return near(KANA, limit)


LOCAL_PART = st.sampled_from("abcXYZ09._+-") | st.sampled_from("é花")  # é and 花 take 2 and 3 octets


def _address(local: str, total: int) -> str:
    """`local` at a domain of 63-character labels that makes the address `total` characters long."""
    domain_size = max(total - len(local) - 1 - len(".com"), 1)
    labels = [("d" * domain_size)[start : start + 63] for start in range(0, domain_size, 64)]
    return f"{local}@{'.'.join(label for label in labels if label)}.com"


EMAILS = st.text(LOCAL_PART, min_size=1, max_size=8).map(lambda local: f"{local}@example.com") | st.builds(
    _address, st.text(LOCAL_PART, min_size=4, max_size=64), st.integers(248, 256)
)
PHONES = st.builds(
    lambda number, gap: gap.join(number),
    st.sampled_from([["090", "1234", "5678"], ["03", "1234", "5678"], ["+81", "90", "1234", "5678"]]),
    st.sampled_from(["", "-", " ", " - ", "  -  ", "－"]),
)
BODIES = st.fixed_dictionaries(
    {"email": EMAILS, "first_name": text(85), "last_name": text(85)},
    optional={
        "first_name_kana": kana(85),
        "last_name_kana": kana(85),
        "phone": PHONES,
        "postal_code": st.from_regex(r"[0-9０-９]{3}[-－]?[0-9]{4}", fullmatch=True) | text(10),
        "address": text(85),
    },
)


def column_lengths() -> dict[str, int]:
    return {
        column.name: column.type.length
        for column in Registration.__table__.columns
        if isinstance(column.type, String) and column.type.length
    }


def assert_fits_every_vendor(accepted: dict[str, Any]) -> None:
    registrant = Registrant(**accepted)
    smaregi = smaregi_member(registrant)
    for name, limit in SMAREGI_LIMITS.items():
        value = smaregi[name]
        if value is not None:
            assert len(value) <= limit, (name, len(value))
            if name in SMAREGI_ASCII:
                assert value.isascii() and value.isprintable(), name
    assert SMAREGI_CODE.fullmatch(member_code(registrant.email, key=b"any key"))
    assert len(registrant.email.encode("utf-8")) <= SMTP_PATH_OCTETS
    customer = shopify_customer(registrant)
    assert customer["phone"] is None or E164.fullmatch(customer["phone"])
    assert all(isinstance(value, str) for value in hubspot_properties(registrant).values())
    lengths = column_lengths()
    for name, value in accepted.items():
        if isinstance(value, str) and name in lengths:
            assert len(value) <= lengths[name], (name, len(value))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_any_accepted_body_fits_every_vendor(body: dict[str, Any]) -> None:
    try:
        accepted = load_registration(body)
    except ValidationError as error:
        event(f"refused: {sorted(error.messages_dict)}")
        return
    event("accepted")
    assert_fits_every_vendor(accepted)


def test_the_property_would_catch_a_loosened_limit() -> None:
    """The check is independent of the table: an 86-character address is refused by it."""
    accepted = {"email": "a@example.com", "first_name": "a", "last_name": "b", "address": "東" * 86}
    try:
        assert_fits_every_vendor(accepted)
    except AssertionError:
        return
    raise AssertionError("an address over Smaregi's 85 characters passed the vendor check")


def test_every_limit_in_the_table_is_at_most_its_column() -> None:
    lengths = column_lengths()
    for field, limit in FIELD_LIMITS.items():
        assert limit.max_length <= lengths[field], field
