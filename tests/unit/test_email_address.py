"""The one rule for an e-mail address (`config.email_address.canonical_email`): idempotent, the
ASCII addresses the intake accepts keep their bytes (so member numbers never change), full-width
spellings fold, and every place that compares or keys by address uses it."""

from __future__ import annotations

import hashlib
import hmac
import string
import unicodedata

from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.email_address import canonical_email
from connectors.fakes import FakeHubSpot
from connectors.shopify.mapping import same_email
from connectors.smaregi.members import member_code
from registrations.directory import EMAIL_MAX, directory_email

KEY = b"unit-test-member-code-key"
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# What the intake accepts before the @ (RFC 5322 atext) and after it (letters, digits, hyphens, dots).
LOCAL = st.text(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.", min_size=1, max_size=64)
DOMAIN = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,20}(\.[A-Za-z0-9]{1,20}){1,3}", fullmatch=True)


@hsettings(max_examples=3000)
@given(ANY_TEXT)
@example("İ\u0316@example.com")  # lower-casing leaves it un-normalised: the second NFKC mends that
@example("ΑΣ@example.com")  # a final sigma
@example("\u00a8@example.com")  # NFKC turns it into a space and a combining mark
@example("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ\u3000")
def test_canonical_email_is_idempotent(address: str) -> None:
    once = canonical_email(address)
    assert canonical_email(once) == once
    assert unicodedata.is_normalized("NFKC", once)
    assert once == once.strip()


@given(LOCAL, DOMAIN)
def test_an_ascii_address_is_only_trimmed_and_lower_cased(local: str, domain: str) -> None:
    address = f"  {local}@{domain}\t"
    assert canonical_email(address) == address.strip().lower()


@given(LOCAL, DOMAIN, st.integers(min_value=0, max_value=3))
def test_member_numbers_of_canonical_ascii_addresses_do_not_change(
    local: str, domain: str, salt: int
) -> None:
    # The bytes fed to the HMAC before the one rule existed: trimmed and lower-cased.
    address = f"{local}@{domain}".lower()
    before = hmac.new(KEY, f"{address.strip().lower()}\n{salt}".encode(), hashlib.sha256).digest()
    expected = str(int.from_bytes(before[:8], "big") % 10**16).zfill(16)
    assert member_code(address, key=KEY, salt=salt) == expected


def test_full_width_and_upper_case_spellings_are_one_address() -> None:
    assert canonical_email("  Hanako.YAMADA@Example.COM \n") == "hanako.yamada@example.com"
    assert canonical_email("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ") == "hanako@example.com"
    # Lower case, not case folding: "ß" and "ss" are different mailboxes.
    assert canonical_email("STRAßE@example.com") == "straße@example.com"


def test_lower_casing_can_lengthen_an_address_so_limits_come_after_it() -> None:
    typed = "İ" * 240 + "@example.com"
    assert len(typed) == 252
    assert len(canonical_email(typed)) == 492
    # The directory stores no address that does not fit its column once canonical.
    assert directory_email(typed) is None
    assert directory_email("İ" * 100 + "@example.com") == canonical_email("İ" * 100 + "@example.com")
    assert len(directory_email("İ" * 100 + "@example.com") or "") <= EMAIL_MAX


def test_every_comparison_uses_the_one_rule() -> None:
    wide = "ＨＡＮＡＫＯ@example.com"
    assert directory_email(wide) == "hanako@example.com"
    assert same_email(wide, "hanako@example.com")
    assert member_code(wide, key=KEY) == member_code("hanako@example.com", key=KEY)
    hubspot = FakeHubSpot()
    first = hubspot.upsert_contact(email=wide, properties={"firstname": "Hanako"})
    second = hubspot.upsert_contact(email="hanako@example.com", properties={"lastname": "Yamada"})
    assert first.id == second.id and second.email == "hanako@example.com"
