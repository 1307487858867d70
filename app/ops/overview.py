"""`GET /ops/`: the state of the pipeline at a glance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import render_template

from app.ops.blueprint import blueprint
from app.ops.probes import broker_queue_depths, rate_limit_headroom
from app.services import services
from registrations.dead_letters import DeadLetters
from registrations.ops_queries import last_reconciliation_run, registrations_by_status, time_to_synced


@blueprint.get("/")
def overview() -> str:
    """Registrations by status, open dead letters, queue depths, rate-limit headroom, sync times."""
    settings = services().settings
    # The broker and Redis are asked at the same time, while the database answers.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ops-overview") as pool:
        queues = pool.submit(broker_queue_depths, settings)
        headroom = pool.submit(rate_limit_headroom, settings)
        dead_letters = DeadLetters(services().database).open_by_system_and_reason()
        with services().database.session() as session:
            page = render_template(
                "ops/overview.html",
                statuses=registrations_by_status(session),
                dead_letters=dead_letters,
                sync_times=time_to_synced(session),
                reconciliation=last_reconciliation_run(session),
                queues=queues.result(),
                headroom=headroom.result(),
            )
    return page
