"""Reliable delivery defaults (docs/reliability.md): every trap has its answer in the configuration."""

from __future__ import annotations

from config.celery import (
    BULK_QUEUE,
    LONGEST_COUNTDOWN_SECONDS,
    MAINTENANCE_QUEUE,
    VISIBILITY_TIMEOUT_SECONDS,
    celery_config,
)
from config.settings import Settings
from config.systems import REALTIME_QUEUE, SYSTEMS
from tasks.factory import create_celery_app


def test_reliable_defaults() -> None:
    config = celery_config(Settings.from_env(environ={"REDIS_URL": "redis://127.0.0.1:6379/0"}))
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]
    # Worker task events on (Flower shows tasks only through them); no task-sent event per publish.
    assert config["worker_send_task_events"] and not config["task_send_sent_event"]
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert visibility == VISIBILITY_TIMEOUT_SECONDS > LONGEST_COUNTDOWN_SECONDS
    settings = Settings.from_env(environ={})
    assert all(policy.cap_seconds < visibility for policy in settings.retry_policies.values())


def test_relay_is_scheduled_on_the_maintenance_queue() -> None:
    config = celery_config(Settings.from_env(environ={}))
    schedule = {entry["task"]: entry for entry in config["beat_schedule"].values()}
    assert schedule["membersync.outbox.relay"]["schedule"] == 15.0
    assert config["task_routes"]["membersync.outbox.relay"]["queue"] == MAINTENANCE_QUEUE


def test_every_routed_and_scheduled_task_is_registered() -> None:
    # A route or a beat entry naming no task is dead configuration: nothing ever runs under it.
    settings = Settings.from_env(environ={"DATABASE_URL": "sqlite:///:memory:"})
    celery = create_celery_app(settings)
    celery.loader.import_default_modules()
    config = celery_config(settings)
    routed = set(config["task_routes"])
    scheduled = {entry["task"] for entry in config["beat_schedule"].values()}
    assert routed | scheduled <= set(celery.tasks), sorted((routed | scheduled) - set(celery.tasks))
    queues = {route["queue"] for route in config["task_routes"].values()}
    assert queues <= {REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE}


def test_only_the_publisher_fails_fast() -> None:
    settings = Settings.from_env(environ={})
    assert "max_retries" not in celery_config(settings)["broker_transport_options"]
    assert celery_config(settings, fail_fast=True)["broker_transport_options"]["max_retries"] == 1


def test_contract_task_names_are_registered() -> None:
    celery = create_celery_app(Settings.from_env(environ={"DATABASE_URL": "sqlite:///:memory:"}))
    celery.loader.import_default_modules()
    names = [system.task_name for system in SYSTEMS]
    assert set(names) | {"membersync.outbox.relay", "membersync.replay"} <= set(celery.tasks)
    assert names == [
        "membersync.shopify.create_customer",
        "membersync.smaregi.upsert_member",
        "membersync.hubspot.upsert_contact",
        "membersync.mail.send_welcome",
        "membersync.consent.update",
    ]
