"""The nightly reconciliation as a Celery task (`membersync.reconcile`, on the bulk queue, on beat).

A thin call into `registrations.reconcile`: one run at a time is the run's own lock, so a second
delivery (beat twice, a manual start) ends as "skipped". With SENTRY_DSN set, each run checks in to
the Sentry cron monitor MONITOR_SLUG (in progress, then ok or error), so a night without a run, or
a run that never finishes, raises an alert there.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from celery import shared_task

from registrations.reconcile.run import Reconciliation
from registrations.states import ReconciliationStatus

log = logging.getLogger(__name__)

TASK_NAME = "membersync.reconcile"
MONITOR_SLUG = "membersync-reconcile"
# A full run of a large shop reads and writes at the vendors' rate limits: hours, not minutes.
TIME_LIMIT_SECONDS = 6 * 3600


@shared_task(
    name=TASK_NAME,
    bind=True,
    ignore_result=True,
    acks_late=False,  # a redelivered reconciliation would only be skipped or repeat a finished run
    time_limit=TIME_LIMIT_SECONDS,
    soft_time_limit=TIME_LIMIT_SECONDS - 60,
)
def reconcile(self: Any, dry_run: bool = False, systems: list[str] | None = None) -> dict[str, Any]:
    """One reconciliation run; its report (ids and counts only)."""
    runtime = self.app.membersync
    settings = runtime.settings
    checkin = _checkin_start(settings)
    try:
        result = Reconciliation(
            runtime.database, runtime.connectors, runtime.redis, settings, dry_run=dry_run, systems=systems
        ).run()
    except BaseException:
        _checkin_end(checkin, "error")
        raise
    _checkin_end(checkin, "error" if result.status == ReconciliationStatus.FAILED else "ok")
    log.info("reconciliation run %s: %s", result.run_id, result.status)
    return result.as_json()


def _checkin_start(settings: Any) -> tuple[str, str] | None:
    """Tell Sentry's cron monitor a run began (when Sentry is configured)."""
    if not settings.sentry_dsn:
        return None
    from sentry_sdk.crons import capture_checkin

    hour, minute = settings.reconcile_at.split(":")
    config = {
        "schedule": {"type": "crontab", "value": f"{int(minute)} {int(hour)} * * *"},
        "timezone": settings.reconcile_timezone,
        "checkin_margin": 30,
        "max_runtime": TIME_LIMIT_SECONDS // 60,
    }
    checkin_id = capture_checkin(
        monitor_slug=MONITOR_SLUG, status="in_progress", monitor_config=cast(Any, config)
    )
    return (MONITOR_SLUG, str(checkin_id))


def _checkin_end(checkin: tuple[str, str] | None, status: str) -> None:
    if checkin is None:
        return
    from sentry_sdk.crons import capture_checkin

    slug, checkin_id = checkin
    capture_checkin(monitor_slug=slug, check_in_id=checkin_id, status=status)
