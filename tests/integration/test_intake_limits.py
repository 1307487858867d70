"""The public intake is rate limited per client in Redis, and concurrent retries stay one registration."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import Registration

MINIMAL = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada"}


def test_too_many_requests_is_429_and_shared_through_redis(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(
        INTAKE_RATE_LIMIT="3/minute", REDIS_URL=clean_redis, CELERY_BROKER_URL=clean_redis
    )
    # Two web processes behind one load balancer: the limit is counted in Redis, not per process.
    first_web = create_app(settings, database=database).test_client()
    second_web = create_app(settings, database=database).test_client()
    answers = [
        web.post("/api/registrations", json={**MINIMAL, "email": f"r{i}@example.com"}).status_code
        for i, web in enumerate([first_web, second_web, first_web, second_web])
    ]
    assert answers == [202, 202, 202, 429]
    limited = second_web.post("/api/registrations", json=MINIMAL)
    assert limited.status_code == 429
    assert "_request" in limited.get_json()["errors"]
    assert int(limited.headers["Retry-After"]) > 0
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Registration)) == 3
    # Another client address has its own allowance.
    other = first_web.post("/api/registrations", json=MINIMAL, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other.status_code == 202
    # An accepted registration tells nobody to wait (only the refusal carries Retry-After).
    assert "Retry-After" not in other.headers and "X-RateLimit-Remaining" in other.headers
    # Status reads are not the public write endpoint and are not limited by it.
    assert first_web.get("/healthz").status_code == 200


def test_concurrent_retries_with_one_key_make_one_registration(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    web = create_app(settings, database=database)

    def post(_: int) -> tuple[int, str]:
        response = web.test_client().post(
            "/api/registrations", json=MINIMAL, headers={"Idempotency-Key": "race-1"}
        )
        return response.status_code, response.get_json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, range(16)))
    assert {status for status, _ in results} == {202}
    assert len({registration_id for _, registration_id in results}) == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Registration)) == 1


def test_readyz_is_ready_with_a_real_broker(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(REDIS_URL=clean_redis, CELERY_BROKER_URL=clean_redis)
    response = create_app(settings, database=database).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": True, "broker": True}


def test_behind_a_trusted_proxy_each_client_has_its_own_allowance(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(
        INTAKE_RATE_LIMIT="1/minute",
        TRUSTED_PROXY_COUNT="1",
        REDIS_URL=clean_redis,
        CELERY_BROKER_URL=clean_redis,
    )
    web = create_app(settings, database=database).test_client()

    def post(client_ip: str, email: str) -> int:
        headers = {"X-Forwarded-For": client_ip}
        return int(
            web.post("/api/registrations", json={**MINIMAL, "email": email}, headers=headers).status_code
        )

    assert post("198.51.100.1", "a@example.com") == 202
    assert post("198.51.100.2", "b@example.com") == 202  # same proxy address, another client
    assert post("198.51.100.1", "c@example.com") == 429
