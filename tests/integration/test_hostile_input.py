"""Hostile text at the intake, on SQLite and PostgreSQL: surrogates (escaped in JSON or as raw bytes),
C0/C1 controls, bidi and zero-width characters, the BOM, line and paragraph separators, an address
that grows when lower-cased, a quoted local part, and bodies over the cap however they are framed.
Each gets a 4xx that names the field (the form shows it next to the field), and nothing is written
or published."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import OutboxMessage, Registration
from registrations.outbox import publish_after_commit

VALID = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada"}
TEXT_FIELDS = ("email", "first_name", "last_name", "first_name_kana", "last_name_kana", "address", "phone")
HOSTILE = {
    "surrogate": "\ud800",
    "nul": "\x00",
    "nel": "\x85",
    "csi": "\x9b",
    "bidi_override": "\u202e",
    "bidi_isolate": "\u2066",
    "zero_width_space": "\u200b",
    "word_joiner": "\u2060",
    "bom": "\ufeff",
    "line_separator": "\u2028",
    "paragraph_separator": "\u2029",
}
CAP = 16384  # MAX_REQUEST_BYTES's default


class Web:
    """The intake with a publisher that records what it is asked to publish."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.app = create_app(settings, database=database)
        self.published: list[str] = []
        self.app.extensions["membersync"].database = publish_after_commit(
            database, lambda registration_id, *_: self.published.append(registration_id)
        )
        self.client = self.app.test_client()
        self.database = database

    def written(self) -> tuple[int, int]:
        with self.database.session() as session:
            return (
                session.scalar(select(func.count()).select_from(Registration)) or 0,
                session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
            )

    def assert_untouched(self) -> None:
        assert self.written() == (0, 0)
        assert self.published == []


@pytest.fixture
def web(settings: Settings, database: Database) -> Iterator[Web]:
    yield Web(settings, database)


def api(web: Web, body: str | bytes, **kwargs: Any) -> Any:
    return web.client.post("/api/registrations", data=body, content_type="application/json", **kwargs)


def test_the_recording_publisher_sees_an_accepted_registration(web: Web) -> None:
    # The guard of every "nothing published" below: a good registration is published.
    assert api(web, json.dumps(VALID)).status_code == 202
    assert web.written() == (1, 1) and len(web.published) == 1


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_the_api_refuses_a_hostile_character_in_any_field_naming_it(web: Web, field: str, kind: str) -> None:
    value = {"email": "hana{}ko@example.com", "phone": "090{}12345678"}.get(field, "ヤ{}マ")
    # json.dumps writes a lone surrogate as the escape "\ud800", as a hostile client would send it.
    response = api(web, json.dumps({**VALID, field: value.format(HOSTILE[kind])}))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert list(errors) == [field] and errors[field][0].startswith("Must not contain")
    web.assert_untouched()


@pytest.mark.parametrize("kind", ["nel", "line_separator", "paragraph_separator", "bom"])
def test_a_hostile_character_trimming_would_drop_is_refused_too(web: Web, kind: str) -> None:
    # Python's strip() takes U+0085 and U+2028 for spaces: checked before normalising, they are seen.
    body = {**VALID, "first_name": "Hanako" + HOSTILE[kind], "address": HOSTILE[kind]}
    response = api(web, json.dumps(body))
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"first_name", "address"}
    web.assert_untouched()


def test_the_raw_bytes_of_a_surrogate_are_a_400(web: Web) -> None:
    body = b'{"email": "a@example.com", "first_name": "\xed\xa0\x80", "last_name": "x"}'
    response = api(web, body)
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"_request": ["Body is not valid UTF-8."]}}
    web.assert_untouched()


def test_a_surrogate_in_a_field_name_is_refused_without_echoing_it(web: Web) -> None:
    response = api(web, '{"email": "a@example.com", "first_name": "a", "last_name": "b", "\\ud800": 1}')
    assert response.status_code == 422
    assert response.get_json() == {
        "errors": {"_schema": ["A field name holds characters that are not allowed."]}
    }
    web.assert_untouched()


def test_an_address_that_grows_when_lower_cased_is_refused_on_its_canonical_length(web: Web) -> None:
    response = api(web, json.dumps({**VALID, "email": "İ" * 240 + "@example.com"}))
    assert response.status_code == 422
    assert response.get_json() == {"errors": {"email": ["Must be at most 254 bytes."]}}
    web.assert_untouched()


@pytest.mark.parametrize(
    "address", ['"a..b"@example.com', '"hanako"@example.com', "a..b@example.com", "はなこ@example.com"]
)
def test_a_quoted_or_non_ascii_local_part_is_refused(web: Web, address: str) -> None:
    response = api(web, json.dumps({**VALID, "email": address}))
    assert response.status_code == 422
    assert response.get_json()["errors"]["email"][0].startswith("Before the @, use only ASCII")
    web.assert_untouched()


def test_a_full_width_address_is_stored_canonical(web: Web) -> None:
    response = api(web, json.dumps({**VALID, "email": " ＨＡＮＡＫＯ@Example.com\u3000"}))
    assert response.status_code == 202
    with web.database.session() as session:
        assert session.scalar(select(Registration.email)) == "hanako@example.com"


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(TEXT_FIELDS),
    position=st.integers(min_value=0, max_value=12),
    character=st.sampled_from(sorted(HOSTILE.values())) | st.characters(categories=("Cc", "Cf", "Cs")),
)
@example(field="address", position=0, character="\x85")
def test_never_accepted_never_a_500_wherever_the_character_sits(
    web: Web, field: str, position: int, character: str
) -> None:
    value = {**VALID, "address": "東京都渋谷区", "phone": "09012345678"}.get(field, "ヤマダ")
    hostile = value[:position] + character + value[position:]
    response = api(web, json.dumps({**VALID, field: hostile}))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    web.assert_untouched()


# --- the body cap, however the body is framed ---------------------------------------------------------


class CountingStream(io.BytesIO):
    """A body of `size` bytes (JSON padded with spaces) that counts how much the app reads of it."""

    def __init__(self, size: int, start: bytes | None = None) -> None:
        start = start if start is not None else json.dumps(VALID).encode()
        super().__init__(start + b" " * (size - len(start)))
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self.consumed += count
        return count

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.consumed += len(data)
        return data


def chunked(web: Web, path: str, stream: CountingStream, content_type: str) -> Any:
    # As gunicorn hands a chunked body to the app: no Content-Length, wsgi.input_terminated set.
    return web.client.post(
        path,
        input_stream=stream,
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_over_the_cap_is_413_and_read_no_further(web: Web) -> None:
    stream = CountingStream(10 * CAP)
    response = chunked(web, "/api/registrations", stream, "application/json")
    assert response.status_code == 413
    assert stream.consumed <= CAP + 1
    web.assert_untouched()


def test_a_chunked_body_one_byte_over_is_413_and_at_the_cap_is_accepted(web: Web) -> None:
    assert chunked(web, "/api/registrations", CountingStream(CAP + 1), "application/json").status_code == 413
    web.assert_untouched()
    assert chunked(web, "/api/registrations", CountingStream(CAP), "application/json").status_code == 202
    assert web.written() == (1, 1)


def test_the_same_body_with_a_content_length_is_413_too(web: Web) -> None:
    assert api(web, CountingStream(CAP + 1).getvalue()).status_code == 413
    web.assert_untouched()


def test_a_chunked_form_post_over_the_cap_gets_the_forms_page(web: Web) -> None:
    stream = CountingStream(10 * CAP, start=b"email=a%40example.com&address=" + b"x" * (10 * CAP))
    response = chunked(web, "/register?lang=en", stream, "application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert stream.consumed <= CAP + 1
    web.assert_untouched()


# --- the HTML form -----------------------------------------------------------------------------------------


class FormPage(HTMLParser):
    """Hidden inputs, each field's error text and hint."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("type") == "hidden" and attributes.get("name"):
            self.hidden[str(attributes["name"])] = str(attributes.get("value") or "")
        if tag == "p" and attributes.get("id"):
            self._open.append(str(attributes["id"]))
            self.texts[str(attributes["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            self.texts[element_id] += data


def post_form(web: Web, fields: dict[str, str], *, lang: str) -> Any:
    page = FormPage(web.client.get(f"/?lang={lang}").get_data(as_text=True))
    hidden = {name: page.hidden[name] for name in ("csrf_token", "submission_id", "locale")}
    return web.client.post("/register", data={**hidden, **fields})


@pytest.mark.parametrize("field", ["email", "first_name", "address"])
@pytest.mark.parametrize("kind", [kind for kind in HOSTILE if kind != "surrogate"])
def test_the_form_shows_the_refusal_next_to_the_field(web: Web, field: str, kind: str) -> None:
    value = {"email": "hana{}ko@example.com"}.get(field, "山{}田")
    response = post_form(web, {**VALID, field: value.format(HOSTILE[kind])}, lang="en")
    assert response.status_code == 422
    page = FormPage(response.get_data(as_text=True))
    assert f"{field}-error" in page.texts
    assert re.search(r"control|formatting|breaks", page.texts[f"{field}-error"])
    web.assert_untouched()


def test_the_form_says_why_in_japanese(web: Web) -> None:
    response = post_form(web, {**VALID, "first_name": "花\u202e子"}, lang="ja")
    assert response.status_code == 422
    assert "書式制御文字" in FormPage(response.get_data(as_text=True)).texts["first_name-error"]
    quoted = post_form(web, {**VALID, "email": '"a..b"@example.com'}, lang="ja")
    assert "引用符" in FormPage(quoted.get_data(as_text=True)).texts["email-error"]
    web.assert_untouched()


def test_the_form_refuses_the_raw_bytes_of_a_surrogate(web: Web) -> None:
    page = FormPage(web.client.get("/?lang=en").get_data(as_text=True))
    hidden = "&".join(f"{name}={page.hidden[name]}" for name in ("csrf_token", "submission_id", "locale"))
    body = f"{hidden}&email=a%40example.com&last_name=Yamada&first_name=Hana".encode() + b"\xed\xa0\x80ko"
    # A body that is not UTF-8 cannot be read at all (not even its locale): the form's own 400 page in
    # the default language, nothing written.
    response = web.client.post("/register", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "もう一度送信してください" in response.get_data(as_text=True)
    web.assert_untouched()
    # Percent-encoded, Werkzeug keeps the bytes as the literal text "%ED%A0%80": text, never a surrogate.
    encoded = f"{hidden}&email=a%40example.com&last_name=Yamada&first_name=Hana%ED%A0%80ko".encode()
    answer = web.client.post("/register", data=encoded, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 303
    with web.database.session() as session:
        assert session.scalar(select(Registration.first_name)) == "Hana%ED%A0%80ko"


def test_the_form_explains_the_address_rule_under_the_field(web: Web) -> None:
    english = FormPage(web.client.get("/?lang=en").get_data(as_text=True)).texts["email-hint"]
    japanese = FormPage(web.client.get("/?lang=ja").get_data(as_text=True)).texts["email-hint"]
    assert "Before the @: ASCII letters" in english and "no quotes" in english
    assert "@より前は半角英数字" in japanese and "引用符" in japanese
