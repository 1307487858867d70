"""The console's words (every `_("…")` of its templates has its Japanese), its times in the shop's zone,
what a search text can mean, and the links to the vendors' admin pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.ops.blueprint import PROBLEMS
from app.ops.language import JAPANESE, translate
from app.ops.timefmt import shop_time
from app.ops.vendor_links import vendor_admin_url
from config.settings import ConfigError, Settings
from registrations.people_search import dead_letter_number, katakana, normalised, phone_e164

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates" / "ops"
LITERAL = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def test_every_word_the_console_templates_translate_has_its_japanese() -> None:
    missing = [
        f"{template.name}: {match.group(1) or match.group(2)}"
        for template in sorted(TEMPLATES.glob("*.html"))
        for match in LITERAL.finditer(template.read_text(encoding="utf-8"))
        if (match.group(1) or match.group(2)) not in JAPANESE
    ]
    assert not missing, f"add these to app/ops/language.py JAPANESE: {missing}"
    for title, message in PROBLEMS.values():
        assert title in JAPANESE and message in JAPANESE


def test_translate_falls_back_to_english_and_fills_placeholders() -> None:
    assert translate("Dead letters", "ja") == "デッドレター"
    assert translate("Dead letters", "en") == "Dead letters"
    assert translate("A string nobody translated yet", "ja") == "A string nobody translated yet"
    assert translate("Page {number}", "ja", number=3) == "3 ページ"
    assert translate("Page {number}", "en", number=3) == "Page 3"


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Asia/Tokyo", "2026-12-07 03:30:05 JST (UTC+09:00)"),
        ("UTC", "2026-12-06 18:30:05 UTC (UTC+00:00)"),
        ("Europe/London", "2026-12-06 18:30:05 GMT (UTC+00:00)"),
        ("Asia/Kolkata", "2026-12-07 00:00:05 IST (UTC+05:30)"),
    ],
)
def test_times_are_shown_in_the_shops_zone_with_abbreviation_and_offset(zone: str, shown: str) -> None:
    assert shop_time(datetime(2026, 12, 6, 18, 30, 5, tzinfo=UTC), zone) == shown
    assert shop_time(datetime(2026, 12, 6, 18, 30, 5), zone) == shown  # naive is UTC
    assert shop_time(None, zone) == "—"


def test_shop_timezone_and_hubspot_portal_id_settings() -> None:
    assert Settings.from_env(environ={}).shop_timezone == "Asia/Tokyo"
    assert Settings.from_env(environ={}).hubspot_portal_id is None
    assert Settings.from_env(environ={"HUBSPOT_PORTAL_ID": " 2468 "}).hubspot_portal_id == "2468"
    with pytest.raises(ConfigError, match="SHOP_TIMEZONE"):
        Settings.from_env(environ={"SHOP_TIMEZONE": "Tokyo"})
    with pytest.raises(ConfigError, match="HUBSPOT_PORTAL_ID"):
        Settings.from_env(environ={"HUBSPOT_PORTAL_ID": "portal-1"})


def test_vendor_admin_links() -> None:
    settings = Settings.from_env(
        environ={"SHOPIFY_SHOP": "Kissa-Hanako.myshopify.com", "HUBSPOT_PORTAL_ID": "2468"}
    )
    shopify = "https://admin.shopify.com/store/kissa-hanako/customers/7001"
    assert vendor_admin_url("shopify", "gid://shopify/Customer/7001", settings) == shopify
    assert vendor_admin_url("shopify", "7001", settings) == shopify
    assert vendor_admin_url("shopify", "gid://shopify/Order/7001", settings) is None
    assert (
        vendor_admin_url("hubspot", "55501", settings)
        == "https://app.hubspot.com/contacts/2468/record/0-1/55501"
    )
    assert vendor_admin_url("hubspot", "55501", Settings.from_env(environ={})) is None  # no portal id
    assert vendor_admin_url("smaregi", "812", settings) is None  # no documented console address
    assert vendor_admin_url("shopify", None, settings) is None


def test_what_a_search_text_is_read_as() -> None:
    assert katakana("やまだ はなこ") == "ヤマダ ハナコ"
    assert normalised("　ﾔﾏﾀﾞ　") == "ヤマダ"  # ideographic spaces, half-width katakana
    assert normalised("１２３") == "123"
    assert phone_e164("090-1234-5678") == phone_e164("+81 90 1234 5678") == "+819012345678"
    assert phone_e164("12") is None and phone_e164("山田") is None
    assert dead_letter_number("#12") == dead_letter_number("12") == 12
    assert dead_letter_number(str(2**31)) is None and dead_letter_number("0") is None
