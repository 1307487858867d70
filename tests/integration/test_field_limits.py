"""Every field is held to the tightest limit of the systems it reaches, at the intake: the JSON API and
the HTML form answer 422 naming the field and the limit, a value at the limit is accepted, one over is
refused, and nothing is written on a refusal. The form's maxlength and the OpenAPI document say the
same limits."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import func, select

from app.openapi import build_spec
from app.schemas import FIELD_LIMITS
from registrations.database import Database
from registrations.models import Registration

VALID = {"email": "hanako@example.com", "first_name": "花子", "last_name": "山田"}

# A 254-octet address: a 64-character local part and a domain of 63-character labels.
EMAIL_AT_LIMIT = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"

# field -> (a value exactly at the limit, the same one character over, the limit as the message says it)
CASES: dict[str, tuple[str, str, str]] = {
    "email": (EMAIL_AT_LIMIT, EMAIL_AT_LIMIT.replace("@", "a@"), "254 bytes"),
    "last_name": ("山" * 85, "山" * 86, "85 characters"),
    "first_name": ("花" * 85, "花" * 86, "85 characters"),
    "last_name_kana": ("ヤ" * 85, "ヤ" * 86, "85 characters"),
    "first_name_kana": ("ハ" * 85, "ハ" * 86, "85 characters"),
    # Typed with spaces around the hyphens: 20 characters that make a valid number.
    "phone": ("090  -  1234  - 5678", "090  -  1234  -  5678", "20 characters"),
    # The format (123-4567) is tighter than Smaregi's 10, so "at the limit" is the longest valid form.
    "postal_code": ("150-0001", "150-0001-00", "10 characters"),
    "address": ("東" * 85, "東" * 86, "85 characters"),
}
STORED = {"phone": "+819012345678"}
JAPANESE = {
    "85 characters": "85文字以内で入力してください。",
    "20 characters": "20文字以内で入力してください。",
}


def test_every_limited_field_has_a_case() -> None:
    assert set(CASES) == set(FIELD_LIMITS)
    for field, (_at, _over, limit) in CASES.items():
        assert limit.startswith(f"{FIELD_LIMITS[field].max_length} ")


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Registration)) or 0


@pytest.mark.parametrize("field", list(CASES))
def test_the_api_refuses_one_over_the_limit_naming_field_and_limit(
    client: Any, database: Database, field: str
) -> None:
    _at, over, limit = CASES[field]
    response = client.post("/api/registrations", json={**VALID, field: over})
    assert response.status_code == 422
    assert response.get_json() == {"errors": {field: [f"Must be at most {limit}."]}}
    assert count(database) == 0


@pytest.mark.parametrize("field", list(CASES))
def test_the_api_accepts_a_value_at_the_limit(client: Any, database: Database, field: str) -> None:
    at, _over, _limit = CASES[field]
    response = client.post("/api/registrations", json={**VALID, field: at})
    assert response.status_code == 202, response.get_json()
    with database.session() as session:
        registration = session.get(Registration, response.get_json()["id"])
        assert registration is not None
        assert getattr(registration, field) == STORED.get(field, at)


def test_the_limit_holds_for_what_is_stored_not_what_is_typed(client: Any, database: Database) -> None:
    # NFKC turns each "㈱" into "(株)": 29 typed characters are 87 sent to Smaregi.
    response = client.post("/api/registrations", json={**VALID, "address": "㈱" * 29})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"address": ["Must be at most 85 characters."]}
    assert count(database) == 0


class FormPage(HTMLParser):
    """The form's inputs by name, with their attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, str | None]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in {"input", "select", "textarea"} and attributes.get("name"):
            self.controls[str(attributes["name"])] = attributes


def post_form(client: Any, fields: dict[str, str], *, lang: str) -> Any:
    page = FormPage(client.get(f"/?lang={lang}").get_data(as_text=True))
    hidden = {name: str(page.controls[name]["value"]) for name in ("csrf_token", "submission_id", "locale")}
    return client.post("/register", data={**hidden, **fields})


def test_the_form_carries_every_limit_as_maxlength(client: Any) -> None:
    page = FormPage(client.get("/").get_data(as_text=True))
    for field, limit in FIELD_LIMITS.items():
        assert page.controls[field].get("maxlength") == str(limit.max_length), field


@pytest.mark.parametrize("field", list(CASES))
def test_the_form_refuses_one_over_the_limit_next_to_the_field(
    client: Any, database: Database, field: str
) -> None:
    _at, over, limit = CASES[field]
    english = post_form(client, {**VALID, field: over}, lang="en")
    assert english.status_code == 422
    error = re.search(rf'id="{field}-error"[^>]*>(.*?)</p>', english.get_data(as_text=True), flags=re.DOTALL)
    assert error is not None and f"Enter at most {limit}" in error.group(1)
    if limit in JAPANESE:
        japanese = post_form(client, {**VALID, field: over}, lang="ja")
        assert japanese.status_code == 422
        assert JAPANESE[limit] in japanese.get_data(as_text=True)
    assert count(database) == 0


@pytest.mark.parametrize("field", list(CASES))
def test_the_form_accepts_a_value_at_the_limit(client: Any, database: Database, field: str) -> None:
    at, _over, _limit = CASES[field]
    response = post_form(client, {**VALID, field: at}, lang="ja")
    assert response.status_code == 303
    assert count(database) == 1


def test_the_openapi_document_states_each_limit_and_who_imposes_it() -> None:
    properties = build_spec()["components"]["schemas"]["Registration"]["properties"]
    for field, limit in FIELD_LIMITS.items():
        assert properties[field]["maxLength"] == limit.max_length, field
        assert properties[field]["x-limit-imposed-by"] == limit.imposed_by
    assert properties["address"]["x-limit-imposed-by"] == "Smaregi address"
