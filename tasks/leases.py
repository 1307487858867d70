"""The Redis broker's side of a dead worker: step messages it had taken and never acknowledged.

Kombu's Redis transport moves a message it hands a worker into its `unacked` hash (scored by delivery
time in `unacked_index`) and gives it back only after the visibility timeout (hours). A worker notes
the step messages it receives (tasks/signals.py), but one it took in the instant before it died is in
no note: the lease sweep also looks here, once a worker is found dead, for step messages delivered
before it died. RabbitMQ needs none of this: it requeues a dead connection's messages itself.
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

log = logging.getLogger(__name__)

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
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


def unacked_step_registrations(broker_url: str, *, older_than: float = ORPHAN_AGE_SECONDS) -> set[str]:
    """Registrations with a step message on the Redis broker delivered longer ago than `older_than`
    and not acknowledged yet (an empty set on another broker)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return set()
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        tags = client.zrangebyscore(UNACKED_INDEX_KEY, "-inf", time.time() - older_than)
        if not tags:
            return set()
        found = {_registration_of(raw) for raw in client.hmget(UNACKED_KEY, tags)}  # type: ignore[arg-type, union-attr]
    finally:
        client.close()
    return {registration_id for registration_id in found if registration_id}
