"""What a worker does as it starts: refuse to without its member-number key, RabbitMQ's dead-letter
queue, and the outbox relay."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready

from config.celery import dead_letter_queue, is_rabbitmq
from config.settings import ConfigError
from registrations.outbox import relay_and_resume
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


@worker_init.connect
def refuse_without_member_code_key(sender: Any, **_kwargs: Any) -> None:
    """Outside dev mode a worker without MEMBER_CODE_KEY stops before taking a task: started, it
    would dead-letter every Smaregi step. (`load_settings` refuses it already; this covers a worker
    whose settings were built another way.) SystemExit, because Celery logs and swallows an
    Exception raised by a signal handler."""
    runtime = getattr(getattr(sender, "app", None), "membersync", None)
    if runtime is None:
        return
    try:
        runtime.settings.member_code_secret  # noqa: B018 - raises ConfigError when there is none
    except ConfigError as error:
        log.critical("worker refused to start: %s", error)
        raise SystemExit(f"membersync worker: {error}") from None


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
        count = relay_and_resume(chain_publisher(celery), runtime.database, runtime.settings)
    except Exception:
        log.exception("outbox relay at worker start failed")
        return
    if count:
        log.info("outbox relay at worker start published %d", count)


@worker_ready.connect
def serve_worker_metrics(sender: Any, **_kwargs: Any) -> None:
    """With WORKER_METRICS_PORT set, this worker serves its own series (a worker on another host
    than the web service, whose `/metrics` only sees its own host's processes)."""
    runtime = getattr(sender.app, "membersync", None)
    if runtime is None or not runtime.settings.worker_metrics_port:
        return
    port = runtime.settings.worker_metrics_port
    folder = runtime.settings.metrics_dir
    from prometheus_client import start_http_server

    from config.metrics import exposition

    class _Registry:
        """`start_http_server` wants a registry; ours adds up every process of this host."""

        def collect(self) -> Any:
            from prometheus_client.parser import text_string_to_metric_families

            return text_string_to_metric_families(exposition(folder).decode())

    try:
        start_http_server(port, addr="0.0.0.0", registry=_Registry())
    except OSError:
        log.exception("could not serve worker metrics on port %s", port)
