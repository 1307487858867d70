"""`membersync bench ratelimit`: how close the global rate limiter gets to a vendor's limit, safely.

Many concurrent callers (`--threads` in each of `--processes` processes, 8 x 2 by default) upsert
HubSpot contacts for `--seconds` (25 by default) through the real connector
(`connectors.hubspot.HubSpotClient`) and the real shared budget (the HubSpot `RedisTokenBucket` of
`connectors.tokenbucket.limiters_from_settings`, sized from HUBSPOT_RATE_LIMIT_PER_10S), against the
sandbox HubSpot emulator in this process, whose rolling ten-second limit is set to the same
`--limit-per-10s` (100 by default, HubSpot's Free/Starter figure). Redis is REDIS_URL when it answers,
else an embedded valkey-server. The bucket gets a key of its own for the run, so a pipeline sharing
that Redis keeps its budget.

A caller refused by our own bucket (`RateLimited`) waits the time the bucket names: that is a wait, not
a call. The last stdout line is one JSON object:

- `calls`: requests the emulator accepted (2xx) during the run;
- `achieved_per_second`: calls / seconds;
- `sustained_limit_per_second`: the vendor's limit per ten seconds / 10;
- `utilisation`: achieved / sustained limit (below 1 by design: the bucket keeps slack for jitter
  and for steps under way, see `rolling_window_bucket`; about 0.76 at 100 per 10 s);
- `throttled_responses`: 429s the emulator answered; 0 when our limiter works;
- and `waits` (refusals by our bucket), `errors` (anything else), `peak_in_any_window` (most calls
  that completed within any ten seconds), the bucket's configured sizes, threads and processes.
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks.pipeline import (
    BenchError,
    Say,
    bench_redis,
    bench_sandbox,
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

    def check(self) -> None:
        if self.seconds <= 0:
            raise ValueError("--seconds must be positive")
        if self.limit_per_10s < 2:
            raise ValueError("--limit-per-10s must be at least 2")
        if self.threads < 1 or self.processes < 1:
            raise ValueError("--threads and --processes must be at least 1")


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
    hubspot: Any, name: str, end: float, tally: Tally, done: list[float], lock: threading.Lock
) -> None:
    """Upsert contacts until `end` (monotonic), counting calls, waits, 429s and errors."""
    from connectors.errors import ConnectorError, RateLimited, ThrottledError

    number = 0
    while True:
        now = time.monotonic()
        if now >= end:
            return
        number += 1
        try:
            hubspot.upsert_contact(email=f"{name}-{number}@example.com", properties={"firstname": "Rate"})
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


def _callers_process(
    env: dict[str, str],
    bucket_key: str,
    index: int,
    threads: int,
    seconds: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One process of callers: its own Redis client and HubSpot client, shared by its threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    import redis

    from config.settings import Settings
    from connectors.hubspot import HubSpotClient
    from connectors.tokenbucket import limiters_from_settings

    settings = Settings.from_env(environ=env)
    client = redis.Redis.from_url(env["REDIS_URL"])
    bucket = limiters_from_settings(settings, client)["hubspot"]
    bucket.key = bucket_key  # this run's own budget (see the module docstring)
    hubspot = HubSpotClient.from_settings(settings, limiter=bucket)
    ready.put(index)
    if not go.wait(READY_SECONDS):
        return
    end = time.monotonic() + seconds
    tally = Tally()
    done: list[float] = []
    lock = threading.Lock()
    workers = [
        threading.Thread(
            target=_caller, args=(hubspot, f"rl{index}x{n}", end, tally, done, lock), daemon=True
        )
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((index, tally.__dict__, done))
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


def run_ratelimit_bench(
    options: RateLimitOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """Run the benchmark and return its result document (see the module docstring)."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        redis_url = stack.enter_context(bench_redis(tmp, environ, log))
        sandbox = stack.enter_context(
            bench_sandbox({"SANDBOX_HUBSPOT_RATE_PER_10S": str(options.limit_per_10s)}, latency_ms=0)
        )
        env = {
            "MEMBERSYNC_ENV": "development",  # "test" is for the test suite only
            "REDIS_URL": redis_url,
            "HUBSPOT_API_URL": sandbox.urls["hubspot"],
            "HUBSPOT_RATE_LIMIT_PER_10S": str(options.limit_per_10s),
        }
        import redis

        from config.settings import Settings
        from connectors.tokenbucket import rolling_window_bucket

        capacity, per_second = rolling_window_bucket(
            Settings.from_env(environ=env).hubspot_rate_limit_per_10s, WINDOW_SECONDS
        )
        bucket_key = f"membersync:bench:{uuid.uuid4().hex[:8]}:ratelimit:hubspot"
        control = redis.Redis.from_url(redis_url)
        stack.callback(control.close)
        stack.callback(control.delete, bucket_key)

        context = multiprocessing.get_context("spawn")
        ready, results = context.Queue(), context.Queue()
        go = context.Event()
        processes = [
            context.Process(
                target=_callers_process,
                args=(env, bucket_key, index, options.threads, options.seconds, ready, go, results),
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
        log(
            f"{options.processes} x {options.threads} callers for {options.seconds:g}s against a HubSpot "
            f"limit of {options.limit_per_10s}/10s (our bucket: {capacity:g} deep, {per_second:.2f}/s)"
        )
        go.set()
        tally = Tally()
        stamps: list[float] = []
        deadline = time.monotonic() + options.seconds + 60
        for _ in processes:
            try:
                _index, counts, done = results.get(timeout=max(1.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError("the caller processes did not finish") from None
            tally.add(Tally(**counts))
            stamps.extend(done)
        sustained = options.limit_per_10s / WINDOW_SECONDS
        achieved = tally.calls / options.seconds
        result = {
            "benchmark": "ratelimit",
            "achieved_per_second": round(achieved, 2),
            "sustained_limit_per_second": round(sustained, 2),
            "utilisation": round(achieved / sustained, 3),
            "throttled_responses": tally.throttled,
            "calls": tally.calls,
            "waits": tally.waits,
            "errors": tally.errors,
            "peak_in_any_window": peak_in_window(stamps),
            "limit_per_10s": options.limit_per_10s,
            "seconds": options.seconds,
            "threads": options.threads,
            "processes": options.processes,
            "bucket_capacity": round(capacity, 2),
            "bucket_per_second": round(per_second, 3),
        }
        log(
            f"{result['achieved_per_second']}/s of {result['sustained_limit_per_second']}/s "
            f"(utilisation {result['utilisation']}), {tally.throttled} throttled, {tally.waits} waits, "
            f"{tally.errors} errors, peak {result['peak_in_any_window']} in any {WINDOW_SECONDS:g}s"
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
