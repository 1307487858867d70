"""What waits on the broker: messages per queue, for metrics, the ops console and the benchmarks."""

from __future__ import annotations

import contextlib

from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, REALTIME_QUEUE

QUEUE_NAMES: tuple[str, ...] = (REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE)


def queue_depths(broker_url: str, *, connect_timeout: float = 5) -> dict[str, int]:
    """Messages waiting in each of our queues on the broker (a queue that does not exist holds 0).

    On Redis a queue is a list (kombu's passive declare answers its length); RabbitMQ answers a
    passive declare of a missing queue with a channel error.
    """
    from kombu import Connection
    from kombu.exceptions import ChannelError, OperationalError

    depths: dict[str, int] = {}
    with Connection(broker_url, connect_timeout=connect_timeout) as connection:
        for name in QUEUE_NAMES:
            channel = connection.channel()
            try:
                depths[name] = int(channel.queue_declare(name, passive=True).message_count)
            except (ChannelError, OperationalError):
                depths[name] = 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    return depths
