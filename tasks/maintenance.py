"""Tasks besides the steps: the outbox relay, the worker-lease sweep, dead-letter digest and
confirmation expiry on beat, and replay for ops.

Each is a thin call into the domain. The runtime's database publishes the outbox rows a task's
transactions write after their commit; the relay is handed the publisher for the rows left over.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config import metrics
from config.celery import BULK_QUEUE
from config.systems import REALTIME_QUEUE
from registrations.alerts import OverBudget, alert_new_dead_letters, report_steps_over_budget
from registrations.audit import FLOWER, Actor
from registrations.confirmations import expire_due
from registrations.dead_letters import DeadLetters, NothingToReplay, replay_rate
from registrations.leases import sweep_dead_holders
from registrations.outbox import published_ids, relay_and_resume
from registrations.replay_jobs import ReplayJobs
from tasks.chains import chain_publisher
from tasks.changes import queue_change
from tasks.leases import redis_broker_view


@shared_task(name="membersync.outbox.relay", bind=True, ignore_result=True)
def relay_task(self: Any) -> int:
    """Beat-scheduled relay of unpublished outbox rows, and of chains that stalled after publishing."""
    runtime = self.app.membersync
    return relay_and_resume(chain_publisher(self.app), runtime.database, runtime.settings)


@shared_task(name="membersync.leases.sweep", bind=True, ignore_result=True)
def lease_sweep_task(self: Any) -> int:
    """Beat-scheduled (every few seconds): queue again the registrations of worker processes whose
    heartbeat lease expired (registrations/leases.py)."""
    runtime = self.app.membersync
    broker_url = self.app.conf.broker_url or ""
    queues = [REALTIME_QUEUE, BULK_QUEUE]
    return sweep_dead_holders(
        runtime.database, runtime.leases, broker=lambda: redis_broker_view(broker_url, queues)
    )


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


# The operator a caller of `membersync.replay` names: the kwarg, else this message header (Flower's
# extension passes the signed-in operator); "flower" when neither is given.
OPERATOR_HEADER = "membersync_operator"


def task_operator(request: Any, operator: str | None) -> str:
    """Who applied the task, for the audit trail."""
    named = (
        operator or getattr(request, OPERATOR_HEADER, None) or (request.headers or {}).get(OPERATOR_HEADER)
    )
    return str(named).strip()[:64] if named and str(named).strip() else FLOWER


@shared_task(name="membersync.replay", bind=True, ignore_result=False, throws=(NothingToReplay,))
def replay_task(
    self: Any, dead_letter_or_registration_id: str, operator: str | None = None
) -> dict[str, object]:
    """Replay a dead letter (by its id) or every open dead letter of a registration (by its id),
    audited with who applied it (`operator`, or the header Flower passes).

    Nothing open to replay is an ordinary answer, not a crash: a short FAILURE with no traceback.
    """
    letters = DeadLetters(
        self.app.membersync.database,
        queue_change=lambda change_id: queue_change(self.app, change_id),
        actor=Actor(task_operator(self.request, operator), FLOWER),
    )
    replayed = letters.replay(dead_letter_or_registration_id)
    return {"registration_id": replayed.registration_id, "systems": list(replayed.systems)}


@shared_task(name="membersync.replay_paced", bind=True, ignore_result=True)
def replay_paced_task(self: Any, job_id: str, targets: list[str], operator: str, via: str) -> int:
    """A bulk replay from the console, paced by the vendors' rate budgets (`replay_rate`) so that the
    replayed steps are not deferred past their time budget; its progress is kept in Redis for the
    console (`registrations.replay_jobs`). Returns how many registrations were replayed."""
    runtime = self.app.membersync
    jobs = ReplayJobs(runtime.redis)
    letters = DeadLetters(
        runtime.database,
        queue_change=lambda change_id: queue_change(self.app, change_id),
        actor=Actor(operator, via),
    )
    replays = letters.replay_paced(
        targets,
        per_second=replay_rate(runtime.settings),
        progress=lambda progress: jobs.advance(job_id, progress),
    )
    jobs.finish(job_id)
    return len(replays.replayed)
