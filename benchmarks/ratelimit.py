"""`membersync bench ratelimit`: how close the global rate limiter gets to a vendor's limit, safely.

Many concurrent callers (`--threads` in each of `--processes` processes, 8 x 2 by default) call a
rolling-window vendor for `--seconds` (25 by default) through the real connector and the real shared
budget (`connectors.tokenbucket.client_limiters`: for these vendors the window log of
`connectors.rollingwindow`), against the vendor's sandbox emulator in this process with the same limit:

- HubSpot (the default): contact upserts (`HubSpotClient.upsert_contact`) against a rolling ten-second
  limit of `--limit-per-10s` (100 by default, HubSpot's Free/Starter figure; HUBSPOT_RATE_LIMIT_PER_10S);
- `--vendor smaregi`: half the threads create members (writes), half look a code up (reads), through
  `SmaregiClient` and its two budgets, against the emulator's 10 reads and 4 writes per second (the
  figures a third party measured on Smaregi's sandbox; SMAREGI_READ/WRITE_RATE_PER_SECOND).

Redis is REDIS_URL when it answers, else an embedded valkey-server. The budgets get keys of their own
for the run, so a pipeline sharing that Redis keeps its own.

A caller refused by our own budget (`RateLimited`) waits the time it names: that is a wait, not a
call. The last stdout line is one JSON object; per kind of call (`kinds`: HubSpot's `calls`,
Smaregi's `reads` and `writes`), and at the top level for the kind furthest from its limit:

- `calls`: requests the emulator accepted (2xx) during the run; `achieved_per_second`: calls / seconds;
- `sustained_limit_per_second`: the vendor's limit / its window;
- `utilisation`: achieved / sustained limit over the whole run. A window allows its whole limit at
  once, so a short run's figure includes the first burst and can exceed 1;
- `sustained_utilisation`: the share of the sustained rate in the whole windows after the first one
  (the target's figure; None for a run shorter than two windows);
- `throttled_responses`: 429s the emulator answered (0 when our limiter works), and at the top level
  `throttled_share` of all answered requests;
- `waits` (refusals by our budget), `errors` (anything else), `peak_in_any_window` (most calls that
  completed within any one window), `limit`, `window_seconds`, threads and processes;
- `--latency-ms` delays each answer of the emulator: a call counts in our log until its answer + the
  window, so the sustained share is about limit / (window + answer time).

`--vendor shopify` measures Shopify instead, through the whole pipeline (`bench pipeline`'s
machinery: intake, broker, `--workers` worker processes, 4 by default, with `--concurrency` threads
each): `--registrations` registrations against a Shopify emulator whose cost bucket is
`--bucket-size` deep and restores `--restore-rate` points a second (the Standard plan: 2,000 and
100), our own Shopify budget (SHOPIFY_BUCKET_SIZE, SHOPIFY_RESTORE_RATE) at the same figures and the
other vendors' limits out of the way. The emulator runs in this process, so every charge and refund
of its bucket is recorded (ShopifySpend). Reported: `utilisation` (the share of the restore rate
spent once the bucket first ran dry, below a tenth of its size, to the last charge: the sustained
rate), `allowance_share` (points spent over the full bucket plus restore rate x the whole charged
span), `throttled_responses` (THROTTLED answers) and `throttled_share` of `calls` (GraphQL
requests), `dead_letters`, `lost`, `duplicated`, and the registrations' `per_second`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.pipeline import (
    BenchError,
    PipelineOptions,
    Probe,
    Say,
    bench_redis,
    bench_sandbox,
    run_pipeline_bench,
    sandbox_env,
    say,
    stop_on_sigterm,
    temporary_directory,
)

WINDOW_SECONDS = 10.0
READY_SECONDS = 60.0


@dataclass(frozen=True)
class RateLimitOptions:
    seconds: float = 25.0
    limit_per_10s: int = 100
    threads: int = 8
    processes: int = 2
    vendor: str = "hubspot"
    # Smaregi's per-second budgets (figures a third party measured on its sandbox), the emulator's and ours.
    read_per_second: int = 10
    write_per_second: int = 4
    # The emulator's answer time: a call counts in our log until its answer + the window.
    latency_ms: int = 0

    def check(self) -> None:
        if self.seconds <= 0:
            raise ValueError("--seconds must be positive")
        if self.limit_per_10s < 2:
            raise ValueError("--limit-per-10s must be at least 2")
        if self.threads < 1 or self.processes < 1:
            raise ValueError("--threads and --processes must be at least 1")
        if self.vendor not in ("hubspot", "smaregi"):
            raise ValueError("--vendor must be hubspot or smaregi here")
        if self.vendor == "smaregi" and self.threads < 2:
            raise ValueError("smaregi needs at least 2 threads a process (readers and writers)")
        if self.read_per_second < 1 or self.write_per_second < 1:
            raise ValueError("--read-per-second and --write-per-second must be at least 1")

    def limits(self) -> dict[str, tuple[int, float]]:
        """Per kind of call: (the vendor's limit, its window in seconds)."""
        if self.vendor == "smaregi":
            return {"reads": (self.read_per_second, 1.0), "writes": (self.write_per_second, 1.0)}
        return {"calls": (self.limit_per_10s, WINDOW_SECONDS)}

    def sandbox_limits(self) -> dict[str, str]:
        if self.vendor == "smaregi":
            return {
                "SANDBOX_SMAREGI_READ_RATE_PER_SECOND": str(self.read_per_second),
                "SANDBOX_SMAREGI_WRITE_RATE_PER_SECOND": str(self.write_per_second),
            }
        return {"SANDBOX_HUBSPOT_RATE_PER_10S": str(self.limit_per_10s)}

    def own_limits(self) -> dict[str, str]:
        if self.vendor == "smaregi":
            return {
                "SMAREGI_READ_RATE_PER_SECOND": str(self.read_per_second),
                "SMAREGI_WRITE_RATE_PER_SECOND": str(self.write_per_second),
            }
        return {"HUBSPOT_RATE_LIMIT_PER_10S": str(self.limit_per_10s)}


@dataclass
class Tally:
    calls: int = 0
    waits: int = 0
    throttled: int = 0
    errors: int = 0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.waits += other.waits
        self.throttled += other.throttled
        self.errors += other.errors


def _caller(
    call: Callable[[str], None], name: str, end: float, tally: Tally, done: list[float], lock: threading.Lock
) -> None:
    """Make `call(unique name)` until `end` (monotonic), counting calls, waits, 429s and errors."""
    from connectors.errors import ConnectorError, RateLimited, ThrottledError

    number = 0
    while True:
        now = time.monotonic()
        if now >= end:
            return
        number += 1
        try:
            call(f"{name}-{number}")
        except RateLimited as refused:
            with lock:
                tally.waits += 1
            time.sleep(max(0.001, min(refused.retry_after or 0.05, end - time.monotonic())))
        except ThrottledError as throttled:
            with lock:
                tally.throttled += 1
            time.sleep(max(0.0, min(throttled.retry_after or 1.0, end - time.monotonic())))
        except ConnectorError:
            with lock:
                tally.errors += 1
            time.sleep(0.1)
        else:
            with lock:
                tally.calls += 1
                done.append(time.time())


def _vendor_calls(vendor: str, env: dict[str, str], bucket_key: str) -> tuple[Any, dict[str, Any]]:
    """(the Redis client, {kind: call}) of one caller process: the real client on the real buckets,
    each bucket under this run's own key (see the module docstring)."""
    import redis

    from config.settings import Settings
    from connectors.tokenbucket import client_limiters

    settings = Settings.from_env(environ=env)
    client = redis.Redis.from_url(env["REDIS_URL"])
    buckets = client_limiters(settings, client)[vendor]
    for role, bucket in buckets.items():
        bucket.key = f"{bucket_key}:{role}"
    if vendor == "smaregi":
        from connectors.smaregi import SmaregiClient

        smaregi = SmaregiClient.from_settings(settings, **buckets)

        def write(name: str) -> None:
            code, mail = name[-20:], f"{name}@example.com"
            smaregi.create_member(customer_code=code, last_name="Rate", first_name="Limit", mail_address=mail)

        def read(name: str) -> None:
            smaregi.find_member_by_code(name[-20:])

        return client, {"writes": write, "reads": read}
    from connectors.hubspot import HubSpotClient

    hubspot = HubSpotClient.from_settings(settings, **buckets)

    def upsert(name: str) -> None:
        hubspot.upsert_contact(email=f"{name}@example.com", properties={"firstname": "Rate"})

    return client, {"calls": upsert}


def _callers_process(
    vendor: str,
    env: dict[str, str],
    bucket_key: str,
    index: int,
    threads: int,
    seconds: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One process of callers: its own Redis client and vendor client, shared by its threads (a
    vendor with several kinds of call, Smaregi's reads and writes, gives each kind its share)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    client, calls = _vendor_calls(vendor, env, bucket_key)
    ready.put(index)
    if not go.wait(READY_SECONDS):
        return
    end = time.monotonic() + seconds
    kinds = list(calls)
    tallies = {kind: Tally() for kind in kinds}
    done: dict[str, list[float]] = {kind: [] for kind in kinds}
    lock = threading.Lock()
    workers = []
    for n in range(threads):
        kind = kinds[n % len(kinds)]
        name = f"rl{index}x{n}{uuid.uuid4().hex[:6]}"
        workers.append(
            threading.Thread(
                target=_caller, args=(calls[kind], name, end, tallies[kind], done[kind], lock), daemon=True
            )
        )
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((index, {kind: (tallies[kind].__dict__, done[kind]) for kind in kinds}))
    client.close()


def peak_in_window(stamps: list[float], window: float = WINDOW_SECONDS) -> int:
    """The most timestamps within any `window` seconds."""
    ordered = sorted(stamps)
    peak = start = 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def kind_result(
    tally: Tally, stamps: list[float], limit: int, window: float, seconds: float, started: float
) -> dict[str, Any]:
    """One kind of call's figures: `utilisation` over the whole run, `sustained_utilisation` over the
    whole windows after the first one (None when the run is shorter than two windows).

    A vendor's window allows its whole limit at once, so a run starts with a burst, and a limiter that
    keeps to the window repeats it once a window: over a few windows calls / seconds overstates the
    share (the first burst) and its value depends on where the run stops. Counted in whole windows
    from the end of the first, it is the share of the vendor's sustained rate."""
    sustained = limit / window
    achieved = tally.calls / seconds
    windows = int((seconds - window) // window)
    steady = sum(1 for stamp in stamps if started + window <= stamp < started + window * (1 + windows))
    return {
        "achieved_per_second": round(achieved, 2),
        "sustained_limit_per_second": round(sustained, 2),
        "utilisation": round(achieved / sustained, 3),
        "sustained_utilisation": round(steady / (windows * limit), 3) if windows else None,
        "throttled_responses": tally.throttled,
        "calls": tally.calls,
        "waits": tally.waits,
        "errors": tally.errors,
        "peak_in_any_window": peak_in_window(stamps, window),
        "limit": limit,
        "window_seconds": window,
    }


def run_ratelimit_bench(
    options: RateLimitOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """Run the benchmark and return its result document (see the module docstring)."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        redis_url = stack.enter_context(bench_redis(tmp, environ, log))
        sandbox = stack.enter_context(bench_sandbox(options.sandbox_limits(), options.latency_ms))
        env = {
            **sandbox_env(sandbox),
            "MEMBERSYNC_ENV": "development",  # "test" is for the test suite only
            "REDIS_URL": redis_url,
            **options.own_limits(),
        }
        import redis

        bucket_key = f"membersync:bench:{uuid.uuid4().hex[:8]}:ratelimit:{options.vendor}"
        control = redis.Redis.from_url(redis_url)
        stack.callback(control.close)
        stack.callback(lambda: [control.delete(key) for key in control.scan_iter(f"{bucket_key}*")])

        context = multiprocessing.get_context("spawn")
        ready, results = context.Queue(), context.Queue()
        go = context.Event()
        processes = [
            context.Process(
                target=_callers_process,
                args=(
                    options.vendor,
                    env,
                    bucket_key,
                    index,
                    options.threads,
                    options.seconds,
                    ready,
                    go,
                    results,
                ),
                daemon=True,
            )
            for index in range(options.processes)
        ]
        stack.callback(_stop_processes, processes)
        for process in processes:
            process.start()
        for _ in processes:
            try:
                ready.get(timeout=READY_SECONDS)
            except queue.Empty:
                raise BenchError("the caller processes did not start") from None
        limits = options.limits()
        log(
            f"{options.processes} x {options.threads} callers for {options.seconds:g}s against "
            f"{options.vendor}'s limits "
            + ", ".join(f"{kind} {limit}/{window:g}s" for kind, (limit, window) in limits.items())
        )
        started = time.time()
        go.set()
        tallies = {kind: Tally() for kind in limits}
        stamps: dict[str, list[float]] = {kind: [] for kind in limits}
        deadline = time.monotonic() + options.seconds + 60
        for _ in processes:
            try:
                _index, by_kind = results.get(timeout=max(1.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError("the caller processes did not finish") from None
            for kind, (counts, done) in by_kind.items():
                tallies[kind].add(Tally(**counts))
                stamps[kind].extend(done)
        kinds = {
            kind: kind_result(tallies[kind], stamps[kind], limit, window, options.seconds, started)
            for kind, (limit, window) in limits.items()
        }
        # The headline is the kind furthest from its limit (HubSpot has one kind: its figures).
        worst = min(kinds.values(), key=lambda figures: figures["utilisation"])
        result = {
            "benchmark": "ratelimit",
            "vendor": options.vendor,
            **worst,
            "sustained_utilisation": min(
                (figures["sustained_utilisation"] for figures in kinds.values()),
                key=lambda value: float("inf") if value is None else value,
            ),
            "throttled_responses": sum(figures["throttled_responses"] for figures in kinds.values()),
            "calls": sum(figures["calls"] for figures in kinds.values()),
            "waits": sum(figures["waits"] for figures in kinds.values()),
            "errors": sum(figures["errors"] for figures in kinds.values()),
            "throttled_share": None,
            "kinds": kinds,
            "limit_per_10s": options.limit_per_10s,
            "seconds": options.seconds,
            "threads": options.threads,
            "processes": options.processes,
            "latency_ms": options.latency_ms,
        }
        if result["calls"]:
            result["throttled_share"] = round(
                result["throttled_responses"] / (result["calls"] + result["throttled_responses"]), 4
            )
        for kind, figures in kinds.items():
            log(
                f"{kind}: {figures['achieved_per_second']}/s of {figures['sustained_limit_per_second']}/s "
                f"(utilisation {figures['utilisation']}, after the first window "
                f"{figures['sustained_utilisation']}), {figures['throttled_responses']} throttled, "
                f"{figures['waits']} waits, {figures['errors']} errors, peak {figures['peak_in_any_window']} "
                f"in any {figures['window_seconds']:g}s"
            )
        return result
    raise AssertionError("unreachable")  # ExitStack could swallow an exception, as far as mypy knows


def _stop_processes(processes: list[Any]) -> None:
    for process in processes:
        process.join(5)  # a finished caller process is still flushing its result
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)


# --- Shopify through the whole pipeline ------------------------------------------------------------


@dataclass(frozen=True)
class ShopifyRateOptions:
    """`bench ratelimit --vendor shopify`: the pipeline with `workers` worker processes against a
    Shopify emulator at a plan's restore rate and bucket (Standard: 100 points/s, 2,000 deep), our own
    Shopify budget at the same figures, the other vendors out of the way."""

    registrations: int = 300
    workers: int = 4
    concurrency: int = 24
    restore_rate: float = 100.0
    bucket_size: float = 2000.0
    latency_ms: int = 0
    timeout_seconds: float = 600.0

    def check(self) -> None:
        if self.registrations < 1 or self.workers < 1 or self.concurrency < 1:
            raise ValueError("--registrations, --workers and --concurrency must be at least 1")
        if self.restore_rate <= 0 or self.bucket_size <= 0:
            raise ValueError("--restore-rate and --bucket-size must be positive")


class ShopifySpend(Probe):
    """Every cost-point charge and refund of the in-process Shopify emulator's bucket, with the
    points left after it, from `start` to `finish` (the class's methods wrapped for the run)."""

    def __init__(self, restore_rate: float, bucket_size: float) -> None:
        self.restore_rate = restore_rate
        self.bucket_size = bucket_size
        self.events: list[tuple[float, int, float]] = []  # (monotonic, points, points left after)
        self.lock = threading.Lock()
        self.recording = False
        self.throttled_before = 0
        self.calls_before = 0
        self.counts_before: dict[str, int] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[ShopifySpend]:
        from sandbox.shopify.cost import CostBucket

        spend, refund = CostBucket.try_spend, CostBucket.refund
        probe = self

        def try_spend(bucket: CostBucket, points: int) -> bool:
            taken = spend(bucket, points)
            if taken:
                probe.record(bucket, points)
            return taken

        def refund_points(bucket: CostBucket, points: int) -> None:
            refund(bucket, points)
            probe.record(bucket, -max(points, 0))

        setattr(CostBucket, "try_spend", try_spend)  # noqa: B010 (a method swapped for the run)
        setattr(CostBucket, "refund", refund_points)  # noqa: B010
        try:
            yield self
        finally:
            setattr(CostBucket, "try_spend", spend)  # noqa: B010
            setattr(CostBucket, "refund", refund)  # noqa: B010

    def record(self, bucket: Any, points: int) -> None:
        if self.recording:
            with self.lock:
                self.events.append((time.monotonic(), points, float(bucket._available)))

    def start(self, urls: Mapping[str, str]) -> None:
        with self.lock:
            self.events.clear()
        before = _shopify_counts(urls)
        self.counts_before = before
        self.throttled_before = before.get("graphql.throttled", 0)
        self.calls_before = before.get("graphql", 0)
        self.recording = True

    def finish(self, urls: Mapping[str, str]) -> dict[str, Any]:
        self.recording = False
        counts = _shopify_counts(urls)
        throttled = counts.get("graphql.throttled", 0) - self.throttled_before
        calls = counts.get("graphql", 0) - self.calls_before  # every GraphQL request, THROTTLED included
        by_operation = {
            name.removeprefix("graphql."): count - self.counts_before.get(name, 0)
            for name, count in sorted(counts.items())
            if name.startswith("graphql.") and count > self.counts_before.get(name, 0)
        }
        return {
            **self.shares(),
            "throttled_responses": throttled,
            "shopify_graphql_calls": calls,
            "shopify_calls_by_operation": by_operation,
        }

    def shares(self) -> dict[str, Any]:
        """`utilisation`: the share of the sustained rate spent from the moment the bucket first ran
        dry (below a tenth of its size) to the last charge: (points spent in that span - what the
        bucket gave up from its level at the start of the span to its level at the end, if it fell) /
        (restore rate x span), i.e. 1 - (restored points left unspent) / (restore rate x span). It is
        below 1 when the bucket refilled in the span (the pipeline asked for less than Shopify
        restores), 1 when it stayed low throughout; THROTTLED answers say whether it overshot.
        `allowance_share`: points spent over all the run allowed (a full bucket + restore rate x the
        span from the first charge to the last). None where there was no such span."""
        with self.lock:
            events = list(self.events)
        if not events:
            return {"utilisation": None, "allowance_share": None, "points_spent": 0}
        spent = sum(points for _, points, _ in events)
        first, last = events[0][0], events[-1][0]
        allowance = self.bucket_size + self.restore_rate * (last - first)
        dry = next((n for n, (_, _, left) in enumerate(events) if left < self.bucket_size / 10), None)
        utilisation = sustained_points = None
        if dry is not None and last > events[dry][0]:
            start_time, _, left_at_start = events[dry]
            in_span = sum(points for _, points, _ in events[dry + 1 :])
            restored_and_spent = in_span - (left_at_start - events[-1][2])
            span = last - start_time
            sustained_points = restored_and_spent / span
            utilisation = sustained_points / self.restore_rate
        return {
            "utilisation": None if utilisation is None else round(utilisation, 3),
            "allowance_share": round(spent / allowance, 3) if allowance > 0 else None,
            "points_spent": spent,
            "sustained_points_per_second": None if sustained_points is None else round(sustained_points, 2),
            "dry_after_seconds": None if dry is None else round(events[dry][0] - first, 2),
            "charged_seconds": round(last - first, 2),
        }


def _shopify_counts(urls: Mapping[str, str]) -> dict[str, int]:
    import requests

    response = requests.get(f"{urls['shopify']}/_sandbox/state", timeout=30)
    response.raise_for_status()
    counts: dict[str, int] = response.json().get("requests") or {}
    return counts


def run_shopify_ratelimit_bench(
    options: ShopifyRateOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """The pipeline bench at Shopify's plan limits; see ShopifyRateOptions and ShopifySpend."""
    options.check()
    restore, size = f"{options.restore_rate:g}", f"{options.bucket_size:g}"
    probe = ShopifySpend(options.restore_rate, options.bucket_size)
    with probe.installed():
        result = run_pipeline_bench(
            PipelineOptions(
                registrations=options.registrations,
                latency_ms=options.latency_ms,
                concurrency=options.concurrency,
                workers=options.workers,
                timeout_seconds=options.timeout_seconds,
                baseline_registrations=0,
                bare=False,
            ),
            environ,
            log,
            sandbox_limits={"SANDBOX_SHOPIFY_BUCKET": size, "SANDBOX_SHOPIFY_RESTORE_RATE": restore},
            own_limits={"SHOPIFY_BUCKET_SIZE": size, "SHOPIFY_RESTORE_RATE": restore},
            probe=probe,
        )
    document = {
        "benchmark": "ratelimit",
        "vendor": "shopify",
        "utilisation": result["utilisation"],
        "allowance_share": result["allowance_share"],
        "throttled_responses": result["throttled_responses"],
        "dead_letters": result["dead_letters"],
        "lost": result["lost"],
        "duplicated": result["duplicated"],
        "duplicated_by_system": result["duplicated_by_system"],
        "intake_errors": result["intake_errors"],
        "intake_seconds": result["intake_seconds"],
        # The bucket never ran dry: the pipeline (intake, workers, this machine) asked for less than
        # Shopify allowed, so `utilisation` is not defined and `allowance_share` says how much less.
        "shopify_bound": result["dry_after_seconds"] is not None,
        "calls": result["shopify_graphql_calls"],
        "calls_by_operation": result["shopify_calls_by_operation"],
        "throttled_share": (
            round(result["throttled_responses"] / result["shopify_graphql_calls"], 4)
            if result["shopify_graphql_calls"]
            else None
        ),
        "restore_rate": options.restore_rate,
        "bucket_size": options.bucket_size,
        "sustained_points_per_second": result["sustained_points_per_second"],
        "points_spent": result["points_spent"],
        "dry_after_seconds": result["dry_after_seconds"],
        "charged_seconds": result["charged_seconds"],
        "registrations": options.registrations,
        "per_second": result["per_second"],
        "workers": options.workers,
        "concurrency": options.concurrency,
        "latency_ms": options.latency_ms,
        "database": result["database"],
        "statuses": result["statuses"],
    }
    log(
        f"Shopify: utilisation {document['utilisation']} of {options.restore_rate:g} points/s once dry, "
        f"{document['throttled_responses']} THROTTLED of {document['calls']} calls, "
        f"{document['dead_letters']} dead letters"
    )
    return document
