"""Tasks that keep the Smaregi member directory current: the pull on beat and the webhook's re-read.

Thin calls into `registrations.directory`; arguments are customerIds only (no personal data).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import shared_task

from connectors.errors import TransientError
from registrations.directory import MemberDirectory

log = logging.getLogger(__name__)

PULL_TASK = "membersync.smaregi.directory_pull"
REREAD_TASK = "membersync.smaregi.directory_reread"
# One pull at a time across every worker: beat fires every minute, and a full load can take longer.
PULL_LOCK = "membersync:lock:smaregi-directory-pull"
# A full load of a large contract pages at Smaregi's read budget: give it far longer than a step.
PULL_TIME_LIMIT_SECONDS = 1800
# The webhook's ids are re-read in tasks of at most this many (one read each).
REREAD_BATCH = 500


@shared_task(
    name=PULL_TASK,
    bind=True,
    ignore_result=True,
    time_limit=PULL_TIME_LIMIT_SECONDS,
    soft_time_limit=PULL_TIME_LIMIT_SECONDS - 60,
)
def pull_directory(self: Any, full: bool = False) -> dict[str, Any]:
    """Beat-scheduled incremental pull of the member directory (a full load when it is due)."""
    runtime = self.app.membersync
    client: redis.Redis = runtime.redis
    lock = client.lock(PULL_LOCK, timeout=PULL_TIME_LIMIT_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return {"kind": "skipped", "reasons": ["another pull is running"]}
    try:
        directory = MemberDirectory(runtime.database)
        smaregi = runtime.connectors.smaregi
        report = directory.full_load(smaregi, reason="requested") if full else directory.pull(smaregi)
        log.info(
            "smaregi directory %s pull: %d members in %d pages", report.kind, report.members, report.pages
        )
        return report.as_json()
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("the smaregi directory pull outlived its lock")


@shared_task(
    name=REREAD_TASK,
    bind=True,
    ignore_result=True,
    autoretry_for=(TransientError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def reread_members(self: Any, customer_ids: list[str]) -> dict[str, int]:
    """Re-read the members a `pos:customers` webhook named and update or drop their directory rows,
    then queue each one's mirror task (its member number, rank and points to Shopify and HubSpot)."""
    from tasks.mirror import queue_mirrors  # tasks.mirror names this task: imported here, not above

    runtime = self.app.membersync
    directory = MemberDirectory(runtime.database)
    counts = directory.reread(runtime.connectors.smaregi, customer_ids)
    counts["mirrors"] = queue_mirrors(customer_ids, self.app)
    return counts
