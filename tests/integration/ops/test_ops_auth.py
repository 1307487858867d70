"""Who may use the ops console: a sign-in with OPS_USERNAME / OPS_PASSWORD, a CSRF token on every POST,
a rate-limited sign-in form, a sign-out, and an audit row for each sign-in attempt."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app import create_app
from config.settings import ConfigError, Settings
from registrations.database import Database
from registrations.models import DeadLetter, OpsAuditEntry
from tests.integration.ops.conftest import OPS_PASSWORD, OPS_USERNAME, Seeder, csrf_token, post_form, sign_in

PAGES = ["/ops/", "/ops/find", "/ops/dead-letters", "/ops/dead-letters/1", "/ops/audit"]


def audit_rows(database: Database) -> list[OpsAuditEntry]:
    with database.session() as session:
        rows = list(session.scalars(select(OpsAuditEntry).order_by(OpsAuditEntry.id)))
        session.expunge_all()
        return rows


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_pages_redirect_to_the_sign_in(anonymous: Any, path: str) -> None:
    answer = anonymous.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/ops/login?next=")


def test_anonymous_post_is_refused_and_changes_nothing(
    anonymous: Any, seed: Seeder, database: Database
) -> None:
    letter_id = seed.dead(seed.registration(), "smaregi")
    page = anonymous.get("/ops/login")  # a session and a CSRF token, but no sign-in
    answer = anonymous.post(
        "/ops/dead-letters/act",
        data={"ids": str(letter_id), "action": "discard", "note": "x", "csrf_token": csrf_token(page.text)},
    )
    assert answer.status_code == 401
    with database.session() as session:
        letter = session.get(DeadLetter, letter_id)
        assert letter is not None and letter.status == "open"


def test_signing_in_leads_on_to_the_page_asked_for_and_is_audited(anonymous: Any, database: Database) -> None:
    asked = anonymous.get("/ops/dead-letters?status=open")
    login_page = anonymous.get(asked.headers["Location"])
    assert 'name="next" value="/ops/dead-letters?status=open"' in login_page.text
    answer = anonymous.post(
        "/ops/login",
        data={
            "username": OPS_USERNAME,
            "password": OPS_PASSWORD,
            "next": "/ops/dead-letters?status=open",
            "csrf_token": csrf_token(login_page.text),
        },
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/ops/dead-letters?status=open"
    assert anonymous.get("/ops/").status_code == 200
    [row] = audit_rows(database)
    assert (row.action, row.operator, row.client_address) == ("login", OPS_USERNAME, "192.0.2.10")


def test_next_never_leads_outside_the_console(anonymous: Any) -> None:
    page = anonymous.get("/ops/login?next=https://evil.example/")
    assert 'name="next" value="/ops/"' in page.text
    answer = anonymous.post(
        "/ops/login",
        data={
            "username": OPS_USERNAME,
            "password": OPS_PASSWORD,
            "next": "//evil.example/ops/",
            "csrf_token": csrf_token(page.text),
        },
    )
    assert answer.headers["Location"] == "/ops/"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        (OPS_USERNAME, "wrong password"),
        ("someone-else", OPS_PASSWORD),
        ("", ""),
        (OPS_USERNAME, OPS_PASSWORD + "x"),
    ],
)
def test_wrong_credentials_are_refused_with_401_revealing_nothing(
    anonymous: Any, database: Database, username: str, password: str
) -> None:
    answer = sign_in(anonymous, username, password, REMOTE_ADDR="198.51.100.7")
    assert answer.status_code == 401
    assert "do not match" in answer.text
    # Which half was wrong is not said, and nothing typed is echoed back.
    for typed in {username, password} - {""}:
        assert typed not in answer.text
    assert anonymous.get("/ops/").status_code == 302
    [row] = audit_rows(database)
    assert (row.action, row.operator, row.client_address) == ("login_refused", username, "198.51.100.7")


def test_the_refusal_is_the_same_page_whichever_half_is_wrong(anonymous: Any) -> None:
    def refusal(username: str, password: str) -> str:
        body: str = sign_in(anonymous, username, password).text
        return body.replace(csrf_token(body), "TOKEN")

    assert refusal(OPS_USERNAME, "wrong") == refusal("wrong", OPS_PASSWORD)


def test_a_post_without_the_csrf_token_is_refused_with_400(anonymous: Any, ops: Any, seed: Seeder) -> None:
    anonymous.get("/ops/login")
    no_token = anonymous.post("/ops/login", data={"username": OPS_USERNAME, "password": OPS_PASSWORD})
    assert no_token.status_code == 400
    assert anonymous.get("/ops/").status_code == 302  # not signed in

    letter_id = seed.dead(seed.registration(), "hubspot")
    for token in (
        None,
        "forged",
        csrf_token(anonymous.get("/ops/login").text),
    ):  # the last: another session's
        data = {"ids": str(letter_id), "action": "replay"} | ({"csrf_token": token} if token else {})
        assert ops.post("/ops/dead-letters/act", data=data).status_code == 400
    assert "open" in ops.get(f"/ops/dead-letters/{letter_id}").text


def test_sign_in_is_rate_limited_per_client(anonymous: Any, ops_app: Any) -> None:
    answers = [sign_in(anonymous, OPS_USERNAME, f"guess {n}").status_code for n in range(10)]
    assert answers == [401] * 10
    limited = sign_in(anonymous, OPS_USERNAME, OPS_PASSWORD)
    assert limited.status_code == 429
    assert "Too many" in limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another address has its own allowance (for another username: this one is blocked everywhere).
    other = ops_app.test_client()
    assert sign_in(other, "someone-else", "guess", REMOTE_ADDR="203.0.113.9").status_code == 401


def test_sign_out_ends_the_session(ops: Any, database: Database) -> None:
    answer = post_form(ops, "/ops/", "/ops/logout", {})
    assert answer.status_code == 303 and answer.headers["Location"] == "/ops/login"
    assert ops.get("/ops/").status_code == 302
    assert [row.action for row in audit_rows(database)] == ["login", "logout"]


def test_changing_the_password_ends_sessions_signed_in_under_the_old_one(
    ops: Any, make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    cookie = ops.get_cookie("session")
    assert cookie is not None and ops.get("/ops/").status_code == 200
    rotated = make_settings(OPS_USERNAME=OPS_USERNAME, OPS_PASSWORD="a new password", REDIS_URL=clean_redis)
    other = create_app(rotated, database=database).test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/ops/").status_code == 302


def test_production_refuses_to_start_without_ops_credentials(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    production = {
        "MEMBERSYNC_ENV": "production",
        "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
        "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0",
        "REDIS_URL": clean_redis,
    }
    with pytest.raises(ConfigError, match="OPS_USERNAME and OPS_PASSWORD"):
        create_app(make_settings(**production), database=database)
    with pytest.raises(ConfigError, match=r"^OPS_PASSWORD is shorter than 12 characters"):
        make_settings(**production, OPS_USERNAME="ops", OPS_PASSWORD="secret")
    configured = make_settings(**production, OPS_USERNAME="ops", OPS_PASSWORD="vX9#kLm2-qRt7wZp")
    assert create_app(configured, database=database).test_client().get("/ops/login").status_code == 200


def test_dev_mode_falls_back_to_ops_ops(make_settings: Callable[..., Settings], database: Database) -> None:
    client = create_app(make_settings(), database=database).test_client()
    assert sign_in(client, "ops", "ops").status_code == 303


# --- sessions end on the server -----------------------------------------------------------------


def _session_id(app: Any, cookie: str) -> str:
    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    session_id: str = data["ops_session"]
    return session_id


def test_a_copied_cookie_is_refused_after_sign_out(
    ops: Any, ops_app: Any, ops_settings: Settings, database: Database
) -> None:
    cookie = ops.get_cookie("session")
    assert cookie is not None
    # The same cookie in another browser, on this process and on another web process (same Redis).
    thief = ops_app.test_client()
    other_process = create_app(ops_settings, database=database).test_client()
    for client in (thief, other_process):
        client.set_cookie("session", cookie.value)
        assert client.get("/ops/").status_code == 200, "a signed-in session works on every process"

    assert post_form(ops, "/ops/", "/ops/logout", {}).status_code == 303

    for client in (thief, other_process):
        answer = client.get("/ops/")
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/ops/login")
        assert client.post("/ops/logout").status_code == 401  # no CSRF needed to be refused
    assert ops.get("/ops/").status_code == 302


def test_redis_holds_only_a_keyed_hash_of_the_session_id(ops: Any, ops_app: Any, clean_redis: str) -> None:
    import redis

    cookie = ops.get_cookie("session")
    assert cookie is not None
    session_id = _session_id(ops_app, cookie.value)
    keys = [key.decode() for key in redis.Redis.from_url(clean_redis).keys("membersync:ops-session:*")]
    assert len(keys) == 1
    assert session_id not in keys[0]
    assert keys[0] != "membersync:ops-session:" + hashlib.sha256(session_id.encode()).hexdigest()
    assert 0 < redis.Redis.from_url(clean_redis).ttl(keys[0]) <= 12 * 3600


def test_a_session_unknown_to_the_server_is_refused(ops: Any, ops_app: Any, clean_redis: str) -> None:
    import redis

    redis.Redis.from_url(clean_redis).flushdb()  # the server forgot it (or never opened it)
    assert ops.get("/ops/").status_code == 302


def test_without_redis_a_sign_in_opens_only_a_short_session(
    make_settings: Callable[..., Settings], database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        OPS_USERNAME=OPS_USERNAME, OPS_PASSWORD=OPS_PASSWORD, REDIS_URL="redis://127.0.0.1:1/0"
    )
    client = create_app(settings, database=database).test_client()
    # The console is needed most when Redis is down (its overview says so): it still opens...
    assert sign_in(client, OPS_USERNAME, OPS_PASSWORD).status_code == 303
    assert client.get("/ops/").status_code == 200
    # ...for a quarter of an hour, since the server cannot end it early.
    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr("app.ops.auth.time.time", lambda: later)
    assert client.get("/ops/").status_code == 302
    # The throttle counts in process memory meanwhile: guessing is still limited.
    answers = [sign_in(client, OPS_USERNAME, f"guess {n}").status_code for n in range(11)]
    assert answers == [401] * 10 + [429]


def test_a_session_the_store_cannot_confirm_is_refused(ops: Any, ops_app: Any) -> None:
    from app.ops.auth import SESSIONS_EXTENSION
    from app.ops.sessions import RedisStore

    assert ops.get("/ops/").status_code == 200
    registry = ops_app.extensions[SESSIONS_EXTENSION]
    registry.store = RedisStore("redis://127.0.0.1:1/0")  # Redis stops answering
    assert ops.get("/ops/").status_code == 302


# --- sign-in throttle: per client address and per username ----------------------------------------


def test_sign_in_is_throttled_per_username_from_any_address(anonymous: Any, ops_app: Any) -> None:
    for n in range(10):
        assert (
            sign_in(anonymous, OPS_USERNAME, f"guess {n}", REMOTE_ADDR=f"198.51.100.{n + 1}").status_code
            == 401
        )
    limited = sign_in(ops_app.test_client(), OPS_USERNAME, OPS_PASSWORD, REMOTE_ADDR="203.0.113.50")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another username is not held up by this one's failures.
    assert sign_in(ops_app.test_client(), "someone", "x", REMOTE_ADDR="203.0.113.51").status_code == 401


def test_a_successful_sign_in_is_not_counted(anonymous: Any, ops_app: Any) -> None:
    for _ in range(15):
        assert sign_in(ops_app.test_client(), OPS_USERNAME, OPS_PASSWORD).status_code == 303
    assert [sign_in(anonymous, OPS_USERNAME, f"guess {n}").status_code for n in range(10)] == [401] * 10


def test_the_throttle_is_shared_by_every_web_process(
    ops_settings: Settings, database: Database, clean_redis: str
) -> None:
    import redis

    first, second = (create_app(ops_settings, database=database).test_client() for _ in range(2))
    for n in range(5):
        assert sign_in(first, OPS_USERNAME, f"guess {n}").status_code == 401
        assert sign_in(second, OPS_USERNAME, f"guess {n}").status_code == 401
    assert sign_in(first, OPS_USERNAME, OPS_PASSWORD).status_code == 429
    # Redis names neither the address nor the username, only keyed hashes of them.
    keys = b" ".join(redis.Redis.from_url(clean_redis).keys("*")).decode()
    assert "membersync:auth-failures" in keys
    assert "127.0.0.1" not in keys and OPS_USERNAME not in keys
