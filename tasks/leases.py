"""The Redis broker's side of a dead worker: step messages it had taken and never acknowledged.

Kombu's Redis transport moves a message it hands a worker into its `unacked` hash (scored by delivery
time in `unacked_index`) and gives it back only after the visibility timeout (hours). A worker notes
the step messages it receives (tasks/signals.py), but one it took in the instant before it died is in
no note, and one it popped in the instant before it died may be in no hash either: the lease sweep,
once a worker is found dead, reads here which step messages were delivered before the death and
which are still waiting or just delivered. RabbitMQ needs none of this: it requeues a dead
connection's messages itself.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import redis

from config.celery import WORKER_HEARTBEAT_SECONDS, WORKER_LEASE_SECONDS
from config.systems import SYSTEMS
from registrations.leases import BrokerView

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
# kombu's Redis transport keeps a queue's prioritised messages in lists of their own.
PRIORITY_SUFFIXES = tuple(f"\x06\x16{step}" for step in (3, 6, 9))
STEP_TASKS = frozenset(system.task_name for system in SYSTEMS)
# A dead worker renewed its lease last at least this long ago, so what it took was delivered before.
ORPHAN_AGE_SECONDS = WORKER_LEASE_SECONDS - WORKER_HEARTBEAT_SECONDS


def _registration_of(raw: bytes | None) -> str | None:
    """The registration id of an unacknowledged step message (kombu's [message, exchange, key])."""
    if raw is None:
        return None
    try:
        message: dict[str, Any] = json.loads(raw)[0]
        if message.get("headers", {}).get("task") not in STEP_TASKS:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None  # not a message of ours


def _registrations_of(raws: list[Any]) -> set[str]:
    found = {_registration_of(raw) for raw in raws}
    return {registration_id for registration_id in found if registration_id}


def _waiting_registrations(client: redis.Redis, queues: list[str]) -> set[str]:
    """Registrations with a step message waiting in one of `queues` (kombu's lists, by priority too)."""
    keys = [name + suffix for name in queues for suffix in ("", *PRIORITY_SUFFIXES)]
    pipe = client.pipeline()
    for key in keys:
        pipe.lrange(key, 0, -1)
    waiting: set[str] = set()
    for messages in pipe.execute():
        # A queued message is the kombu message itself, not wrapped like an unacknowledged one.
        waiting |= _registrations_of([json.dumps([json.loads(raw)]) for raw in messages])
    return waiting


def redis_broker_view(
    broker_url: str, queues: list[str], *, orphan_age: float = ORPHAN_AGE_SECONDS
) -> BrokerView | None:
    """What a Redis broker holds of the step messages (None on another broker: RabbitMQ requeues a
    dead connection's messages itself). Read once a worker is found dead, never in normal running."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return None
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        before = time.time() - orphan_age
        delivered = client.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True)
        old = [tag for tag, score in delivered if score <= before]  # type: ignore[union-attr]
        recent = [tag for tag, score in delivered if score > before]  # type: ignore[union-attr]
        orphaned = _registrations_of(client.hmget(UNACKED_KEY, old)) if old else set()  # type: ignore[arg-type]
        in_flight = _registrations_of(client.hmget(UNACKED_KEY, recent)) if recent else set()  # type: ignore[arg-type]
        in_flight |= _waiting_registrations(client, queues)
    finally:
        client.close()
    return BrokerView(orphaned=frozenset(orphaned), in_flight=frozenset(in_flight))
