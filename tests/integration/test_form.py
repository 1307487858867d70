"""The HTML registration form (`GET /`, `POST /register`): accessible, bilingual, CSRF, honeypot, and
never a half-written or unexplained answer."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import Registration

VALID = {
    "email": "Hanako.Yamada@Example.com",
    "last_name": "山田",
    "first_name": "花子",
    "last_name_kana": "ヤマダ",
    "first_name_kana": "ハナコ",
    "phone": "090-1234-5678",
    "birth_date": "1990-04-01",
    "postal_code": "1500001",
    "address": "東京都渋谷区神宮前1-1-1",
    "gender": "female",
    "accepts_marketing": "yes",
}
AUTOCOMPLETE = {
    "email": "email",
    "last_name": "family-name",
    "first_name": "given-name",
    "phone": "tel",
    "birth_date": "bday",
    "postal_code": "postal-code",
    "address": "street-address",
}


class FormPage(HTMLParser):
    """The parts of a rendered form page the tests look at: controls, labels, ids, error texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.controls: dict[str, dict[str, str | None]] = {}
        self.label_for: set[str] = set()
        self.ids: set[str] = set()
        self.texts_by_id: dict[str, str] = {}
        self.summary_links: list[str] = []
        self._open_ids: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
            if tag == "p":
                self._open_ids.append((tag, str(attributes["id"])))
                self.texts_by_id[str(attributes["id"])] = ""
        if tag in {"input", "select"} and attributes.get("name"):
            self.controls[str(attributes["name"])] = attributes
        if tag == "label" and attributes.get("for"):
            self.label_for.add(str(attributes["for"]))
        if tag == "a" and str(attributes.get("href", "")).startswith("#"):
            self.summary_links.append(str(attributes["href"])[1:])

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._open_ids:
            self._open_ids.pop()

    def handle_data(self, data: str) -> None:
        for _tag, element_id in self._open_ids:
            self.texts_by_id[element_id] += data

    def hidden(self, name: str) -> str:
        return str(self.controls[name]["value"])

    def error_of(self, field: str) -> str:
        return self.texts_by_id.get(f"{field}-error", "")


def registrations(database: Database) -> list[Registration]:
    with database.session() as session:
        return list(session.scalars(select(Registration)))


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Registration)) or 0


def open_form(client: Any, query: str = "", **headers: str) -> FormPage:
    response = client.get(f"/{query}", headers=headers)
    assert response.status_code == 200
    return FormPage(response.get_data(as_text=True))


def post(client: Any, fields: dict[str, str], *, lang: str = "ja") -> Any:
    """Post `fields` the way the browser would, with the hidden fields of a freshly opened form."""
    page = open_form(client, f"?lang={lang}")
    form = {name: page.hidden(name) for name in ("csrf_token", "submission_id", "locale")}
    return client.post("/register", data={**form, **fields})


def test_form_is_japanese_by_default_with_a_label_for_every_input(client: Any) -> None:
    response = client.get("/")
    page = FormPage(response.get_data(as_text=True))
    assert page.html_lang == "ja"
    assert "会員登録" in response.get_data(as_text=True)
    visible = {name: attrs for name, attrs in page.controls.items() if attrs.get("type") != "hidden"}
    visible.pop("comment")  # the honeypot, which is hidden from people
    assert set(visible) == {
        *AUTOCOMPLETE,
        "last_name_kana",
        "first_name_kana",
        "gender",
        "accepts_marketing",
    }
    for name, attrs in visible.items():
        assert attrs["id"] in page.label_for, name
    for name, token in AUTOCOMPLETE.items():
        assert page.controls[name]["autocomplete"] == token
    assert page.controls["birth_date"]["type"] == "date"
    assert page.controls["accepts_marketing"]["type"] == "checkbox"
    assert page.hidden("locale") == "ja"
    for name in ("email", "last_name", "first_name"):
        assert "required" in page.controls[name]
    assert 'href="/?lang=en"' in response.get_data(as_text=True)


def test_form_is_english_with_lang_en_or_an_english_browser(client: Any) -> None:
    page = open_form(client, "?lang=en")
    assert page.html_lang == "en"
    assert page.hidden("locale") == "en"
    assert open_form(client, **{"Accept-Language": "en-US,en;q=0.9"}).html_lang == "en"
    assert open_form(client, **{"Accept-Language": "ja,en;q=0.5"}).html_lang == "ja"
    # An explicit choice wins over the browser's.
    assert open_form(client, "?lang=ja", **{"Accept-Language": "en"}).html_lang == "ja"
    assert open_form(client, "?lang=xx", **{"Accept-Language": "fr"}).html_lang == "ja"


def test_form_pages_carry_security_headers(client: Any) -> None:
    response = client.get("/")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "X-Frame-Options" not in client.get("/healthz").headers
    assert client.get("/static/form.css").status_code == 200


def test_valid_submission_redirects_and_writes_one_registration(client: Any, database: Database) -> None:
    response = post(client, VALID)
    assert response.status_code == 303
    location = response.headers["Location"]
    match = re.fullmatch(r"/thanks/([0-9a-f-]{36})\?lang=ja", location)
    assert match, location
    [registration] = registrations(database)
    assert registration.id == match.group(1)
    assert registration.source == "form"
    assert registration.accepts_marketing is True
    assert registration.locale == "ja"
    assert registration.email == "hanako.yamada@example.com"
    assert registration.phone == "+819012345678"

    thanks = client.get(location)
    assert thanks.status_code == 200
    body = thanks.get_data(as_text=True)
    assert "ご登録ありがとうございます" in body and registration.id in body
    assert "hanako" not in body.lower() and "山田" not in body
    english = client.get(f"/thanks/{registration.id}?lang=en").get_data(as_text=True)
    assert "Thank you for registering" in english


def test_unchecked_box_is_false_and_blank_optional_fields_are_not_given(
    client: Any, database: Database
) -> None:
    blank = {name: "" for name in VALID if name != "accepts_marketing"}
    response = post(
        client, {**blank, "email": "a@example.com", "last_name": "Doe", "first_name": "Jo"}, lang="en"
    )
    assert response.status_code == 303
    [registration] = registrations(database)
    assert registration.accepts_marketing is False
    assert registration.locale == "en"
    assert (registration.phone, registration.birth_date, registration.gender, registration.address) == (
        None,
        None,
        None,
        None,
    )


def test_invalid_submission_shows_japanese_messages_next_to_the_fields(
    client: Any, database: Database
) -> None:
    invalid = {**VALID, "email": "not-an-email", "first_name": "  ", "last_name_kana": "やまだ"}
    response = post(client, invalid)
    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert page.html_lang == "ja"
    assert "メールアドレスを name@example.com の形式で入力してください。" in page.error_of("email")
    assert "名を入力してください。" in page.error_of("first_name")
    assert "全角カタカナで入力してください。" in page.error_of("last_name_kana")
    for field in ("email", "first_name", "last_name_kana"):
        control = page.controls[field]
        assert control["aria-invalid"] == "true"
        assert f"{field}-error" in str(control["aria-describedby"]).split()
    assert page.summary_links == ["email", "first_name", "last_name_kana"]
    assert "aria-invalid" not in page.controls["last_name"]
    assert count(database) == 0


def test_invalid_submission_in_english_speaks_english(client: Any, database: Database) -> None:
    response = post(client, {**VALID, "birth_date": "2999-01-01", "postal_code": "12"}, lang="en")
    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert page.html_lang == "en"
    assert "Enter a date in the past." in page.error_of("birth_date")
    assert "Must be a Japanese postal code such as 150-0001." in page.error_of("postal_code")
    assert count(database) == 0


def test_typed_values_survive_a_failed_post_and_are_inert(client: Any, database: Database) -> None:
    script = "<script>alert(1)</script>"
    response = post(client, {**VALID, "last_name": script, "email": "bad", "gender": "male"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert script not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    page = FormPage(body)
    assert page.controls["last_name"]["value"] == script  # the parser unescapes: the value is intact
    assert page.controls["address"]["value"] == VALID["address"]
    assert "checked" in page.controls["accepts_marketing"]
    assert re.search(r'<option value="male" selected>', body)
    assert count(database) == 0


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "garbage",
        URLSafeTimedSerializer("another-key", salt="membersync.form.csrf").dumps("whatever"),
    ],
    # Fixed ids: the signed token holds the time, and pytest-xdist needs every worker to collect the
    # same test names.
    ids=["none", "empty", "garbage", "signed-with-another-key"],
)
def test_missing_or_forged_csrf_token_is_refused(client: Any, database: Database, token: str | None) -> None:
    open_form(client)  # the browser has a session, but the post does not carry its token
    data = dict(VALID)
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/register", data=data)
    assert response.status_code == 400
    assert "フォームを開き直して" in response.get_data(as_text=True)
    assert count(database) == 0


def test_a_token_from_another_browser_is_refused(client: Any, database: Database) -> None:
    stolen = open_form(client).hidden("csrf_token")
    other_browser = client.application.test_client()
    open_form(other_browser)
    response = other_browser.post("/register", data={**VALID, "csrf_token": stolen})
    assert response.status_code == 400
    assert count(database) == 0


def test_honeypot_gets_thanks_but_nothing_is_written(client: Any, database: Database) -> None:
    response = post(client, {**VALID, "comment": "buy cheap watches"})
    assert response.status_code == 303
    assert re.fullmatch(r"/thanks/[0-9a-f-]{36}\?lang=ja", response.headers["Location"])
    assert client.get(response.headers["Location"]).status_code == 200
    assert count(database) == 0


def test_double_submission_of_one_form_registers_once(client: Any, database: Database) -> None:
    page = open_form(client)
    form = {name: page.hidden(name) for name in ("csrf_token", "submission_id", "locale")}
    first = client.post("/register", data={**form, **VALID})
    second = client.post("/register", data={**form, **VALID})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert count(database) == 1
    # Back, edit, send again: a different registration, not an error.
    third = client.post("/register", data={**form, **VALID, "first_name": "桜"})
    assert third.status_code == 303
    assert count(database) == 2


def test_unknown_thanks_id_is_not_found(client: Any) -> None:
    assert client.get("/thanks/not-a-uuid").status_code == 404
    assert client.get(f"/thanks/{uuid.uuid4()}").status_code == 200


def test_oversize_post_gets_a_page_not_a_stack_trace(client: Any, database: Database) -> None:
    response = client.post("/register", data={**VALID, "address": "x" * 100_000})
    assert response.status_code == 413
    assert "送信内容が大きすぎます" in response.get_data(as_text=True)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert count(database) == 0


def test_rate_limit_answers_with_a_page(make_settings: Callable[..., Settings], database: Database) -> None:
    settings = make_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0", INTAKE_RATE_LIMIT="2/hour")
    client = create_app(settings, database=database).test_client()
    statuses = [post(client, {**VALID, "email": "bad"}, lang="en").status_code for _ in range(3)]
    assert statuses == [422, 422, 429]
    response = post(client, VALID, lang="en")
    assert "Too many submissions" in response.get_data(as_text=True)
    assert count(database) == 0


def test_no_personal_data_in_logs(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    post(client, VALID)
    post(client, {**VALID, "phone": "x"})
    post(client, {**VALID, "comment": "bot"})
    logged = caplog.text.lower()
    for personal in ("hanako", "山田", "花子", "090", "1500001", "渋谷"):
        assert personal not in logged


# Any text a browser can send (no lone surrogates: they cannot be encoded in a request).
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)


# A valid form with a few fields replaced by anything, and sometimes the extras a bot might add:
# both the 303 and the 422 answers get explored.
POSTS = st.builds(
    lambda overrides, extras: {**VALID, **overrides, **extras},
    st.dictionaries(st.sampled_from(sorted(VALID)), st.one_of(ANY_TEXT, st.just("")), max_size=3),
    st.dictionaries(st.sampled_from(["locale", "submission_id", "comment", "unknown"]), ANY_TEXT, max_size=2),
)


@hsettings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fields=POSTS)
def test_never_a_500_and_never_a_row_without_a_redirect(
    client: Any, database: Database, fields: dict[str, str]
) -> None:
    page = open_form(client)
    before = count(database)
    response = client.post("/register", data={"csrf_token": page.hidden("csrf_token"), **fields})
    written = count(database) - before
    event(f"answered {response.status_code}")  # --hypothesis-show-statistics: both answers explored
    assert response.status_code in (303, 422), response.status_code
    if response.status_code == 422:
        assert written == 0
    else:
        assert written == (0 if fields.get("comment") else 1)
