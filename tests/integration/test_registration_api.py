"""POST/GET /api/registrations as the README says: validation, idempotency, nothing half-written."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registrations.database import Database
from registrations.models import OutboxMessage, Registration, SyncStep

MINIMAL = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada"}
FULL = {
    "email": "  Hanako.Yamada@Example.COM ",
    "first_name": "花子",
    "last_name": "山田",
    "first_name_kana": "ﾊﾅｺ",
    "last_name_kana": "ヤマダ",
    "phone": "090-1234-5678",
    "birth_date": "1990-04-01",
    "postal_code": "1500001",
    "address": "東京都渋谷区神宮前1-1-1",
    "gender": "female",
    "accepts_marketing": True,
    "locale": "en",
}


def counts(database: Database) -> tuple[int, int, int]:
    with database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Registration)) or 0,
            session.scalar(select(func.count()).select_from(SyncStep)) or 0,
            session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
        )


def test_minimal_body_is_accepted_durably(client: Any, database: Database) -> None:
    response = client.post("/api/registrations", json=MINIMAL)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"id", "status", "status_url"}
    assert body["status"] == "accepted"
    assert response.headers["Location"] == body["status_url"] == f"/api/registrations/{body['id']}"
    assert counts(database) == (1, 5, 1)

    status = client.get(body["status_url"])
    assert status.status_code == 200
    document = status.get_json()
    assert document["id"] == body["id"]
    assert set(document["steps"]) == {"shopify", "smaregi", "hubspot", "email", "consent"}
    # Every step waits for the worker, but consent's: nothing is decided yet (double opt-in).
    assert {system: step["state"] for system, step in document["steps"].items()} == {
        "shopify": "pending",
        "smaregi": "pending",
        "hubspot": "pending",
        "email": "pending",
        "consent": "succeeded",
    }
    assert "hanako" not in json.dumps(document).lower()


def test_full_body_is_normalised(client: Any, database: Database) -> None:
    response = client.post("/api/registrations", json=FULL)
    assert response.status_code == 202, response.get_json()
    with database.session() as session:
        registration = session.get(Registration, response.get_json()["id"])
        assert registration is not None
        assert registration.email == "hanako.yamada@example.com"
        assert registration.first_name_kana == "ハナコ"  # half-width katakana made full-width
        assert registration.phone == "+819012345678"
        assert registration.postal_code == "150-0001"
        assert registration.birth_date == date(1990, 4, 1)
        assert registration.accepts_marketing is True
        assert registration.locale == "en"
        assert registration.source == "api"


TOMORROW = (date.today() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "a" * 250 + "@example.com"),
        ("email", None),
        ("first_name", ""),
        ("first_name", "x" * 86),
        ("last_name", "   "),
        ("last_name", 42),
        ("first_name_kana", "はなこ"),
        ("last_name_kana", "Yamada"),
        ("last_name_kana", "ア" * 86),
        ("last_name_kana", "ㇰㇱ"),
        ("phone", "12"),
        ("phone", "not a phone"),
        ("birth_date", TOMORROW),
        ("birth_date", "1990-13-01"),
        ("birth_date", "01/04/1990"),
        ("birth_date", "1850-01-01"),
        ("postal_code", "12-345"),
        ("postal_code", "١٥٠٠٠٠١"),
        ("address", "x" * 256),
        ("address", "line\x00break"),
        ("gender", "robot"),
        ("accepts_marketing", "perhaps"),
        ("locale", "fr"),
        ("favourite_colour", "blue"),
    ],
)
def test_every_field_is_rejected_by_name(client: Any, database: Database, field: str, value: Any) -> None:
    response = client.post("/api/registrations", json={**MINIMAL, field: value})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert field in errors and errors[field] and all(isinstance(m, str) for m in errors[field])
    assert counts(database) == (0, 0, 0)


@pytest.mark.parametrize("missing", ["email", "first_name", "last_name"])
def test_required_fields(client: Any, database: Database, missing: str) -> None:
    body = {k: v for k, v in MINIMAL.items() if k != missing}
    response = client.post("/api/registrations", json=body)
    assert response.status_code == 422
    assert missing in response.get_json()["errors"]
    assert counts(database) == (0, 0, 0)


def test_malformed_json_is_400(client: Any, database: Database) -> None:
    response = client.post("/api/registrations", data='{"email": ', content_type="application/json")
    assert response.status_code == 400
    assert "_request" in response.get_json()["errors"]
    assert counts(database) == (0, 0, 0)


def test_a_json_array_is_422(client: Any, database: Database) -> None:
    response = client.post("/api/registrations", json=[MINIMAL])
    assert response.status_code == 422
    assert counts(database) == (0, 0, 0)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(client: Any, database: Database, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/registrations", data=json.dumps(MINIMAL), headers=headers)
    assert response.status_code == 415
    assert counts(database) == (0, 0, 0)


def test_oversize_body_is_413(client: Any, database: Database) -> None:
    body = {**MINIMAL, "address": "x" * 20_000}
    response = client.post("/api/registrations", json=body)
    assert response.status_code == 413
    assert "_request" in response.get_json()["errors"]
    assert counts(database) == (0, 0, 0)


def test_same_idempotency_key_twice_is_one_registration(client: Any, database: Database) -> None:
    headers = {"Idempotency-Key": "form-7f3a"}
    first = client.post("/api/registrations", json=MINIMAL, headers=headers)
    second = client.post("/api/registrations", json=MINIMAL, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] == second.get_json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert counts(database) == (1, 5, 1)


def test_same_key_after_normalisation_is_the_same_body(client: Any, database: Database) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/api/registrations", json=MINIMAL, headers=headers)
    again = client.post(
        "/api/registrations", json={**MINIMAL, "email": " HANAKO@example.com"}, headers=headers
    )
    assert first.get_json()["id"] == again.get_json()["id"]
    assert counts(database) == (1, 5, 1)


def test_same_key_with_another_body_is_409(client: Any, database: Database) -> None:
    headers = {"Idempotency-Key": "k-2"}
    assert client.post("/api/registrations", json=MINIMAL, headers=headers).status_code == 202
    conflict = client.post("/api/registrations", json={**MINIMAL, "first_name": "Taro"}, headers=headers)
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.get_json()["errors"]
    assert counts(database) == (1, 5, 1)


def test_a_bad_idempotency_key_is_refused(client: Any, database: Database) -> None:
    response = client.post("/api/registrations", json=MINIMAL, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert counts(database) == (0, 0, 0)


def test_unknown_registration_is_404(client: Any) -> None:
    assert client.get("/api/registrations/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/api/registrations/not-a-uuid").status_code == 404


def test_disabled_systems_are_skipped_from_the_start(make_settings: Any, database: Database) -> None:
    from app import create_app

    settings = make_settings(SYNC_HUBSPOT_ENABLED="false", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    client = create_app(settings, database=database).test_client()
    body = client.post("/api/registrations", json=MINIMAL).get_json()
    steps = client.get(body["status_url"]).get_json()["steps"]
    assert steps["hubspot"]["state"] == "skipped"
    assert steps["shopify"]["state"] == "pending"


def test_openapi_is_generated_from_the_schemas(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    registration = spec["components"]["schemas"]["Registration"]
    assert set(registration["required"]) == {"email", "first_name", "last_name"}
    assert registration["properties"]["first_name"]["maxLength"] == 85
    assert "202" in spec["paths"]["/api/registrations"]["post"]["responses"]


def test_a_method_not_allowed_names_the_allowed_ones(client: Any) -> None:
    response = client.open("/api/registrations", method="TRACE")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "OPTIONS"}
    assert response.get_json() == {"errors": {"_request": ["Method not allowed."]}}


def _nulls(node: Any, path: str = "") -> list[str]:
    """Where a keyword of the document is null (invalid: `format: null` made validators and client
    generators refuse it). A nullable enum lists null among its values, as OpenAPI 3.0 requires."""
    if isinstance(node, dict):
        return [
            found for key, value in node.items() if key != "enum" for found in _nulls(value, f"{path}/{key}")
        ]
    if isinstance(node, list):
        return [found for index, value in enumerate(node) for found in _nulls(value, f"{path}/{index}")]
    return [path] if node is None else []


def test_openapi_states_the_birth_date_format_and_has_no_null_keywords(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["schemas"]["Registration"]["properties"]["birth_date"]["format"] == "date"
    assert _nulls(spec) == []


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")  # the test settings point the broker at a closed port
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": True, "broker": False}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=100),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from([*FULL, "extra"]), json_values, max_size=8) | json_values)
def test_never_a_500_and_never_half_written(client: Any, database: Database, body: Any) -> None:
    before = counts(database)
    response = client.post("/api/registrations", data=json.dumps(body), content_type="application/json")
    assert response.status_code in {202, 400, 422}
    after = counts(database)
    if response.status_code == 202:
        assert after == (before[0] + 1, before[1] + 4, before[2] + 1)
    else:
        assert after == before
        assert response.get_json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"email": ' + "[" * 3000 + "]" * 3000 + "}",
        '"just a string"',
        "null",
        "\ufeff{}",
    ],
)
def test_odd_json_is_a_client_error(client: Any, database: Database, body: str) -> None:
    response = client.post("/api/registrations", data=body.encode(), content_type="application/json")
    assert response.status_code in {400, 422}
    assert response.get_json()["errors"]
    assert counts(database) == (0, 0, 0)


@pytest.mark.parametrize("email", ["a@localhost", "ab@[127.0.0.1]", "a@-example.com", "a@example..com"])
def test_addresses_the_shop_would_refuse_are_refused_now(client: Any, database: Database, email: str) -> None:
    response = client.post("/api/registrations", json={**MINIMAL, "email": email})
    assert response.status_code == 422 and "email" in response.get_json()["errors"]
