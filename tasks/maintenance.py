"""Tasks besides the steps: the outbox relay, dead-letter digest and confirmation expiry on beat,
and replay for ops.

Each is a thin call into the domain. The runtime's database publishes the outbox rows a task's
transactions write after their commit; the relay is handed the publisher for the rows left over.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config import metrics
from registrations.alerts import OverBudget, alert_new_dead_letters, report_steps_over_budget
from registrations.confirmations import expire_due
from registrations.dead_letters import DeadLetters, NothingToReplay
from registrations.outbox import published_ids, relay_and_resume
from tasks.chains import chain_publisher
from tasks.changes import queue_change


@shared_task(name="membersync.outbox.relay", bind=True, ignore_result=True)
def relay_task(self: Any) -> int:
    """Beat-scheduled relay of unpublished outbox rows, and of chains that stalled after publishing."""
    runtime = self.app.membersync
    return relay_and_resume(chain_publisher(self.app), runtime.database, runtime.settings)


# A step over budget is reported once; the memory of it outlives any sensible investigation.
OVER_BUDGET_KEY = "membersync:alerted:over-budget:{step_id}"
OVER_BUDGET_MEMORY_SECONDS = 30 * 24 * 3600


@shared_task(name="membersync.alerts.dead_letters", bind=True, ignore_result=True)
def alert_task(self: Any) -> int:
    """Beat-scheduled digest of new dead letters, and a report of steps past their retry budget."""
    runtime = self.app.membersync

    def first_time(step: OverBudget) -> bool:
        key = OVER_BUDGET_KEY.format(step_id=step.step_id)
        return bool(runtime.redis.set(key, "1", nx=True, ex=OVER_BUDGET_MEMORY_SECONDS))

    for step in report_steps_over_budget(runtime.settings, runtime.database, first_time):
        metrics.STEP_OVER_BUDGET.labels(step.system).inc()
    return alert_new_dead_letters(runtime.settings, runtime.database)


@shared_task(name="membersync.confirmations.expire", bind=True, ignore_result=True)
def expire_confirmations_task(self: Any) -> int:
    """Beat-scheduled expiry of unanswered confirmations; an expired card request gets its own member.

    Returns how many confirmations' follow-ups were published (the relay covers a broker that is down).
    """
    runtime = self.app.membersync
    return len(published_ids(runtime.database, expire_due(runtime.database)))


@shared_task(name="membersync.replay", bind=True, ignore_result=False, throws=(NothingToReplay,))
def replay_task(self: Any, dead_letter_or_registration_id: str) -> dict[str, object]:
    """Replay a dead letter (by its id) or every open dead letter of a registration (by its id).

    Nothing open to replay is an ordinary answer, not a crash: a short FAILURE with no traceback.
    """
    letters = DeadLetters(
        self.app.membersync.database, queue_change=lambda change_id: queue_change(self.app, change_id)
    )
    replayed = letters.replay(dead_letter_or_registration_id)
    return {"registration_id": replayed.registration_id, "systems": list(replayed.systems)}
