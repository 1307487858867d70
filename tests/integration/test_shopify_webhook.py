"""`POST /webhooks/shopify`: the signature over the raw body (both secrets during a rotation), the
topics, a delivery recorded once, stale deliveries dropped, and nothing of the body but ids kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.shopify_webhooks import signature
from config.settings import Settings
from registrations.database import Database
from registrations.models import Change
from registrations.states import ChangeState
from tasks.changes import CUSTOMER_CHANGED_TASK
from tasks.factory import create_celery_app

SECRET = "shpss_current-client-secret-0123456789"
OLD_SECRET = "shpss_previous-client-secret-9876543210"
CUSTOMER = "gid://shopify/Customer/7001"


class Queued:
    """What the web app sent to the broker."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, Any]] = []

    def __call__(self, name: str, args: Any = None, **_options: Any) -> None:
        self.tasks.append((name, args))


def body(updated_at: str = "2026-12-06T10:00:00+09:00", **extra: Any) -> bytes:
    document = {
        "id": 7001,
        "admin_graphql_api_id": CUSTOMER,
        "email": "hanako@example.com",
        "first_name": "Hanako",
        "last_name": "Yamada",
        "updated_at": updated_at,
        **extra,
    }
    return json.dumps(document, ensure_ascii=False).encode()


def post(
    client: Any,
    raw: bytes,
    *,
    secret: str | None = SECRET,
    webhook_id: str = "wh-1",
    topic: str = "customers/update",
    triggered_at: str = "2026-12-06T01:00:00Z",
    sign: bytes | None = None,
) -> Any:
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "sandbox.myshopify.com",
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": "ev-" + webhook_id,
        "X-Shopify-Triggered-At": triggered_at,
    }
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature(secret, raw if sign is None else sign)
    return client.post("/webhooks/shopify", data=raw, headers=headers, content_type="application/json")


@pytest.fixture
def queued() -> Queued:
    return Queued()


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings], database: Database, queued: Queued
) -> Callable[..., Any]:
    def build(**env: str) -> Any:
        from app import create_app

        settings = make_settings(**{"SHOPIFY_WEBHOOK_SECRET": SECRET, **env})
        celery = create_celery_app(settings, database, fail_fast=True)
        celery.send_task = queued  # type: ignore[method-assign]
        return create_app(settings, database=database, celery=celery).test_client()

    return build


def changes(database: Database) -> list[Change]:
    with database.session() as session:
        rows = list(session.scalars(select(Change).order_by(Change.id)))
        session.expunge_all()
        return rows


def test_a_valid_signature_is_accepted_and_only_ids_are_queued(
    make_client: Callable[..., Any], queued: Queued, database: Database
) -> None:
    response = post(make_client(), body())
    assert response.status_code == 200 and response.data == b""
    [change] = changes(database)
    assert (change.source, change.topic, change.subject, change.delivery_id) == (
        "shopify",
        "customers/update",
        CUSTOMER,
        "wh-1",
    )
    assert change.state == ChangeState.PENDING and change.queued_at is not None
    assert change.changed_at == datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    assert queued.tasks == [(CUSTOMER_CHANGED_TASK, (change.id,))]
    # Nothing of the body but the ids reaches the row or the broker.
    stored = json.dumps([str(getattr(change, column.name)) for column in Change.__table__.columns])
    assert "hanako" not in stored.lower() and "Yamada" not in stored and "Yamada" not in repr(queued.tasks)


@pytest.mark.parametrize(
    "case",
    ["tampered body", "wrong secret", "missing header", "signature of another body"],
)
def test_a_bad_signature_is_401_and_records_nothing(
    make_client: Callable[..., Any], queued: Queued, database: Database, case: str
) -> None:
    client = make_client()
    raw = body()
    if case == "tampered body":
        response = post(client, raw.replace(b"Yamada", b"Tanaka"), sign=raw)
    elif case == "wrong secret":
        response = post(client, raw, secret="shpss_someone-else")
    elif case == "missing header":
        response = post(client, raw, secret=None)
    else:
        response = post(client, raw, sign=body(updated_at="2026-12-07T00:00:00Z"))
    assert response.status_code == 401
    assert "X-Shopify-Hmac-Sha256" in response.get_json()["errors"]
    assert changes(database) == [] and queued.tasks == []


def test_the_previous_secret_is_accepted_during_a_rotation_and_not_after(
    make_client: Callable[..., Any], database: Database
) -> None:
    rotating = make_client(SHOPIFY_WEBHOOK_SECRET_PREVIOUS=OLD_SECRET)
    assert post(rotating, body(), secret=OLD_SECRET, webhook_id="old").status_code == 200
    assert post(rotating, body(), secret=SECRET, webhook_id="new").status_code == 200
    rotated = make_client()
    assert post(rotated, body(), secret=OLD_SECRET, webhook_id="late").status_code == 401
    assert [change.delivery_id for change in changes(database)] == ["old", "new"]


def test_without_a_configured_secret_every_delivery_is_refused(
    make_client: Callable[..., Any], database: Database
) -> None:
    response = post(make_client(SHOPIFY_WEBHOOK_SECRET=""), body(), secret="")
    assert response.status_code == 403
    assert "SHOPIFY_WEBHOOK_SECRET" in json.dumps(response.get_json())
    assert changes(database) == []


def test_a_replayed_webhook_id_is_processed_once(
    make_client: Callable[..., Any], queued: Queued, database: Database
) -> None:
    client = make_client()
    raw = body()
    for _ in range(3):
        assert post(client, raw, webhook_id="same").status_code == 200
    assert len(changes(database)) == 1
    assert len(queued.tasks) == 1


def test_a_stale_delivery_is_dropped(
    make_client: Callable[..., Any], queued: Queued, database: Database
) -> None:
    client = make_client()
    assert post(client, body("2026-12-06T12:00:00+09:00"), webhook_id="newer").status_code == 200
    # Shopify retries with the original payload hours later: an older updated_at than one already seen.
    assert post(client, body("2026-12-06T11:00:00+09:00"), webhook_id="older").status_code == 200
    newer, older = changes(database)
    assert newer.state == ChangeState.PENDING
    assert older.state == ChangeState.STALE and older.finished_at is not None
    assert [args for _, args in queued.tasks] == [(newer.id,)]


def test_other_topics_and_other_shops_are_answered_200_and_ignored(
    make_client: Callable[..., Any], queued: Queued, database: Database
) -> None:
    client = make_client()
    assert post(client, body(), topic="orders/create").status_code == 200
    assert post(client, b'{"id": 1}', topic="app/uninstalled").status_code == 200
    assert changes(database) == [] and queued.tasks == []


def test_a_signed_body_without_a_customer_id_is_422(
    make_client: Callable[..., Any], database: Database
) -> None:
    raw = json.dumps({"admin_graphql_api_id": "gid://shopify/Order/1"}).encode()
    assert post(make_client(), raw).status_code == 422
    assert changes(database) == []


def test_a_broker_that_is_down_still_answers_200_and_leaves_the_change_for_the_sweep(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    from app import create_app
    from registrations.changes import Changes

    settings = make_settings(SHOPIFY_WEBHOOK_SECRET=SECRET, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    client = create_app(settings, database=database).test_client()
    assert post(client, body()).status_code == 200
    [change] = changes(database)
    assert change.state == ChangeState.PENDING and change.queued_at is None
    # The same delivery retried by Shopify is queued again while the change still waits.
    assert Changes(database).receive(_delivery_of(change)).queue is True


def _delivery_of(change: Change) -> Any:
    from registrations.changes import Delivery

    return Delivery(change.source, change.topic, change.delivery_id, change.subject)
