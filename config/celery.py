"""Celery settings derived from `Settings` and the system registry: reliable delivery first.

Each default below answers a known Celery/Redis trap; docs/reliability.md lists them."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from kombu import Exchange, Queue

from config.settings import Settings
from config.systems import REALTIME_QUEUE, SYSTEMS

# Queues: realtime registrations never wait behind reconciliation traffic (the bulk queue is
# consumed already; the reconciliation issue routes its task there).
BULK_QUEUE = "membersync.bulk"
MAINTENANCE_QUEUE = "membersync.maintenance"

# A delivery whose worker vanished comes back after this; it must exceed the longest countdown we
# ever schedule (longer waits are re-scheduled in steps), or Redis redelivers a still-waiting task.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
LONGEST_COUNTDOWN_SECONDS = 3600
# Worker heartbeat leases (registrations/leases.py), production defaults: every worker process
# renews its lease every 5 s and it expires 20 s after the last renewal (three missed renewals); the
# sweep runs every 10 s, so a dead worker's work is queued again 15-30 s after it died.
WORKER_HEARTBEAT_SECONDS = 5.0
WORKER_LEASE_SECONDS = 20
WORKER_LEASE_SWEEP_SECONDS = 10.0
# How often point movements left unsettled are applied again (tasks/points.py).
POINTS_SWEEP_INTERVAL_SECONDS = 5 * 60.0
# How often unanswered confirmations are swept into `expired`.
CONFIRMATION_EXPIRY_INTERVAL_SECONDS = 15 * 60.0
# How often pending vendor changes left behind are queued again (tasks/changes.py).
CHANGE_SWEEP_INTERVAL_SECONDS = 60.0

# RabbitMQ only: every queue is a quorum queue (replicated, durable) whose rejected and
# over-delivered messages go to the dead-letter exchange, where `membersync.dead` keeps them.
EXCHANGE = "membersync"
DEAD_LETTER_EXCHANGE = "membersync.dead"
DEAD_LETTER_QUEUE = "membersync.dead"
# A message redelivered this often (it keeps killing workers) is dead-lettered by RabbitMQ itself.
DELIVERY_LIMIT = 20


def dead_letter_queue() -> Queue:
    """Where RabbitMQ puts messages our queues dead-letter (kept for inspection, never consumed)."""
    return Queue(
        DEAD_LETTER_QUEUE,
        Exchange(DEAD_LETTER_EXCHANGE, type="fanout"),
        routing_key="#",
        queue_arguments={"x-queue-type": "quorum"},
    )


def _rabbitmq_topology() -> dict[str, Any]:
    """Quorum queues on a topic exchange (native delayed delivery needs one) with a dead-letter exchange."""
    exchange = Exchange(EXCHANGE, type="topic")
    arguments = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    return {
        "task_queues": [
            Queue(name, exchange, routing_key=name, queue_arguments=arguments)
            for name in (REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE)
        ],
        "task_default_exchange": EXCHANGE,
        "task_default_exchange_type": "topic",
        "task_default_routing_key": REALTIME_QUEUE,
        "task_default_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
    }


class LocalCrontab(crontab):
    """A crontab read on one zone's clock, whatever the app's zone (beat runs in UTC).

    Celery reads a crontab's fields in the app's timezone (`tz`); this one names its own, so
    "03:00 Asia/Tokyo" stays 03:00 there, summer time included where a zone has it. It pickles with
    its zone (beat's schedule file stores it).
    """

    def __init__(self, minute: int, hour: int, zone: str) -> None:
        super().__init__(minute=minute, hour=hour)
        self.zone = zone

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.zone)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self._orig_minute, self._orig_hour, self.zone))


def reconcile_schedule(settings: Settings) -> LocalCrontab:
    """Every day at RECONCILE_AT in RECONCILE_TIMEZONE."""
    hour, minute = (int(part) for part in settings.reconcile_at.split(":"))
    return LocalCrontab(minute=minute, hour=hour, zone=settings.reconcile_timezone)


def is_rabbitmq(broker_url: str) -> bool:
    """Whether `broker_url` is an AMQP broker (RabbitMQ)."""
    return broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def celery_config(settings: Settings, *, fail_fast: bool = False) -> dict[str, Any]:
    """The Celery configuration mapping for `settings`.

    `fail_fast` is for processes that only publish (the web intake): a down broker must cost a
    request milliseconds, not seconds of reconnect attempts, because the outbox keeps the message.
    """
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        transport_options = {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        }
    if is_rabbitmq(settings.broker_url):
        # Publisher confirms: the intake marks an outbox row published only once RabbitMQ has it.
        transport_options = {"confirm_publish": True}
    if fail_fast:
        transport_options.update({"max_retries": 1, "interval_start": 0, "interval_step": 0.2})
    topology = _rabbitmq_topology() if is_rabbitmq(settings.broker_url) else {}
    return {
        **topology,
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_timeout": 3,
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # A task whose ack cannot reach a lost broker is cancelled and redelivered: steps are
        # idempotent, so a second run is safe, and a silently un-acked one would be lost work.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Flower shows tasks through the worker's task events (received, started, succeeded,
        # failed, retried), so those stay on; a task-sent event would cost every publish (the
        # intake's and each step's next one) a second broker write for a state Flower shows
        # as "received" a moment later anyway.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_default_queue": REALTIME_QUEUE,
        "task_routes": {
            **{system.task_name: {"queue": system.queue} for system in SYSTEMS},
            "membersync.outbox.relay": {"queue": MAINTENANCE_QUEUE},
            "membersync.leases.sweep": {"queue": MAINTENANCE_QUEUE},
            "membersync.alerts.dead_letters": {"queue": MAINTENANCE_QUEUE},
            "membersync.confirmations.expire": {"queue": MAINTENANCE_QUEUE},
            "membersync.smaregi.directory_pull": {"queue": MAINTENANCE_QUEUE},
            "membersync.smaregi.directory_reread": {"queue": MAINTENANCE_QUEUE},
            # The sign-up bonus goes with the registration; the sweep of unsettled ones is upkeep.
            "membersync.points.apply": {"queue": REALTIME_QUEUE},
            "membersync.points.sweep": {"queue": MAINTENANCE_QUEUE},
            # A member's facts to the mirrors, and a pos:transactions webhook's members (tasks/mirror.py).
            "membersync.smaregi.mirror_member": {"queue": MAINTENANCE_QUEUE},
            "membersync.smaregi.transactions_reread": {"queue": MAINTENANCE_QUEUE},
            # The nightly reconciliation writes through the same limiters on the bulk queue, so a
            # registration on the realtime queue never waits behind it.
            "membersync.reconcile": {"queue": BULK_QUEUE},
            "membersync.changes.sweep": {"queue": MAINTENANCE_QUEUE},
        },
        # Within the step lease, so a step that still runs is never taken over by a redelivery.
        "task_time_limit": min(300, settings.step_lease_seconds // 2),
        "task_soft_time_limit": int(min(300, settings.step_lease_seconds // 2) * 0.8),
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            "outbox-relay": {
                "task": "membersync.outbox.relay",
                "schedule": float(settings.outbox_relay_interval_seconds),
            },
            # A dead worker's running steps and received messages, queued again within seconds of
            # its heartbeat lease expiring (registrations/leases.py).
            "worker-lease-sweep": {
                "task": "membersync.leases.sweep",
                "schedule": WORKER_LEASE_SWEEP_SECONDS,
                # A sweep that waited longer than its interval is superseded by the next one.
                "options": {"expires": WORKER_LEASE_SWEEP_SECONDS},
            },
            "dead-letter-alerts": {
                "task": "membersync.alerts.dead_letters",
                "schedule": float(settings.dead_letter_alert_interval_seconds),
            },
            # Unanswered confirmation links expire (CONFIRMATION_DAYS); a page past its time already
            # says so, so a quarter of an hour late only delays a card of one's own that long.
            "confirmation-expiry": {
                "task": "membersync.confirmations.expire",
                "schedule": CONFIRMATION_EXPIRY_INTERVAL_SECONDS,
            },
            # Vendor changes (webhook deliveries) the broker never got, or whose worker vanished.
            "change-sweep": {"task": "membersync.changes.sweep", "schedule": CHANGE_SWEEP_INTERVAL_SECONDS},
            # The nightly reconciliation, at RECONCILE_AT local time in RECONCILE_TIMEZONE.
            "reconciliation": {"task": "membersync.reconcile", "schedule": reconcile_schedule(settings)},
            # Point movements left unsettled (a lost publish, retries used up): applied again.
            "points-sweep": {"task": "membersync.points.sweep", "schedule": POINTS_SWEEP_INTERVAL_SECONDS},
            # The Smaregi member directory's incremental pull (a full load when one is due).
            "smaregi-directory-pull": {
                "task": "membersync.smaregi.directory_pull",
                "schedule": float(settings.smaregi_directory_pull_seconds),
            },
        },
    }
