"""`POST /webhooks/smaregi`: the shared secret, the body's validation, 202 with the ids queued."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app import create_app
from app.webhooks import EVENT_HEADER, TOKEN_HEADER
from config.settings import Settings
from registrations.database import Database
from tasks.directory import REREAD_TASK
from tasks.factory import create_celery_app

TOKEN = "a-long-shared-webhook-secret"
EVENT = {"contractId": "sandbox", "event": "pos:customers", "action": "edited", "customerIds": ["12", "7"]}


class Queued:
    """What the web app sent to the broker."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, Any]] = []

    def __call__(self, name: str, args: Any = None, **_options: Any) -> None:
        self.tasks.append((name, args))


def webhook_client(
    make_settings: Callable[..., Settings], database: Database, queued: Queued | None = None, **env: str
) -> Any:
    settings = make_settings(**{"SMAREGI_WEBHOOK_TOKEN": TOKEN, **env})
    celery = create_celery_app(settings, database, fail_fast=True)
    if queued is not None:
        celery.send_task = queued  # type: ignore[method-assign]
    return create_app(settings, database=database, celery=celery).test_client()


def post(client: Any, body: Any = EVENT, *, token: str | None = TOKEN, event: str = "pos:customers") -> Any:
    headers = {EVENT_HEADER: event}
    if token is not None:
        headers[TOKEN_HEADER] = token
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/webhooks/smaregi", data=data, headers=headers, content_type="application/json")


@pytest.fixture
def queued() -> Queued:
    return Queued()


@pytest.fixture
def webhook(make_settings: Callable[..., Settings], database: Database, queued: Queued) -> Any:
    return webhook_client(make_settings, database, queued)


def test_an_event_is_answered_202_and_its_ids_queued_for_a_reread(webhook: Any, queued: Queued) -> None:
    response = post(webhook, {**EVENT, "customerIds": ["12", 7, "12"]})
    assert response.status_code == 202 and response.get_json() == {"accepted": 2}
    assert queued.tasks == [(REREAD_TASK, (["12", "7"],))]  # ids only, deduplicated


def test_a_bulk_event_is_split_into_tasks_of_at_most_500_ids(webhook: Any, queued: Queued) -> None:
    ids = [str(number) for number in range(1, 1202)]
    assert post(webhook, {**EVENT, "action": "bulk-update", "customerIds": ids}).status_code == 202
    assert [len(args[0]) for _, args in queued.tasks] == [500, 500, 201]


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
def test_a_missing_or_wrong_token_is_401_and_queues_nothing(
    webhook: Any, queued: Queued, token: str | None
) -> None:
    response = post(webhook, token=token)
    assert response.status_code == 401
    assert TOKEN_HEADER in response.get_json()["errors"]
    assert queued.tasks == []


def test_without_a_configured_token_nobody_is_trusted(
    make_settings: Callable[..., Settings], database: Database, queued: Queued
) -> None:
    client = webhook_client(make_settings, database, queued, SMAREGI_WEBHOOK_TOKEN="")
    response = post(client, token="")
    assert response.status_code == 403 and queued.tasks == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EVENT, "action": "merged"}, "action"),
        ({k: v for k, v in EVENT.items() if k != "action"}, "action"),
        ({**EVENT, "customerIds": []}, "customerIds"),
        ({**EVENT, "customerIds": "12"}, "customerIds"),
        ({**EVENT, "customerIds": ["12", "../admin"]}, "customerIds"),
        ({**EVENT, "customerIds": [True]}, "customerIds"),
        ({**EVENT, "customerIds": [{"id": "1"}]}, "customerIds"),
        ([EVENT], "_request"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(webhook: Any, queued: Queued, body: Any, field: str) -> None:
    response = post(webhook, body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert field in errors and errors[field][0]
    assert queued.tasks == []


def test_malformed_requests_are_4xx_never_500(webhook: Any, queued: Queued) -> None:
    assert post(webhook, "{not json").status_code == 400
    assert post(webhook, event="pos:products").status_code == 400
    response = webhook.post(
        "/webhooks/smaregi", data="x", headers={TOKEN_HEADER: TOKEN, EVENT_HEADER: "pos:customers"}
    )
    assert response.status_code == 415
    assert webhook.get("/webhooks/smaregi").status_code == 405
    assert queued.tasks == []


def test_a_down_broker_is_503_with_retry_after(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    client = webhook_client(make_settings, database, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    response = post(client)
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_the_webhook_is_rate_limited_like_the_other_public_endpoints(
    make_settings: Callable[..., Settings], database: Database, queued: Queued
) -> None:
    client = webhook_client(make_settings, database, queued, INTAKE_RATE_LIMIT="2/minute")
    assert [post(client).status_code for _ in range(3)] == [202, 202, 429]
