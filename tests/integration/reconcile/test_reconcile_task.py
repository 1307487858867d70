"""The task `membersync.reconcile`: the runtime's connectors and lock, its report as the result, and a
Sentry cron check-in around each run when a DSN is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from registrations.database import Database
from tasks import reconcile as task_module
from tasks.factory import create_celery_app

pytestmark = pytest.mark.integration


def test_the_task_runs_once_and_a_second_start_meanwhile_is_skipped(
    sandbox: Any, make_settings: Callable[..., Any], database: Database, clean_redis: str
) -> None:
    celery = create_celery_app(make_settings(**sandbox.env, REDIS_URL=clean_redis), database)
    celery.loader.import_default_modules()
    task = celery.tasks[task_module.TASK_NAME]
    report = task.apply(kwargs={"dry_run": True}).get()
    assert report["status"] == "completed" and report["dry_run"] is True
    held = redis.Redis.from_url(clean_redis).lock("membersync:lock:reconcile", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert task.apply().get()["status"] == "skipped"
    finally:
        held.release()


def test_each_run_checks_in_to_the_sentry_cron_monitor(
    monkeypatch: pytest.MonkeyPatch, make_settings: Any
) -> None:
    import sentry_sdk.crons

    calls: list[dict[str, Any]] = []

    def capture_checkin(**kwargs: Any) -> str:
        calls.append(kwargs)
        return "check-in-1"

    monkeypatch.setattr(sentry_sdk.crons, "capture_checkin", capture_checkin)
    settings = make_settings(RECONCILE_AT="04:15", RECONCILE_TIMEZONE="Asia/Tokyo")
    assert task_module._checkin_start(settings) is None  # no DSN: no check-in
    settings = make_settings(SENTRY_DSN="https://public@sentry.example/1", RECONCILE_AT="04:15")
    checkin = task_module._checkin_start(settings)
    task_module._checkin_end(checkin, "ok")
    assert [call["status"] for call in calls] == ["in_progress", "ok"]
    assert calls[0]["monitor_slug"] == task_module.MONITOR_SLUG == calls[1]["monitor_slug"]
    assert calls[0]["monitor_config"]["schedule"] == {"type": "crontab", "value": "15 4 * * *"}
    assert calls[0]["monitor_config"]["timezone"] == "Asia/Tokyo"
    assert calls[1]["check_in_id"] == "check-in-1"
