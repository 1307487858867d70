"""The HTML form (`POST /register`) under hypothesis-generated posts, through the Flask test client.

Bodies of every shape a browser, a bot or a broken proxy sends: any field names and values (with
the form's own fields, a real or forged CSRF token, the honeypot, a submission id, repeated fields),
raw bytes that are not UTF-8 or not url-encoding at all, and other content types. The answer is
never a 500: it is the thank-you page (303 to /thanks/<uuid>), the form again with each refused field
marked (422), or a page that says in words what went wrong (400, 413, 415).
"""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from app.form import FIELD_NAMES, HONEYPOT_FIELD, SUBMISSION_FIELD
from app.i18n import TEXT
from tests.fuzz.budget import PROPERTY_EXAMPLES

FORM = settings(
    # Each case opens the form and posts it (a few ms each): a fifth of the pure properties' budget.
    max_examples=max(20, PROPERTY_EXAMPLES // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID = {
    "email": "hanako@example.com",
    "last_name": "山田",
    "first_name": "花子",
    "last_name_kana": "ヤマダ",
    "first_name_kana": "ハナコ",
    "phone": "090-1234-5678",
    "birth_date": "1990-04-01",
    "postal_code": "150-0001",
    "address": "東京都渋谷区神宮前1-1-1",
    "gender": "female",
    "accepts_marketing": "yes",
}
# What a URL-encoded body can carry: any text but lone surrogates (not encodable as UTF-8).
CHARACTERS = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from("\x00\x85\u200b\u202e\u2028\ufeff\ufffd\uff71\uff9e\u3000%&=+;"),
)
VALUES = st.one_of(st.text(CHARACTERS, max_size=30), st.text(CHARACTERS, min_size=80, max_size=400))
NAMES = st.one_of(
    st.sampled_from([*FIELD_NAMES, "csrf_token", "locale", SUBMISSION_FIELD, HONEYPOT_FIELD]),
    st.text(CHARACTERS, max_size=12),
)
FIELDS = st.lists(st.tuples(NAMES, VALUES), max_size=8)  # a list: a name may come twice

PROBLEM_MESSAGES = {
    html.escape(message, quote=False)
    for language in TEXT.values()
    for key, message in language.items()
    if key.endswith("_problem")
}


def token(client: Any) -> str:
    page = client.get("/").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def assert_a_clear_answer(client: Any, response: Any) -> None:
    """The thanks page, the form with its errors, or a page naming the problem; never a 500."""
    status = response.status_code
    event(f"answered {status}")
    assert status in (303, 400, 413, 415, 422), status
    if status == 303:
        location = response.headers["Location"]
        reference = re.fullmatch(r"/thanks/([0-9a-f-]{36})\?lang=(ja|en)", location)
        assert reference is not None, location
        uuid.UUID(reference.group(1))
        assert client.get(location).status_code == 200
        return
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    if status == 422:
        assert 'role="alert"' in page and 'aria-invalid="true"' in page
    else:
        assert any(message in page for message in PROBLEM_MESSAGES), page[:2000]


@FORM
@given(
    fields=FIELDS, base=st.sampled_from(["valid", "empty"]), csrf=st.sampled_from(["real", "forged", "none"])
)
def test_any_fields_get_a_clear_answer(
    client: Any, fields: list[tuple[str, str]], base: str, csrf: str
) -> None:
    posted: list[tuple[str, str]] = list(VALID.items()) if base == "valid" else []
    if csrf == "real":
        posted.append(("csrf_token", token(client)))
    elif csrf == "forged":
        posted.append(("csrf_token", "forged." + "x" * 40))
    posted.extend(fields)
    response = client.post(
        "/register", data=MultiDict(posted), content_type="application/x-www-form-urlencoded"
    )
    assert_a_clear_answer(client, response)
    if csrf != "real":
        assert response.status_code in (400, 413)


@FORM
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.sampled_from([b"email=", b"%", b"%zz", b"%ff%fe", b"&", b"=", b"+", b"%00", b"\xed\xa0\x80"])
        ).map(b"".join),
    ),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "multipart/form-data; boundary=fuzz",
            "multipart/form-data",
            "text/plain",
            "application/json",
            None,
        ]
    ),
)
def test_any_bytes_get_a_clear_answer(client: Any, body: bytes, content_type: str | None) -> None:
    # The real token first, so a body that happens to parse reaches validation.
    prefix = f"csrf_token={token(client)}&".encode() if content_type and "urlencoded" in content_type else b""
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/register", data=prefix + body, headers=headers)
    assert_a_clear_answer(client, response)
