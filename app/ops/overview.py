"""`GET /ops/`: sync health and the state of the pipeline at a glance.

Sync health, per vendor: its credentials and scopes (the cached cheap read of `app.vendor_checks`),
its last successful call, and over the chosen range (`?range=1h|24h|7d`) its error rate and dead
letters per reason with what to do about each, and a chart of the dead letters over time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import render_template, request

from app.ops.blueprint import blueprint
from app.ops.chart import stacked_bars
from app.ops.probes import broker_queue_depths, rate_limit_headroom
from app.services import services
from app.vendor_checks import vendor_checks
from connectors.registry import WITHOUT_CLIENT
from registrations.dead_letters import DeadLetters
from registrations.ops_queries import last_reconciliation_run, registrations_by_status, time_to_synced
from registrations.sync_health import DEFAULT_RANGE, RANGES, sync_health

# The longest the page waits for a vendor check it had to start; after that it shows the last one.
CHECK_WAIT_SECONDS = 3.0


@blueprint.get("/")
def overview() -> str:
    """Sync health per vendor, registrations by status, open dead letters, queues, headroom, times."""
    settings = services().settings
    range_name = request.args.get("range", DEFAULT_RANGE)
    if range_name not in RANGES:
        range_name = DEFAULT_RANGE
    vendors = tuple(
        name for name, on in settings.enabled_systems().items() if on and name not in WITHOUT_CLIENT
    )
    # The broker, Redis and the vendors are asked at the same time, while the database answers.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ops-overview") as pool:
        queues = pool.submit(broker_queue_depths, settings)
        headroom = pool.submit(rate_limit_headroom, settings)
        checks = vendor_checks(settings)
        checks.latest()  # starts a stale check now, so it runs while the database answers
        dead_letters = DeadLetters(services().database).open_by_system_and_reason()
        with services().database.session() as session:
            health = sync_health(session, vendors, range_name)
            page = render_template(
                "ops/overview.html",
                health=health,
                ranges=RANGES,
                chart=stacked_bars(health.bars, vendors, health.since, health.range.bucket),
                checked=checks.latest(wait=CHECK_WAIT_SECONDS),
                statuses=registrations_by_status(session),
                dead_letters=dead_letters,
                sync_times=time_to_synced(session),
                reconciliation=last_reconciliation_run(session),
                queues=queues.result(),
                headroom=headroom.result(),
            )
    return page
