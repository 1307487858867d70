"""Tasks that send the points Membersync originates (the sign-up bonus), each exactly once.

The Smaregi step plans the bonus in the transaction that records the member and queues
`membersync.points.apply` with the movement's id only; this task is separate so that the step's own
retries never send points. `registrations.points.PointLedger` decides everything: an unclear send is
checked against Smaregi's transactions before anything is sent again. A movement not settled yet
(unclear, in flight elsewhere, too early to read) makes the task retry with backoff; the sweep on
beat picks up whatever is left (a publish that never reached the broker, retries used up).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from connectors.errors import TransientError
from registrations.points import PointLedger

log = logging.getLogger(__name__)

APPLY_TASK = "membersync.points.apply"
SWEEP_TASK = "membersync.points.sweep"
# A movement untouched for this long is the sweep's (the task's own retries come well before).
SWEEP_AFTER_SECONDS = 15 * 60.0
SWEEP_BATCH = 500


class PointsNotSettled(TransientError):
    """The movement is not applied nor failed yet: try again later."""


def ledger_of(runtime: Any) -> PointLedger:
    """The ledger over the worker's database; a movement `sent` longer than a vendor call could take
    (connect + read timeout, with room to spare) lost its sender."""
    settings = runtime.settings
    lease = 2 * (settings.http_connect_timeout_seconds + settings.http_read_timeout_seconds) + 30
    return PointLedger(runtime.database, send_lease_seconds=lease)


@shared_task(
    name=APPLY_TASK,
    bind=True,
    ignore_result=True,
    autoretry_for=(TransientError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=False,
    max_retries=12,
)
def apply_points(self: Any, movement_id: str) -> dict[str, Any]:
    """Send one planned point movement, or settle an unclear one (see registrations.points)."""
    runtime = self.app.membersync
    movement = ledger_of(runtime).apply(movement_id, runtime.connectors.smaregi)
    if movement is None:
        log.warning("point movement %s does not exist", movement_id)
        return {"movement_id": movement_id, "state": None}
    if not movement.settled:
        raise PointsNotSettled(f"point movement {movement_id} is {movement.state}", system="smaregi")
    log.info("point movement %s %s", movement_id, movement.state)
    return {"movement_id": movement_id, "state": movement.state}


@shared_task(name=SWEEP_TASK, bind=True, ignore_result=True)
def sweep_points(self: Any) -> int:
    """Queue `apply` again for every movement left unsettled for SWEEP_AFTER_SECONDS; how many."""
    movements = ledger_of(self.app.membersync).unsettled(older_than_seconds=SWEEP_AFTER_SECONDS)
    for movement in movements[:SWEEP_BATCH]:
        self.app.tasks[APPLY_TASK].apply_async(args=(movement.id,))
    if movements:
        log.info("queued %d unsettled point movement(s) again", min(len(movements), SWEEP_BATCH))
    return min(len(movements), SWEEP_BATCH)
