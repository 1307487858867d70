"""What a worker does as it starts: refuse to without its member-number key, RabbitMQ's dead-letter
queue, the outbox relay, its start-up objects frozen for the collector, and its heartbeat lease
(registrations/leases.py) with the record of the step messages it holds."""

from __future__ import annotations

import gc
import logging
from typing import Any

import redis
from celery import Celery
from celery.signals import (
    task_postrun,
    task_received,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from config.celery import dead_letter_queue, is_rabbitmq
from config.settings import ConfigError
from registrations import leases
from registrations.outbox import relay_and_resume
from tasks.chains import chain_publisher
from tasks.leases import STEP_TASKS  # whose messages the lease sweep must find again

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


# The holder id of the process that consumes messages (prefork: the main process; a thread pool:
# the only one). Set in the main process before the pool starts, so prefork children inherit it.
_consumer: str | None = None
# The worker's app, for its prefork children (inherited through the fork).
_worker_app: Any = None


def _lease_records(sender: Any) -> leases.Leases | None:
    """Lease records on a Redis client of this process's own (made after a fork, short timeouts)."""
    app = getattr(sender, "app", None) or sender
    runtime = getattr(app, "membersync", None)
    if runtime is None:
        return None
    client = redis.Redis.from_url(
        runtime.settings.effective_redis_url, socket_timeout=3, socket_connect_timeout=3
    )
    return leases.Leases(client)


@worker_init.connect
def hold_consumer_lease(sender: Any, **_kwargs: Any) -> None:
    """The main process holds a lease: it receives (prefetches) the messages, and with a thread or
    solo pool it runs the steps too."""
    global _consumer, _worker_app
    records = _lease_records(sender)
    if records is None:
        return
    _worker_app = sender.app
    _consumer = leases.start_heartbeat(records).holder


@worker_process_init.connect
def hold_child_lease(**_kwargs: Any) -> None:
    """A prefork child holds a lease of its own: it runs the steps it claims."""
    records = _lease_records(_worker_app) if _worker_app is not None else None
    if records is not None:
        leases.start_heartbeat(records)


@worker_ready.connect
@worker_process_init.connect
def freeze_start_up_objects(**_kwargs: Any) -> None:
    """What the worker built to start (modules, tasks, Celery's app) lives as long as it: frozen, full
    collections stop walking it (as the web process does, app/wsgi.py)."""
    gc.freeze()


@worker_process_shutdown.connect
@worker_shutdown.connect
def release_lease(**_kwargs: Any) -> None:
    """A clean stop (its tasks done) releases the lease, so the sweep need not wait for it to expire."""
    leases.stop_heartbeat()


def _delivery(task_id: str, retries: int | None) -> str:
    # A retry is a new message with the same task id: the retry count tells them apart.
    return f"{task_id}:{retries or 0}"


@task_received.connect
def note_received(sender: Any = None, request: Any = None, **_kwargs: Any) -> None:
    """Record which registration's step message this process now holds (prefetched, or waiting for
    its countdown): Redis would only hand it back after the visibility timeout if this worker died."""
    if _consumer is None or request is None or request.name not in STEP_TASKS or not request.args:
        return
    runtime = getattr(getattr(sender, "app", None), "membersync", None)
    if runtime is None:
        return
    retries = (request.request_dict or {}).get("retries")
    try:
        runtime.leases.received(_consumer, _delivery(request.id, retries), str(request.args[0]))
    except Exception as error:  # the stalled sweep still covers it
        log.warning("could not note a received message: %s", type(error).__name__)


@task_postrun.connect
def note_done(sender: Any = None, task_id: str | None = None, **_kwargs: Any) -> None:
    """The message has run: the sweep need not queue its registration again."""
    if _consumer is None or sender is None or getattr(sender, "name", None) not in STEP_TASKS or not task_id:
        return
    runtime = getattr(sender.app, "membersync", None)
    if runtime is None:
        return
    try:
        runtime.leases.done(_consumer, _delivery(task_id, sender.request.retries))
    except Exception as error:
        log.warning("could not note a finished message: %s", type(error).__name__)
