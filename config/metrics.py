"""Every Prometheus series Membersync exports, defined once (all named `membersync_*`).

Counters and histograms are updated where things happen (the intake, the step tasks); gauges that
describe state (registrations by status, open dead letters, queue depths, rate-limit tokens) are
read at scrape time by the web app's collector, so they are true whichever process serves them.

Several processes (gunicorn workers, the Celery worker and its pool) each keep their own counts:
with PROMETHEUS_MULTIPROC_DIR set (a folder shared by the processes of one host; `membersync dev`
and docker-compose set it), each process writes its values there and `/metrics` adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from config.systems import SYSTEM_NAMES

REGISTRATIONS_ACCEPTED = Counter(
    "membersync_registrations_accepted_total", "Registrations accepted (202) by the intake", ["source"]
)
REGISTRATIONS_REJECTED = Counter(
    "membersync_registrations_rejected_total", "Registration posts refused, by reason", ["reason"]
)
INTAKE_SECONDS = Histogram(
    "membersync_intake_seconds",
    "Time to answer a registration post",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STEP_OUTCOMES = Counter(
    "membersync_step_outcomes_total",
    "Runs of a pipeline step by outcome (succeeded, retried, deferred, dead, skipped, already_done)",
    ["system", "outcome"],
)
STEP_RETRIES = Counter("membersync_step_retries_total", "Step attempts that will be retried", ["system"])
DEAD_LETTERS = Counter(
    "membersync_dead_letters_total", "Steps dead-lettered, by system and reason", ["system", "reason"]
)
TIME_TO_SYNCED = Histogram(
    "membersync_time_to_synced_seconds",
    "From acceptance to every system synced",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600),
)
STEP_OVER_BUDGET = Counter(
    "membersync_steps_over_budget_total", "Steps found running past their retry budget", ["system"]
)


def _zero_known_series() -> None:
    """Create the series whose labels are known in advance, at 0: a counter that has never moved is
    then a 0 on a dashboard and in `rate()`, not "No data". (Reasons and outcomes are open-ended and
    appear with their first count.)"""
    for source in ("api", "form"):
        REGISTRATIONS_ACCEPTED.labels(source)
        INTAKE_SECONDS.labels(source)
    for system in SYSTEM_NAMES:
        STEP_RETRIES.labels(system)
        STEP_OVER_BUDGET.labels(system)


_zero_known_series()


class _Summed(Collector):
    """Several sources of the same series as one: samples with the same name and labels add up."""

    def __init__(self, sources: list[Collector]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for source in self.sources:
            for family in source.collect():
                families.setdefault(family.name, family)
                summed = totals.setdefault(family.name, {})
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    summed[key] = summed.get(key, 0.0) + sample.value
        for name, family in families.items():
            family.samples = [
                Sample(sample_name, dict(labels), value)
                for (sample_name, labels), value in totals[name].items()
            ]
            yield family


def exposition(folder: str | None, extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of every process's series on this host (those writing to `folder`, the
    PROMETHEUS_MULTIPROC_DIR) plus the `extra` collectors."""
    sources: list[Collector] = []
    if folder:
        sources.append(MultiProcessCollector(None, path=folder))
    if values.ValueClass is values.MutexValue:
        # This process keeps its values in memory (it started without the folder): add them.
        sources.append(REGISTRY)
    registry = CollectorRegistry()
    registry.register(_Summed(sources))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)
