"""Broker set-up a worker does at start: on RabbitMQ, the dead-letter queue exists before anything
is dead-lettered into its exchange (nothing consumes it, so nothing else would declare it)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from config.celery import dead_letter_queue, is_rabbitmq

log = logging.getLogger(__name__)


def declare_dead_letter_queue(celery: Celery) -> bool:
    """Declare the dead-letter exchange and queue on a RabbitMQ broker; False on other brokers."""
    if not is_rabbitmq(celery.conf.broker_url or ""):
        return False
    with celery.connection_for_write() as connection:
        dead_letter_queue().bind(connection.default_channel).declare()
    return True


@worker_ready.connect
def declare_at_worker_start(sender: Any, **_kwargs: Any) -> None:
    try:
        declare_dead_letter_queue(sender.app)
    except Exception:
        log.exception("could not declare the RabbitMQ dead-letter queue")
