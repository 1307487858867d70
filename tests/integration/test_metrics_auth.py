"""`/metrics` takes the ops login or METRICS_TOKEN, and guessing either ends in 429s: failures are
throttled per client address and per username, in the Redis every web process (and Flower) shares;
odd credentials are a 401, never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from config.settings import Settings
from registrations.database import Database

USERNAME, PASSWORD = "ops-lead", "vX9#kLm2-qRt7wZp"
TOKEN = "scrape-token-5f0c2b8e9a41d7c3"


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def metrics_settings(make_settings: Callable[..., Settings], clean_redis: str) -> Settings:
    return make_settings(
        OPS_USERNAME=USERNAME,
        OPS_PASSWORD=PASSWORD,
        METRICS_TOKEN=TOKEN,
        REDIS_URL=clean_redis,
        CELERY_BROKER_URL=clean_redis,
    )


@pytest.fixture
def app(metrics_settings: Settings, database: Database) -> Any:
    return create_app(metrics_settings, database=database)


def scrape(app: Any, headers: dict[str, str], address: str = "198.51.100.1") -> Any:
    return app.test_client().get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": address})


def test_100_wrong_passwords_end_in_429s(app: Any) -> None:
    answers = [scrape(app, basic(USERNAME, f"guess {n}")) for n in range(100)]
    assert [answer.status_code for answer in answers[:10]] == [401] * 10
    assert {answer.status_code for answer in answers[10:]} == {429}
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in answers[10:])
    # Blocked means blocked: the right pair is refused too, from this address and, for this
    # username, from any other.
    assert scrape(app, basic(USERNAME, PASSWORD)).status_code == 429
    assert scrape(app, basic(USERNAME, PASSWORD), address="203.0.113.7").status_code == 429
    # The token is per address only: another address still scrapes.
    assert scrape(app, bearer(TOKEN), address="203.0.113.7").status_code == 200


def test_100_wrong_tokens_end_in_429s(app: Any) -> None:
    answers = [scrape(app, bearer(f"guess-{n}")).status_code for n in range(100)]
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    assert scrape(app, bearer(TOKEN)).status_code == 429
    assert scrape(app, bearer(TOKEN), address="203.0.113.8").status_code == 200


def test_scrapes_with_the_right_credentials_are_never_counted(app: Any) -> None:
    for _ in range(30):
        assert scrape(app, bearer(TOKEN)).status_code == 200
        assert scrape(app, basic(USERNAME, PASSWORD)).status_code == 200
    assert [scrape(app, basic(USERNAME, "wrong")).status_code for _ in range(10)] == [401] * 10


def test_failures_add_up_across_web_processes_and_the_console(
    app: Any, metrics_settings: Settings, database: Database, clean_redis: str
) -> None:
    other_process = create_app(metrics_settings, database=database)
    for n in range(4):
        assert scrape(app, basic(USERNAME, "wrong"), address=f"198.51.100.{n + 10}").status_code == 401
        assert (
            scrape(other_process, basic(USERNAME, "wrong"), address=f"198.51.100.{n + 20}").status_code == 401
        )
    console = other_process.test_client()
    for n in range(2):
        page = console.get("/ops/login", environ_base={"REMOTE_ADDR": f"198.51.100.{n + 30}"})
        token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        refused = console.post(
            "/ops/login",
            data={"username": USERNAME, "password": "wrong", "csrf_token": token},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 30}"},
        )
        assert refused.status_code == 401
    assert scrape(app, basic(USERNAME, PASSWORD), address="203.0.113.9").status_code == 429
    keys = b" ".join(redis.Redis.from_url(clean_redis).keys("*")).decode()
    assert "198.51.100" not in keys and USERNAME not in keys, "Redis holds keyed hashes only"


ODD_HEADERS = [
    basic("ユーザー", "パスワード"),
    basic(USERNAME, "pässwörd"),
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xe9").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()},
    {"Authorization": "Basic !!!not-base64!!!"},
    {"Authorization": "Basic"},
    {"Authorization": "Digest username=ops"},
    {"Authorization": "Bearer"},
]


def test_odd_credentials_are_a_401(app: Any) -> None:
    for headers in ODD_HEADERS:
        answer = scrape(app, headers, address="203.0.113.20")
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"].startswith("Basic")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(username=st.text(max_size=40), password=st.text(max_size=40))
def test_any_credentials_are_answered_401_or_429_never_5xx(app: Any, username: str, password: str) -> None:
    raw = f"{username}:{password}".encode("utf-8", "surrogatepass")
    header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    assert scrape(app, header).status_code in {401, 429}
