"""The web's prebuilt chain message (app.publisher) is the message Celery's own publisher sends: the same
queue, headers, properties and body, the registration's id in the same places, fresh task ids each
time, and nothing but ids in it."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import redis

from app.publisher import PrebuiltPublisher, untraced, web_publisher
from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations.database import Database
from tasks.chains import chain_publisher
from tasks.factory import create_celery_app

QUEUE = "membersync.realtime"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def shape(raw: bytes) -> tuple[str, list[str]]:
    """A pushed message with its body decoded and every task id (not the registration's) numbered by
    first appearance, so two messages compare equal when only their fresh ids differ (and tracing
    headers, left out)."""
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    # What a tracing hook (Sentry's, once another test in this process set it up) adds to Celery's
    # own sends: one send's trace and times, which the prebuilt message leaves out.
    message["headers"] = untraced(message["headers"])
    text = json.dumps(message, sort_keys=True)
    seen: dict[str, str] = {}
    for found in UUID.findall(text):
        seen.setdefault(found, f"<id {len(seen)}>")
    ids = list(seen)
    for found, name in seen.items():
        text = text.replace(found, name)
    return text, ids


def test_the_prebuilt_message_is_the_one_celery_sends(
    clean_redis: str, database: Database, make_settings: Callable[..., Any]
) -> None:
    settings: Settings = make_settings(CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis)
    celery = create_celery_app(settings, database, fail_fast=True)
    prebuilt = web_publisher(celery)
    assert isinstance(prebuilt, PrebuiltPublisher)
    broker = redis.Redis.from_url(clean_redis)
    registration_id = str(uuid.uuid4())
    for systems in (list(SYSTEM_NAMES), ["hubspot", "email"], ["consent"]):
        broker.delete(QUEUE)
        chain_publisher(celery)(registration_id, systems)
        prebuilt(registration_id, systems)
        prebuilt(registration_id, systems)
        pushed: list[bytes] = broker.lrange(QUEUE, 0, -1)  # type: ignore[assignment]
        celerys, first, second = (shape(raw) for raw in reversed(pushed))
        assert first[0] == celerys[0] == second[0]
        # The registration's id first in each (the body's args), then task ids of their own: all
        # they share is what Celery's message has as well (the id, the app's reply-to).
        assert first[1][0] == second[1][0] == celerys[1][0] == registration_id
        shared = set(first[1]) & set(second[1])
        assert len(first[1]) == len(celerys[1]) and shared <= set(celerys[1]) and len(shared) == 2
        assert "@example" not in first[0]
    broker.delete(QUEUE)
    broker.close()


def test_what_it_cannot_prebuild_goes_through_celery(
    clean_redis: str, database: Database, make_settings: Callable[..., Any]
) -> None:
    settings: Settings = make_settings(CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis)
    celery = create_celery_app(settings, database, fail_fast=True)
    prebuilt = web_publisher(celery)
    sent: list[tuple[str, list[str]]] = []
    prebuilt.fallback = lambda registration_id, systems: sent.append((registration_id, list(systems)))  # type: ignore[attr-defined]
    prebuilt("not-a-uuid", ["shopify"])
    assert sent == [("not-a-uuid", ["shopify"])]
    celery.conf.broker_url = "amqp://guest@127.0.0.1//"
    celery.conf.broker_write_url = None
    assert not isinstance(web_publisher(celery), PrebuiltPublisher)
