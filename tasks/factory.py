"""Builds a Celery app from settings; `tasks.celery_app` holds the one built from the environment."""

from __future__ import annotations

from celery import Celery

from config.celery import celery_config
from config.observability import init_sentry, install_log_redaction
from config.settings import Settings, load_settings
from registrations.database import Database
from registrations.outbox import publish_after_commit
from tasks.chains import chain_publisher
from tasks.runtime import Runtime

TASK_MODULES = [
    "tasks.steps",
    "tasks.maintenance",
    "tasks.signals",
    "tasks.directory",
    "tasks.changes",
    "tasks.reconcile",
    "tasks.mirror",
    "tasks.points",
]


def create_celery_app(
    settings: Settings | None = None, database: Database | None = None, *, fail_fast: bool = False
) -> Celery:
    """A Celery app configured from `settings`, carrying the runtime its tasks use."""
    settings = settings or load_settings()
    init_sentry(settings)
    install_log_redaction()
    celery = Celery("membersync", set_as_current=False)
    celery.config_from_object(celery_config(settings, fail_fast=fail_fast))
    # The tasks' transactions publish the outbox rows they write (follow-ups, the rest of a chain,
    # replays, expiries) on this app's broker, after their commit.
    database = publish_after_commit(database or Database.from_settings(settings), chain_publisher(celery))
    celery.membersync = Runtime(settings=settings, database=database)
    celery.autodiscover_tasks(lambda: TASK_MODULES, related_name=None, force=True)
    return celery
