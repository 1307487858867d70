"""The web's publisher: a registration's chain sent as one prebuilt broker message (one LPUSH).

Building a chain through Celery's canvas (signatures cloned and frozen, routed, serialised, a kombu
producer and a Redis client per call) was a third of the intake's CPU. The message for a chain of
given systems differs between registrations only in the registration's id and in fresh task ids, so
Celery builds it once per process and chain shape (on an in-memory transport, nothing sent), and each
publish fills those in and pushes the same bytes kombu's Redis transport would push, on the same queue.
The message carries ids only, as the chain does. Anything this does not reproduce exactly (a broker
other than plain Redis, a priority, a key prefix, a registration id that is not a UUID, a shape it
cannot read back) goes through Celery's own publisher instead.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery
from kombu import Connection
from kombu.utils.json import dumps, loads
from redis.backoff import NoBackoff
from redis.retry import Retry

from registrations.outbox import Publisher
from tasks.chains import build_chain, chain_publisher

log = logging.getLogger(__name__)

# Registration ids are UUIDs (`registrations.models.new_id`): safe to put in a template as they are.
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The registration id the template is built with (never a real one: version nibble 0).
SAMPLE_ID = "00000000-0000-0000-8000-000000000000"


class _Template:
    """A serialised message with slots: slot 0 the registration id, 1..n the task ids (the first
    also the root and correlation id), then the delivery tag; the envelope has one for the body."""

    def __init__(self, queue: str, body: list[str | int], envelope: list[str | int], ids: int) -> None:
        self.queue = queue
        self.body = body
        self.envelope = envelope
        self.ids = ids

    def render(self, registration_id: str) -> str:
        """The message for `registration_id`, with fresh task ids and delivery tag."""
        return self.fill(registration_id, [str(uuid.uuid4()) for _ in range(self.ids)])

    def fill(self, registration_id: str, ids: Sequence[str]) -> str:
        values = [registration_id, *ids]
        body = "".join(part if isinstance(part, str) else values[part] for part in self.body)
        values.append(base64.b64encode(body.encode()).decode())
        return "".join(part if isinstance(part, str) else values[part] for part in self.envelope)


def _slots(text: str, values: Sequence[str]) -> list[str | int]:
    """`text` split at every occurrence of `values` (each a UUID), which become their indexes."""
    index = {value: number for number, value in enumerate(values)}
    pattern = re.compile("|".join(re.escape(value) for value in values))
    parts: list[str | int] = []
    position = 0
    for found in pattern.finditer(text):
        parts.append(text[position : found.start()])
        parts.append(index[found.group()])
        position = found.end()
    parts.append(text[position:])
    return parts


def is_tracing_header(name: str) -> bool:
    """A header a tracing hook adds to one send (Sentry's Celery integration: the trace, baggage,
    the enqueue time)."""
    return name.startswith("sentry-") or name == "baggage"


def untraced(headers: dict[str, Any]) -> dict[str, Any]:
    """Celery's headers without the tracing ones, top level and nested (where Sentry copies them):
    baked into a template, one send's trace id and times would be every later message's."""
    kept = {name: value for name, value in headers.items() if not is_tracing_header(name)}
    if isinstance(kept.get("headers"), dict):
        kept["headers"] = {
            name: value for name, value in kept["headers"].items() if not is_tracing_header(name)
        }
    return kept


def build_template(celery: Celery, systems: Sequence[str]) -> _Template | None:
    """The message Celery sends for the chain of `systems`, as a template (None: not one this can
    reproduce). Celery builds it on an in-memory transport of its own; nothing leaves the process."""
    signature = build_chain(celery, SAMPLE_ID, systems)
    if signature is None:
        return None
    with Connection(f"memory://membersync-template-{uuid.uuid4().hex}") as connection:
        channel: Any = connection.default_channel
        sent: list[tuple[str, dict[str, Any]]] = []
        # The memory transport's queues are shared by the process: catch the message on its way in.
        channel._put = lambda queue, message, **_: sent.append((queue, message))
        # A chain passes `connection` on to its first task's send (it drops `producer`).
        signature.apply_async(connection=connection, retry=False)
    if len(sent) != 1:
        return None
    queue, message = sent[0]
    message = {**message, "headers": untraced(message["headers"])}
    properties, headers = message["properties"], message["headers"]
    # kombu's Redis transport pushes a message of priority 0 to the list named as its queue.
    if properties.get("priority") or properties.get("body_encoding") != "base64":
        return None
    body_text = base64.b64decode(message["body"]).decode()
    chain = loads(body_text)[2].get("chain") or []
    task_ids = [headers["id"], *(link["options"]["task_id"] for link in chain)]
    if headers.get("root_id") != headers["id"] or properties.get("correlation_id") != headers["id"]:
        return None
    ids = [*task_ids, properties["delivery_tag"]]
    marker = str(uuid.uuid4())
    template = _Template(
        queue,
        _slots(body_text, [SAMPLE_ID, *ids]),
        _slots(dumps({**message, "body": marker}), [SAMPLE_ID, *ids, marker]),
        len(ids),
    )
    # Filled in with the ids Celery chose, it must read back as the very message Celery built.
    if loads(template.fill(SAMPLE_ID, ids)) != loads(dumps(message)):
        return None
    return template


class PrebuiltPublisher:
    """A `Publisher` that pushes prebuilt chain messages straight to a Redis broker."""

    def __init__(self, celery: Celery, broker_url: str, transport_options: dict[str, Any]) -> None:
        self.celery = celery
        self.fallback = chain_publisher(celery)
        # Fails fast as Celery's publish with retry=False does: a refused connection raises at once,
        # a pooled connection the broker closed is reopened once.
        self.redis = redis.Redis.from_url(
            broker_url,
            socket_connect_timeout=transport_options.get("socket_connect_timeout", 3),
            socket_timeout=transport_options.get("socket_timeout", 10),
            retry=Retry(NoBackoff(), 1),
        )
        self._templates: dict[tuple[str, ...], _Template | None] = {}
        self._lock = threading.Lock()

    def _template(self, systems: tuple[str, ...]) -> _Template | None:
        if systems not in self._templates:
            with self._lock:
                if systems not in self._templates:
                    try:
                        self._templates[systems] = build_template(self.celery, systems)
                    except Exception as error:  # Celery's own publisher still works
                        log.warning("no prebuilt chain (%s): sent through Celery", type(error).__name__)
                        self._templates[systems] = None
        return self._templates[systems]

    def __call__(self, registration_id: str, systems: Sequence[str]) -> None:
        template = self._template(tuple(systems)) if _UUID.match(registration_id) else None
        if template is None:
            self.fallback(registration_id, systems)
            return
        self.redis.lpush(template.queue, template.render(registration_id))


def web_publisher(celery: Celery) -> Publisher:
    """The prebuilt publisher on a plain Redis broker with default key layout, else Celery's."""
    url: str = celery.conf.broker_write_url or celery.conf.broker_url or ""
    options: dict[str, Any] = dict(celery.conf.broker_transport_options or {})
    if url.startswith("redis://") and not options.get("global_keyprefix"):
        return PrebuiltPublisher(celery, url, options)
    return chain_publisher(celery)
