"""What a worker does as it starts: RabbitMQ's dead-letter queue, and the outbox relay."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from config.celery import dead_letter_queue, is_rabbitmq
from registrations.outbox import relay, resume_stalled
from tasks.chains import chain_publisher

log = logging.getLogger(__name__)


def declare_dead_letter_queue(celery: Celery) -> bool:
    """Declare the dead-letter exchange and queue on a RabbitMQ broker; False on other brokers.

    Nothing consumes that queue, so nothing else would declare it before the first message is
    dead-lettered into its exchange.
    """
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


@worker_ready.connect
def relay_at_worker_start(sender: Any, **_kwargs: Any) -> None:
    """A starting worker publishes what was left over (as old as the relay's threshold)."""
    celery = sender.app
    runtime = getattr(celery, "membersync", None)
    if runtime is None:
        return
    try:
        # Not younger rows: the request that wrote them is publishing them right now.
        settings = runtime.settings
        publisher = chain_publisher(celery)
        count = relay(publisher, runtime.database, older_than_seconds=settings.outbox_relay_after_seconds)
        count += resume_stalled(publisher, runtime.database, settings)
    except Exception:
        log.exception("outbox relay at worker start failed")
        return
    if count:
        log.info("outbox relay at worker start published %d", count)
