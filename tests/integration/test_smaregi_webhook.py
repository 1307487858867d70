"""`POST /webhooks/smaregi/<token>` (and the header form): the shared secret, the contract, the body's
validation, 200 with the ids queued, its own limit, and the path secret kept out of the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app, limits
from app.webhooks import EVENT_HEADER, TOKEN_HEADER
from config.observability import scrub_breadcrumb, scrub_event
from config.settings import Settings
from registrations.database import Database
from tasks.directory import REREAD_TASK
from tasks.factory import create_celery_app
from tasks.mirror import TRANSACTIONS_TASK

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


def post_to_path(client: Any, token: str = TOKEN, body: Any = EVENT, *, event: str = "pos:customers") -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        f"/webhooks/smaregi/{token}",
        data=data,
        headers={EVENT_HEADER: event},
        content_type="application/json",
    )


@pytest.fixture
def queued() -> Queued:
    return Queued()


@pytest.fixture
def webhook(make_settings: Callable[..., Settings], database: Database, queued: Queued) -> Any:
    return webhook_client(make_settings, database, queued)


def test_an_event_to_the_path_is_answered_200_empty_and_its_ids_queued(webhook: Any, queued: Queued) -> None:
    response = post_to_path(webhook, body={**EVENT, "customerIds": ["12", 7, "12"]})
    assert response.status_code == 200 and response.data == b""
    assert queued.tasks == [(REREAD_TASK, (["12", "7"],))]  # ids only, deduplicated


def test_the_header_form_still_works(webhook: Any, queued: Queued) -> None:
    response = post(webhook)
    assert response.status_code == 200 and response.data == b""
    assert queued.tasks == [(REREAD_TASK, (["12", "7"],))]


@pytest.mark.parametrize("token", ["wrong", TOKEN + "x", TOKEN[:-1], "é" * 30, "x" * 5000])
def test_a_wrong_path_token_is_403_and_queues_nothing(webhook: Any, queued: Queued, token: str) -> None:
    assert post_to_path(webhook, token).status_code == 403
    assert queued.tasks == []


@given(token=st.text(max_size=600))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_path_token_but_the_right_one_is_ever_accepted_or_a_500(
    webhook: Any, queued: Queued, token: str
) -> None:
    from urllib.parse import quote

    response = post_to_path(webhook, quote(token, safe=""))
    if token == TOKEN:
        assert response.status_code == 200
    else:  # 403, or a routing answer (404; 308 where werkzeug merges an encoded slash): never 2xx or 5xx
        assert 300 <= response.status_code < 500
        assert queued.tasks == []


@pytest.mark.parametrize("contract", ["other-contract", "", None, 1])
def test_an_event_for_another_contract_is_403_and_queues_nothing(
    webhook: Any, queued: Queued, contract: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = {**EVENT, "contractId": contract, "customerIds": ["98765"]}
    with caplog.at_level(logging.WARNING):
        assert post_to_path(webhook, body=body).status_code == 403
        assert post(webhook, body).status_code == 403
    assert queued.tasks == []
    assert caplog.records and all("98765" not in record.getMessage() for record in caplog.records)


def test_a_bulk_event_is_split_into_tasks_of_at_most_500_ids(webhook: Any, queued: Queued) -> None:
    ids = [str(number) for number in range(1, 1202)]
    assert (
        post_to_path(webhook, body={**EVENT, "action": "bulk-update", "customerIds": ids}).status_code == 200
    )
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
    assert post(client, token="").status_code == 403
    assert post_to_path(client, "anything").status_code == 403
    assert post_to_path(client, TOKEN).status_code == 403
    assert queued.tasks == []


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
    assert webhook.get(f"/webhooks/smaregi/{TOKEN}").status_code == 405
    assert queued.tasks == []


@pytest.mark.parametrize("data", ["{not json", "", '{"contractId": ', "[" * 5000, b"\xff\xfe{}"])
def test_malformed_bodies_are_400(webhook: Any, queued: Queued, data: str | bytes) -> None:
    response = webhook.post(
        f"/webhooks/smaregi/{TOKEN}",
        data=data,
        headers={EVENT_HEADER: "pos:customers"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert queued.tasks == []


def test_a_down_broker_is_503_with_retry_after(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    client = webhook_client(make_settings, database, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    response = post(client)
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_the_webhook_does_not_share_the_public_intake_limit(
    make_settings: Callable[..., Settings], database: Database, queued: Queued
) -> None:
    client = webhook_client(make_settings, database, queued, INTAKE_RATE_LIMIT="60/minute")
    assert [post_to_path(client).status_code for _ in range(100)] == [200] * 100
    assert len(queued.tasks) == 100
    assert client.post("/api/registrations", json={}).status_code != 429  # the public budget is untouched


def test_the_webhook_has_its_own_limit_per_token(
    make_settings: Callable[..., Settings],
    database: Database,
    queued: Queued,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "WEBHOOK_LIMIT", "3/minute")
    client = webhook_client(make_settings, database, queued, INTAKE_RATE_LIMIT="off")
    # Someone spraying wrong tokens spends only their own budgets, never the real token's.
    assert [post_to_path(client, f"guess{n}").status_code for n in range(5)] == [403] * 5
    assert [post_to_path(client).status_code for _ in range(3)] == [200] * 3
    assert post(client).status_code == 429  # the header form shares the same token's budget


def test_the_path_token_is_not_in_the_log_records_nor_sentry_urls(
    webhook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        post_to_path(webhook, body={**EVENT, "contractId": "other"})
        post_to_path(webhook, TOKEN + "-wrong")
        # The request lines werkzeug's development server and gunicorn's access log write.
        logging.getLogger("werkzeug").info('"%s" %s %s', f"POST /webhooks/smaregi/{TOKEN} HTTP/1.1", 200, "-")
        logging.getLogger("gunicorn.access").info(
            '%(h)s "%(m)s %(U)s" %(s)s',
            {"h": "10.0.0.1", "m": "POST", "U": f"/webhooks/smaregi/{TOKEN}", "s": 200},
        )
    lines = [record.getMessage() for record in caplog.records]
    assert sum("/webhooks/smaregi/***" in line for line in lines) == 2
    assert all(TOKEN not in line for line in lines)
    url = f"https://members.example/webhooks/smaregi/{TOKEN}"
    crumb = scrub_breadcrumb({"category": "http", "data": {"url": url}, "message": f"POST {url}"})
    event = scrub_event({"request": {"method": "POST", "url": url}})
    assert TOKEN not in json.dumps(crumb) + json.dumps(event)
    assert event["request"]["url"] == "https://members.example/webhooks/smaregi/***"


TRANSACTIONS = {
    "contractId": "sandbox",
    "event": "pos:transactions",
    "action": "created",
    "transactionHeadIds": ["25", "26"],
}


def test_a_transactions_event_queues_its_transaction_ids_for_the_members_they_moved(
    webhook: Any, queued: Queued
) -> None:
    response = post_to_path(
        webhook, body={**TRANSACTIONS, "transactionHeadIds": ["25", 26, "25"]}, event="pos:transactions"
    )

    assert response.status_code == 200 and response.data == b""
    assert queued.tasks == [(TRANSACTIONS_TASK, (["25", "26"],))]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TRANSACTIONS, "transactionHeadIds": []}, "transactionHeadIds"),
        ({**TRANSACTIONS, "transactionHeadIds": ["25; DROP"]}, "transactionHeadIds"),
        (
            {key: value for key, value in TRANSACTIONS.items() if key != "transactionHeadIds"},
            "transactionHeadIds",
        ),
        ({**TRANSACTIONS, "action": ""}, "action"),
        # A transactions event names transactions, not customers.
        ({**EVENT, "event": "pos:transactions"}, "transactionHeadIds"),
    ],
)
def test_a_transactions_event_without_its_ids_is_422(
    webhook: Any, queued: Queued, body: Any, field: str
) -> None:
    response = post_to_path(webhook, body=body, event="pos:transactions")

    assert response.status_code == 422 and field in response.get_json()["errors"]
    assert queued.tasks == []


def test_an_event_we_do_not_subscribe_to_is_400(webhook: Any, queued: Queued) -> None:
    response = post_to_path(webhook, body={**EVENT, "event": "pos:products"}, event="pos:products")

    assert response.status_code == 400 and queued.tasks == []
