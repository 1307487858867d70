"""`/metrics` for Prometheus, behind the ops credentials or METRICS_TOKEN, and the intake's counts.

The series are defined in `config.metrics`; the gauges describing current state (registrations by
status, open dead letters, queue depths, rate-limit tokens) are read here at scrape time, each from
its own source, and a source that does not answer is left out rather than failing the scrape.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.ops.auth import check_credentials, check_token
from app.services import Services, services
from config import metrics
from config.credentials import Verdict, basic_credentials
from config.systems import SYSTEM_NAMES
from registrations.dead_letters import open_dead_letters
from registrations.models import DeadLetter, Registration
from registrations.ops_queries import last_reconciliation_report
from registrations.reconcile.plan import Outcome
from registrations.states import RegistrationStatus

# The registrations gauge: a series per status, zero included (`waiting`: a card found at the till
# waits for its owner's answer; a series that grows says the welcome mails' links go unanswered).
GAUGED_STATUSES = tuple(RegistrationStatus)
# The systems reconciliation writes to (its failed-writes gauge has a series for each, 0 included).
RECONCILED_SYSTEMS = ("shopify", "smaregi", "hubspot")

log = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)

# The endpoints that take registrations, and how each says "accepted".
INTAKE_ENDPOINTS = {"api.create_registration": ("api", 202), "form.register": ("form", 303)}
REJECTION_REASONS = {
    400: "malformed",
    409: "idempotency_conflict",
    413: "too_large",
    415: "not_json",
    422: "invalid",
    429: "rate_limited",
}


@blueprint.get("/metrics")
def scrape() -> Response:
    """The Prometheus text exposition of every series."""
    verdict = _authorised(services())
    if verdict.retry_after is not None:
        return Response(
            "too many failed attempts\n",
            status=429,
            headers={"Retry-After": str(verdict.retry_after)},
            mimetype="text/plain",
        )
    if not verdict.allowed:
        return Response(
            "authentication required\n",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="membersync metrics"'},
            mimetype="text/plain",
        )
    body = metrics.exposition(services().settings.metrics_dir, [StateCollector(services())])
    return Response(body, mimetype="text/plain; version=0.0.4")


def _authorised(found: Services) -> Verdict:
    """A bearer METRICS_TOKEN, or the ops console's basic-auth credentials; each wrong one counts
    against the client (and the username) in the sign-in throttle."""
    token = found.settings.metrics_token.value
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return check_token(header[len("Bearer ") :], token)
    given = basic_credentials(header)
    if given is None:
        return Verdict(False)  # no credentials at all: a plain 401, nothing to count
    return check_credentials(*given)


class StateCollector(Collector):
    """Gauges of what is true now, read from the database, the broker and Redis at scrape time."""

    def __init__(self, found: Services) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        yield from self._from_database()
        yield from self._from_reconciliation()
        yield from self._from_broker()
        yield from self._from_redis()

    def _from_database(self) -> Iterator[Metric]:
        try:
            with self.found.database.session() as session:
                statuses = session.execute(
                    select(Registration.status, func.count()).group_by(Registration.status)
                ).all()
                letters = session.execute(
                    open_dead_letters()
                    .with_only_columns(DeadLetter.system, func.count())
                    .group_by(DeadLetter.system)
                    .order_by(None)
                ).all()
        except Exception:
            log.warning("metrics: the database did not answer")
            return
        by_status = GaugeMetricFamily(
            "membersync_registrations", "Registrations by status", labels=["status"]
        )
        counted = dict(statuses)
        for status in GAUGED_STATUSES:
            by_status.add_metric([status], float(counted.get(status, 0)))
        yield by_status
        open_letters = GaugeMetricFamily(
            "membersync_open_dead_letters", "Dead letters waiting for ops", labels=["system"]
        )
        # Every system has a series, 0 when nothing is open: "No data" on a dashboard would hide it.
        open_by_system = {system: 0 for system in SYSTEM_NAMES} | {
            str(system): count for system, count in letters
        }
        for system, count in open_by_system.items():
            open_letters.add_metric([system], float(count))
        yield open_letters

    def _from_reconciliation(self) -> Iterator[Metric]:
        """The last reconciliation run that did its work: when it ended, how long, what it found."""
        try:
            with self.found.database.session() as session:
                run = last_reconciliation_report(session)
                if run is None:
                    # No run yet: every series at 0 (the timestamp stays absent: 0 would read as 1970).
                    finished, report, counts = None, {}, {}
                else:
                    finished, report, counts = run.finished_at, run.report or {}, dict(run.counts or {})
        except Exception:
            log.warning("metrics: the database did not answer")
            return
        if finished is not None:
            yield GaugeMetricFamily(
                "membersync_reconciliation_last_run_timestamp_seconds",
                "When the last reconciliation run ended (Unix time)",
                value=finished.timestamp(),
            )
        yield GaugeMetricFamily(
            "membersync_reconciliation_last_run_seconds",
            "The last reconciliation run's own duration (rate-limit waits excluded)",
            value=float(report.get("seconds") or 0.0),
        )
        outcomes = GaugeMetricFamily(
            "membersync_reconciliation_last_run_outcomes",
            "People per outcome in the last reconciliation run",
            labels=["outcome"],
        )
        for outcome, count in sorted(({outcome.value: 0 for outcome in Outcome} | counts).items()):
            outcomes.add_metric([outcome], float(count))
        yield outcomes
        failed = GaugeMetricFamily(
            "membersync_reconciliation_last_run_failed_writes",
            "Writes that failed in the last reconciliation run",
            labels=["system"],
        )
        failed_writes = {system: 0 for system in RECONCILED_SYSTEMS} | dict(report.get("failed_writes") or {})
        for system, count in sorted(failed_writes.items()):
            failed.add_metric([system], float(count))
        yield failed

    def _from_broker(self) -> Iterator[Metric]:
        from tasks.queues import queue_depths

        try:
            depths = queue_depths(self.found.settings.broker_url, connect_timeout=2)
        except Exception:
            log.warning("metrics: the broker did not answer")
            return
        family = GaugeMetricFamily("membersync_queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, depth in depths.items():
            family.add_metric([queue], float(depth))
        yield family

    def _from_redis(self) -> Iterator[Metric]:
        import redis

        from connectors.tokenbucket import client_limiters

        try:
            client = redis.Redis.from_url(self.found.settings.effective_redis_url, socket_timeout=2)
            # Every bucket, by its name: a system that counts writes apart has "<system>:write" too.
            states = {
                bucket.name: bucket.state()
                for buckets in client_limiters(self.found.settings, client).values()
                for bucket in buckets.values()
            }
        except Exception:
            log.warning("metrics: Redis did not answer")
            return
        tokens = GaugeMetricFamily(
            "membersync_rate_limit_tokens", "Tokens left in each system's shared budget", labels=["system"]
        )
        capacity = GaugeMetricFamily(
            "membersync_rate_limit_capacity", "Size of each system's shared budget", labels=["system"]
        )
        for name, state in states.items():
            tokens.add_metric([name], state["tokens"])
            capacity.add_metric([name], state["capacity"])
        yield tokens
        yield capacity


@functools.cache
def _intake_series(source: str) -> tuple[Any, Any]:
    """The intake's time and accepted-count series of `source`, looked up once per process (a
    label lookup takes a lock and builds a tuple on every call)."""
    return metrics.INTAKE_SECONDS.labels(source), metrics.REGISTRATIONS_ACCEPTED.labels(source)


def init_app(flask_app: Flask) -> None:
    """Count and time every registration post, accepted or refused."""

    @flask_app.before_request
    def _start_clock() -> None:
        if request.endpoint in INTAKE_ENDPOINTS and request.method == "POST":
            g.intake_started = time.perf_counter()

    @flask_app.after_request
    def _count(response: Any) -> Any:
        started = g.pop("intake_started", None)
        if started is None:
            return response
        source, accepted = INTAKE_ENDPOINTS[str(request.endpoint)]
        seconds, accepted_count = _intake_series(source)
        seconds.observe(time.perf_counter() - started)
        if response.status_code == accepted:
            accepted_count.inc()
        else:
            reason = REJECTION_REASONS.get(response.status_code, f"http_{response.status_code}")
            metrics.REGISTRATIONS_REJECTED.labels(reason).inc()
        return response
