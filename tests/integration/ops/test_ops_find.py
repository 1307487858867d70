"""Finding anyone from the console's one search box, the member number wherever a person is shown, the
vendors' admin links, times in the shop's zone, and the console in Japanese and English."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import DirectoryMember, Identity, Registration
from tests.integration.ops.conftest import OPS_PASSWORD, OPS_USERNAME, PERSON, Seeder, post_form, sign_in
from tests.integration.ops.test_ops_pages import table_rows

MEMBER_NUMBER = "4820150731992270"


def search(client: Any, typed: str) -> Any:
    return post_form(client, "/ops/find", "/ops/find", {"q": typed})


def make_member(
    database: Database,
    seed: Seeder,
    *,
    email: str = PERSON["email"],
    ids: tuple[str, str, str, str] = ("7001", "812", "55501", MEMBER_NUMBER),
    **fields: Any,
) -> str:
    """A registration whose steps all succeeded, with the person's ids recorded as the steps record them:
    `ids` are the Shopify number, the Smaregi customerId, the HubSpot id and the member number."""
    shopify, smaregi, hubspot, code = ids
    registration_id = seed.registration(email=email, **fields)
    seed.succeed(registration_id, "shopify", f"gid://shopify/Customer/{shopify}")
    seed.succeed(registration_id, "smaregi", smaregi)
    seed.succeed(registration_id, "hubspot", hubspot)
    with database.session() as session:
        session.add(
            Identity(
                email=email,
                shopify_customer_id=f"gid://shopify/Customer/{shopify}",
                smaregi_customer_id=smaregi,
                smaregi_customer_code=code,
                hubspot_contact_id=hubspot,
            )
        )
    return registration_id


@pytest.fixture
def member(database: Database, seed: Seeder) -> str:
    return make_member(database, seed)


def goes_to(answer: Any, registration_id: str) -> bool:
    return answer.status_code == 303 and answer.headers["Location"] == f"/ops/registrations/{registration_id}"


# Every way staff ask for a person, each typed as they would type it.
WAYS_TO_ASK = [
    MEMBER_NUMBER,
    "４８２０１５０７３１９９２２７０",  # typed with a Japanese IME's full-width digits
    "山田",
    "山田 花子",
    "山田花子",
    "ヤマダ ハナコ",
    "やまだ",  # hiragana reads as the katakana reading
    "ﾊﾅｺ",  # half-width katakana
    "090-1234-5678",
    "+81 90 1234 5678",
    " Hanako.YAMADA@example.com ",
    "gid://shopify/Customer/7001",
    "7001",
    "55501",
    "812",
]


def test_one_box_finds_a_person_by_every_id_and_name(
    ops: Any, database: Database, seed: Seeder, member: str
) -> None:
    # Somebody else too, whose ids and names must not match: a search that listed everyone would fail.
    decoy = make_member(
        database,
        seed,
        email="ichiro.sato@example.com",
        first_name="一郎",
        last_name="佐藤",
        first_name_kana="イチロウ",
        last_name_kana="サトウ",
        phone="+819087654321",
        ids=("7002", "813", "55502", "4820150731992271"),
    )
    assert goes_to(search(ops, "佐藤"), decoy)
    for typed in WAYS_TO_ASK:
        answer = search(ops, typed)
        assert goes_to(answer, member), (typed, answer.status_code, answer.text[:2000])


def test_an_id_prefix_as_the_lists_show_it_finds_the_registration(
    ops: Any, member: str, seed: Seeder
) -> None:
    seed.registration(email="someone.else@example.com", last_name="佐藤", last_name_kana="サトウ")
    assert goes_to(search(ops, member[:8]), member)
    assert goes_to(search(ops, f"{member[:8].upper()}…"), member)  # copied with the list's ellipsis
    assert goes_to(search(ops, member), member)


def test_a_dead_letter_number_goes_to_the_dead_letter(ops: Any, member: str, seed: Seeder) -> None:
    letter_id = seed.dead(member, "email")
    answer = search(ops, f"#{letter_id}")
    assert answer.status_code == 303 and answer.headers["Location"] == f"/ops/dead-letters/{letter_id}"


def test_several_matches_are_listed_with_member_number_status_and_what_matched(
    ops: Any, database: Database, seed: Seeder, member: str
) -> None:
    other = seed.registration(email="taro.yamada@example.com", first_name="太郎", first_name_kana="タロウ")
    answer = search(ops, "ヤマダ")
    assert answer.status_code == 200
    rows = {row[0]: [" ".join(cell.split()) for cell in row] for row in table_rows(answer.text, "matches")}
    assert set(rows) == {member, other}
    assert rows[member][1:4] == ["山田 花子 (ヤマダ ハナコ)", MEMBER_NUMBER, "accepted"]
    assert rows[member][5] == "kana" and rows[other][2] == "—"
    assert rows[other][4].endswith("JST (UTC+09:00)")


def test_the_member_number_found_through_the_smaregi_directory(
    ops: Any, database: Database, seed: Seeder
) -> None:
    # A member nobody recorded on an identity: the directory knows its code and its customerId.
    registration_id = seed.registration(email="walk.in@example.com")
    seed.succeed(registration_id, "smaregi", "9090")
    with database.session() as session:
        session.add(
            DirectoryMember(customer_id="9090", customer_code="STORE-000123", email="walk.in@example.com")
        )
    assert goes_to(search(ops, "STORE-000123"), registration_id)
    page = ops.get(f"/ops/registrations/{registration_id}").text
    assert re.search(r'id="member-number">STORE-000123<', page)


def test_nothing_found_and_bad_input_are_plain_answers(ops: Any, member: str) -> None:
    nobody = search(ops, "鈴木")
    assert nobody.status_code == 404 and "Nobody matches that search." in nobody.text
    assert search(ops, "   ").status_code == 422
    refused = search(ops, "山田\u202e")
    assert refused.status_code == 422 and "Search: " in refused.text
    assert search(ops, "x" * 255).status_code == 422
    for odd in ("%", "_", "\\", "' OR 1=1 --", "#99999999999", "0" * 40, "gid://shopify/Customer/", "#"):
        assert search(ops, odd).status_code == 404, odd


def test_what_is_searched_for_is_never_logged(
    ops: Any, member: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for typed in ("山田", MEMBER_NUMBER, "090-1234-5678"):
        search(ops, typed)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for typed in ("山田", MEMBER_NUMBER, "1234-5678", "12345678"):
        assert typed not in logged


def test_the_registration_page_shows_the_member_number_and_links_to_the_vendors(
    make_settings: Callable[..., Settings], database: Database, seed: Seeder, clean_redis: str
) -> None:
    settings = make_settings(
        OPS_USERNAME=OPS_USERNAME,
        OPS_PASSWORD=OPS_PASSWORD,
        REDIS_URL=clean_redis,
        SHOPIFY_SHOP="kissa-hanako.myshopify.com",
        HUBSPOT_PORTAL_ID="2468",
    )
    client = create_app(settings, database=database).test_client()
    sign_in(client, OPS_USERNAME, OPS_PASSWORD)
    registration_id = make_member(database, seed)
    html = client.get(f"/ops/registrations/{registration_id}").text
    steps = {row[0]: row for row in table_rows(html, "steps")}
    assert " ".join(steps["smaregi"][2].replace("( ", "(").replace(" )", ")").split()) == (
        f"{MEMBER_NUMBER} (customerId 812)"
    )
    assert re.search(rf'id="member-number">{MEMBER_NUMBER}<', html)
    links = re.findall(r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer"', html)
    assert links == [
        "https://admin.shopify.com/store/kissa-hanako/customers/7001",
        "https://app.hubspot.com/contacts/2468/record/0-1/55501",
    ]


def test_no_hubspot_link_without_a_portal_id(ops: Any, member: str) -> None:
    html = ops.get(f"/ops/registrations/{member}").text
    assert "app.hubspot.com" not in html and "<code>55501</code>" in html
    assert "https://admin.shopify.com/store/sandbox/customers/7001" in html


def test_dead_letters_show_the_member_number(ops: Any, member: str, seed: Seeder) -> None:
    letter_id = seed.dead(member, "email")
    listed = ops.get("/ops/dead-letters").text
    assert re.search(rf'id="dead-letter-{letter_id}".*?{MEMBER_NUMBER}', listed, re.S)
    assert MEMBER_NUMBER in ops.get(f"/ops/dead-letters/{letter_id}").text


def test_times_are_in_the_shops_zone(
    make_settings: Callable[..., Settings], database: Database, seed: Seeder, clean_redis: str, member: str
) -> None:
    with database.session() as session:
        registration = session.get(Registration, member)
        assert registration is not None
        registration.created_at = datetime(2026, 12, 6, 18, 30, 5, tzinfo=UTC)
    for zone, shown in (
        ("Asia/Tokyo", "2026-12-07 03:30:05 JST (UTC+09:00)"),
        ("America/New_York", "2026-12-06 13:30:05 EST (UTC-05:00)"),
    ):
        settings = make_settings(
            OPS_USERNAME=OPS_USERNAME, OPS_PASSWORD=OPS_PASSWORD, REDIS_URL=clean_redis, SHOP_TIMEZONE=zone
        )
        client = create_app(settings, database=database).test_client()
        sign_in(client, OPS_USERNAME, OPS_PASSWORD)
        assert (
            f"accepted {shown}"
            in client.get(f"/ops/registrations/{member}", headers={"Accept-Language": "en"}).text
        )


def test_the_console_speaks_japanese_and_english(ops_app: Any, member: str) -> None:
    client = ops_app.test_client()  # a browser that says nothing of its languages: Japanese
    sign_in(client, OPS_USERNAME, OPS_PASSWORD)
    japanese = client.get(f"/ops/registrations/{member}").text
    assert '<html lang="ja">' in japanese and "会員検索" in japanese and "会員番号" in japanese
    assert 'href="/ops/registrations/' in japanese and ">English</a>" in japanese

    english = client.get(f"/ops/registrations/{member}", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert '<html lang="en">' in english and "Find a person" in english and "会員検索" not in english

    switched = client.get("/ops/find?lang=en")  # the switch wins over the browser, and is remembered
    assert '<html lang="en">' in switched.text and "ops_lang=en" in switched.headers["Set-Cookie"]
    assert "Accept-Language" in switched.headers["Vary"]
    for page in ("/ops/", "/ops/dead-letters", "/ops/find", f"/ops/registrations/{member}"):
        assert '<html lang="en">' in client.get(page, headers={"Accept-Language": "ja"}).text, page
    back = client.get("/ops/?lang=ja").text
    assert '<html lang="ja">' in back and "概要" in back and "デッドレター" in back
    not_found = client.get("/ops/registrations/00000000-0000-0000-0000-000000000000").text
    assert "見つかりません" in not_found
