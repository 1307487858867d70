"""The signed-in console never answers 500 to what a link or a form can carry: a superscript or a
thirty-digit id, a page far past the end, CR/LF in `next`, and typed text holding control or
invisible characters (refused with 422 naming the field). On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.ops.inputs import MAX_PAGE
from registrations.database import Database
from registrations.models import DeadLetter, OpsAuditEntry
from tests.integration.ops.conftest import OPS_PASSWORD, OPS_USERNAME, Seeder, csrf_token, post_form


@pytest.mark.parametrize("typed", ["²", "¹²³", "9" * 30, "#" + "9" * 30, "2147483648", "-1", "٣"])
def test_find_by_an_id_that_cannot_exist_is_not_found(ops: Any, typed: str) -> None:
    answer = ops.get("/ops/find", query_string={"id": typed})
    assert answer.status_code == 404
    assert "No registration or dead letter has that id." in answer.text


@pytest.mark.parametrize("typed", ["1\u202e", "\x00", "a\u200bb", "1\u2028"])
def test_find_by_an_id_with_a_control_or_invisible_character_is_422_naming_the_field(
    ops: Any, typed: str
) -> None:
    answer = ops.get("/ops/find", query_string={"id": typed})
    assert answer.status_code == 422
    assert "Id: must not contain" in answer.text


def test_the_largest_dead_letter_number_is_still_looked_up(ops: Any, seed: Seeder) -> None:
    letter_id = seed.dead(seed.registration(), "hubspot")
    assert ops.get("/ops/find", query_string={"id": str(letter_id)}).status_code == 302
    assert ops.get("/ops/find", query_string={"id": str(2**31 - 1)}).status_code == 404


@pytest.mark.parametrize("page", ["9" * 30, "9" * 5000, str(MAX_PAGE + 1)])
@pytest.mark.parametrize("where", ["/ops/dead-letters", "/ops/audit"])
def test_a_page_past_any_possible_end_is_not_found(ops: Any, where: str, page: str) -> None:
    assert ops.get(where, query_string={"page": page}).status_code == 404


@pytest.mark.parametrize("page", [str(MAX_PAGE), "²", "-3", "abc", ""])
@pytest.mark.parametrize("where", ["/ops/dead-letters", "/ops/audit"])
def test_any_other_page_is_a_page(ops: Any, where: str, page: str) -> None:
    assert ops.get(where, query_string={"page": page}).status_code == 200


@pytest.mark.parametrize(
    "target", ["/ops/\r\nSet-Cookie: x=1", "/ops/%0d%0a", "/ops/\u2028", "/ops/ x", "/ops/\\evil.example"]
)
def test_a_next_with_cr_lf_or_other_unsafe_characters_leads_to_the_overview(
    anonymous: Any, ops: Any, target: str
) -> None:
    # Signed in already: the sign-in page sends the operator on at once.
    shown = ops.get("/ops/login", query_string={"next": target})
    assert shown.status_code == 302
    assert shown.headers["Location"] in {"/ops/", "/ops/%0d%0a"}
    assert "\r" not in shown.headers["Location"] and "Set-Cookie" not in str(shown.headers)
    # Signing in with it posted.
    page = anonymous.get("/ops/login")
    answer = anonymous.post(
        "/ops/login",
        data={
            "username": OPS_USERNAME,
            "password": OPS_PASSWORD,
            "next": target,
            "csrf_token": csrf_token(page.text),
        },
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] in {"/ops/", "/ops/%0d%0a"}


@pytest.mark.parametrize("typed", ["hanako\u202e@example.com", "hanako@example.com\x85", "\u2028"])
def test_find_by_email_with_a_control_or_invisible_character_is_422_naming_the_field(
    ops: Any, seed: Seeder, typed: str
) -> None:
    seed.registration()
    answer = post_form(ops, "/ops/find", "/ops/find", {"email": typed})
    assert answer.status_code == 422
    assert "E-mail address: must not contain" in answer.text


def test_find_by_email_measures_the_canonical_address_and_folds_full_width(ops: Any, seed: Seeder) -> None:
    registration_id = seed.registration()
    grown = post_form(ops, "/ops/find", "/ops/find", {"email": "İ" * 240 + "@example.com"})
    assert grown.status_code == 422 and "must be at most 254 bytes" in grown.text
    wide = post_form(ops, "/ops/find", "/ops/find", {"email": "ＨＡＮＡＫＯ.ＹＡＭＡＤＡ@example.com"})
    assert wide.status_code == 303
    assert wide.headers["Location"] == f"/ops/registrations/{registration_id}"


def test_a_discard_note_with_a_separator_is_refused_and_the_letter_stays_open(
    ops: Any, seed: Seeder, database: Database
) -> None:
    letter_id = seed.dead(seed.registration(), "hubspot")
    refused = post_form(
        ops,
        "/ops/dead-letters",
        "/ops/dead-letters/act",
        {"ids": [str(letter_id), "²", "9" * 30], "action": "discard", "note": "dup\u2028licate"},
    )
    assert refused.status_code == 422
    assert "Note: must not contain line or paragraph separators" in refused.text
    with database.session() as session:
        assert session.get(DeadLetter, letter_id).status == "open"  # type: ignore[union-attr]
    kept = post_form(
        ops,
        "/ops/dead-letters",
        "/ops/dead-letters/act",
        {"ids": [str(letter_id), "²", "9" * 30], "action": "discard", "note": "duplicate"},
    )
    assert kept.status_code == 303
    with database.session() as session:
        assert session.get(DeadLetter, letter_id).status == "discarded"  # type: ignore[union-attr]


def test_a_refused_sign_in_keeps_the_typed_username_visible(anonymous: Any, database: Database) -> None:
    page = anonymous.get("/ops/login")
    answer = anonymous.post(
        "/ops/login",
        data={"username": "admin\u202enimda", "password": "wrong", "csrf_token": csrf_token(page.text)},
    )
    assert answer.status_code == 401
    with database.session() as session:
        operators = list(session.scalars(select(OpsAuditEntry.operator)))
    assert operators == ["admin\\u202enimda"]
