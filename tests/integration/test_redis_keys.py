"""What Redis holds about a person or a client is a keyed hash: the per-email lock and the intake's
rate limit name neither the address nor a plain digest that a list of addresses would reverse."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import redis

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.locks import RedisPersonLocks

EMAIL = "Hanako.Yamada@Example.com"


def test_the_email_lock_key_is_a_keyed_hash(make_settings: Callable[..., Settings], clean_redis: str) -> None:
    settings = make_settings(REDIS_URL=clean_redis)
    client = redis.Redis.from_url(clean_redis)
    locks = RedisPersonLocks(client, key=settings.derive_key("email-lock"), timeout=5, wait=1)
    with locks.hold(EMAIL):
        [key] = [key.decode() for key in client.keys("*lock*")]
    plain = hashlib.sha256(EMAIL.strip().lower().encode()).hexdigest()
    assert "hanako" not in key.lower() and plain not in key
    # Every worker derives the same key, so they contend for one lock; another SECRET_KEY, another name.
    again = RedisPersonLocks(client, key=settings.derive_key("email-lock"), timeout=5, wait=1)
    other = make_settings(REDIS_URL=clean_redis, SECRET_KEY="another-secret-key-0123456789abcdef")
    elsewhere = RedisPersonLocks(client, key=other.derive_key("email-lock"), timeout=5, wait=1)
    with again.hold(" hanako.yamada@example.com "):
        assert [k.decode() for k in client.keys("*lock*")] == [key]
    with elsewhere.hold(EMAIL):
        assert [k.decode() for k in client.keys("*lock*")] != [key]


def test_the_intake_rate_limit_keys_on_a_keyed_hash_of_the_address(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(REDIS_URL=clean_redis, INTAKE_RATE_LIMIT="5/minute")
    client = create_app(settings, database=database).test_client()
    client.post("/api/registrations", json={}, environ_base={"REMOTE_ADDR": "198.51.100.77"})
    keys = b" ".join(redis.Redis.from_url(clean_redis).keys("*membersync-intake*")).decode()
    assert keys, "the limiter wrote its window to Redis"
    assert "198.51.100.77" not in keys
    assert hashlib.sha256(b"198.51.100.77").hexdigest()[:32] not in keys
