"""`membersync bench intake`: requests per second the production web process accepts, against a bare
Flask app under the same gunicorn settings, in the same run.

What runs: the Procfile's `web:` line as it is (its `${VAR:-default}` values from the environment, so
WEB_CONCURRENCY, GUNICORN_THREADS and GUNICORN_CMD_ARGS apply), bound to a free port on 127.0.0.1,
its access log going to a file as production sends it to stdout; first with the bare app
(`benchmarks.bare_intake:application`, a 202 and nothing else), then with `app.wsgi:application`.
The database is DATABASE_URL (`--database-url`), else a temporary SQLite file (the embedded
default); the broker the Redis of REDIS_URL when it answers, else an embedded valkey-server. No
worker runs: the chains the intake publishes wait on the broker and are purged at the end. The
per-client intake rate limit (INTAKE_RATE_LIMIT) is off: every request comes from 127.0.0.1, where a
campaign surge comes from many clients.

The load: `wrk` when it is installed (Debian's `wrk` package), with `--connections` connections on
two threads for `--seconds` seconds after a one-second warm-up, else a Python driver (one thread
and one keep-alive session per connection; it shares the GIL, so it is slower than wrk and the
figures are lower for both sides). Every request is a valid registration of a person of its own
(distinct e-mail address and phone), and every tenth repeats the one five requests before it with
the same Idempotency-Key (a client's retry: 202, replayed), so the real intake path is measured.

The last stdout line is one JSON object: `per_second` (requests answered per second), `p50_ms`,
`p99_ms` and `errors` (answers other than 202, plus socket errors) for ours; the same for the bare
app as `baseline_*`; `ratio` = per_second / baseline_per_second; and the settings used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.engine import make_url

from benchmarks.pipeline import (
    PROJECT,
    BenchError,
    Say,
    Worker,
    bench_process_env,
    bench_redis,
    free_port,
    percentile,
    purge_queues,
    say,
    stop_on_sigterm,
    temporary_directory,
    wait_for_health,
)

OUR_APP = "app.wsgi:application"
BARE_APP = "benchmarks.bare_intake:application"
WARM_UP_SECONDS = 1

WRK_SCRIPT = r"""
-- membersync bench intake: valid registrations, a distinct person per request, every tenth a retry.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  run = args[1]
  n = 0
  non202 = 0
end

function request()
  n = n + 1
  local k = n
  if n % 10 == 0 then k = n - 5 end
  local phone = (id * 10000000 + k) % 100000000
  local body = string.format(
    '{"email":"bench-%s-t%d-%d@example.com","first_name":"Hanako","last_name":"Yamada",' ..
    '"first_name_kana":"\227\131\143\227\131\138\227\130\179",' ..
    '"last_name_kana":"\227\131\164\227\131\158\227\131\128",' ..
    '"phone":"080%08d","locale":"%s"}',
    run, id, k, phone, (k % 2 == 0) and "en" or "ja")
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = string.format("bench-%s-t%d-%d", run, id, k)
  return wrk.format("POST", "/api/registrations", headers, body)
end

function response(status, headers, body)
  if status ~= 202 then non202 = non202 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non202") end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_202": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class IntakeOptions:
    seconds: float = 8.0
    connections: int = 16
    driver: str = "auto"  # auto (wrk when installed), wrk, python

    def check(self) -> None:
        if self.seconds <= 0:
            raise ValueError("--seconds must be positive")
        if self.connections < 1:
            raise ValueError("--connections must be at least 1")
        if self.driver not in ("auto", "wrk", "python"):
            raise ValueError("--driver must be auto, wrk or python")


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    non_202: int
    socket_errors: int

    @property
    def per_second(self) -> float | None:
        return self.requests / self.seconds if self.seconds > 0 else None

    @property
    def errors(self) -> int:
        return self.non_202 + self.socket_errors


def procfile_web_argv(port: int, environ: Mapping[str, str], app: str = OUR_APP) -> list[str]:
    """The Procfile's `web:` command with its `${VAR:-default}` values from `environ`, bound to
    127.0.0.1:`port`, run with this interpreter, serving `app`."""
    line = next(
        (raw for raw in (PROJECT / "Procfile").read_text().splitlines() if raw.startswith("web:")), None
    )
    if line is None:
        raise BenchError("the Procfile has no web: line")

    def expand(match: re.Match[str]) -> str:
        return environ.get(match.group(1)) or match.group(2)

    argv = shlex.split(re.sub(r"\$\{(\w+):-([^}]*)\}", expand, line.partition(":")[2]))
    if not argv or argv[0] != "gunicorn" or OUR_APP not in argv or "--bind" not in argv:
        raise BenchError(f"the Procfile's web line is not the gunicorn command this bench knows: {line}")
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index(OUR_APP)] = app
    return [sys.executable, "-m", *argv]


def wrk_load(url: str, options: IntakeOptions, run_id: str, tmp: Path, seconds: float) -> Load:
    script = tmp / "intake.lua"
    script.write_text(WRK_SCRIPT)
    threads = max(1, min(2, options.connections))
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{options.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{url}/api/registrations",
            "--",
            run_id,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    found = re.search(r"^WRK_RESULT (\{.*\})$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or not found:
        raise BenchError(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(found.group(1))
    return Load(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        non_202=figures["non_202"],
        socket_errors=figures["socket_errors"],
    )


def registration(run_id: str, connection: int, number: int) -> tuple[str, dict[str, Any]]:
    """(Idempotency-Key, body) of request `number` on `connection`: every tenth repeats the fifth before."""
    k = number - 5 if number % 10 == 0 else number
    phone = (connection * 10_000_000 + k) % 100_000_000
    document = {
        "email": f"bench-{run_id}-t{connection}-{k}@example.com",
        "first_name": "Hanako",
        "last_name": "Yamada",
        "first_name_kana": "ハナコ",
        "last_name_kana": "ヤマダ",
        "phone": f"080{phone:08d}",
        "locale": "en" if k % 2 == 0 else "ja",
    }
    return f"bench-{run_id}-t{connection}-{k}", document


def python_load(url: str, options: IntakeOptions, run_id: str, seconds: float) -> Load:
    """One thread and one keep-alive session per connection, posting until the time is up."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    socket_errors = 0
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def connection(index: int) -> None:
        nonlocal socket_errors
        session = requests.Session()
        number = 0
        mine: list[float] = []
        counts: Counter[int] = Counter()
        failures = 0
        while time.monotonic() < end:
            number += 1
            key, document = registration(run_id, index + 1, number)
            started = time.perf_counter()
            try:
                answer = session.post(
                    f"{url}/api/registrations", json=document, headers={"Idempotency-Key": key}, timeout=10
                )
            except requests.RequestException:
                failures += 1
                continue
            mine.append(time.perf_counter() - started)
            counts[answer.status_code] += 1
        session.close()
        with lock:
            latencies.extend(mine)
            statuses.update(counts)
            socket_errors += failures

    started = time.monotonic()
    workers = [threading.Thread(target=connection, args=(n,)) for n in range(options.connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return Load(
        requests=sum(statuses.values()),
        seconds=elapsed,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        non_202=sum(count for status, count in statuses.items() if status != 202),
        socket_errors=socket_errors,
    )


def run_intake_bench(
    options: IntakeOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """Run the benchmark and return its result document (see the module docstring)."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    use_wrk = options.driver == "wrk" or (options.driver == "auto" and shutil.which("wrk") is not None)
    if options.driver == "wrk" and shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk); use --driver python")
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        redis_url = stack.enter_context(bench_redis(tmp, environ, log))
        database_url = environ.get("DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
        env = bench_process_env(
            {name: value for name, value in environ.items() if name != "SENTRY_DSN"},
            database_url=database_url,
            redis_url=redis_url,
        )
        from config.settings import Settings
        from registrations.database import Database

        settings = Settings.from_env(environ=env)
        database = Database.from_settings(settings)
        log(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
        database.upgrade()
        database.dispose()
        stack.callback(database.dispose)
        stack.callback(purge_queues, settings.broker_url)  # the chains nobody took

        def measure(app: str, name: str) -> tuple[Load, list[str], int]:
            port = free_port()
            argv = procfile_web_argv(port, env, app)
            web = Worker(argv, env, tmp / f"{name}.log", ready_marker=b"Booting worker")
            try:
                web.start(log)
                url = f"http://127.0.0.1:{port}"
                wait_for_health(url, web)
                run_id = uuid.uuid4().hex[:8]
                if use_wrk:
                    wrk_load(url, options, f"{run_id}w", tmp, WARM_UP_SECONDS)
                    before = _registrations(database)
                    load = wrk_load(url, options, run_id, tmp, options.seconds)
                else:
                    python_load(url, options, f"{run_id}w", WARM_UP_SECONDS)
                    before = _registrations(database)
                    load = python_load(url, options, run_id, options.seconds)
                created = _registrations(database) - before
                if load.errors:
                    log(f"{name}: {load.errors} errors; the web log's tail:\n{web.log_tail(2000)}")
            finally:
                web.stop()
            log(
                f"{name}: {load.per_second or 0:.1f} requests/s, p50 {load.p50_ms or 0:.1f} ms, "
                f"p99 {load.p99_ms or 0:.1f} ms, {load.errors} errors"
            )
            return load, argv, created

        bare, _, _ = measure(BARE_APP, "bare")
        ours, argv, created = measure(OUR_APP, "intake")
        database.dispose()
        ratio = ours.per_second / bare.per_second if ours.per_second and bare.per_second else None
        return {
            "benchmark": "intake",
            "per_second": _round(ours.per_second, 1),
            "p50_ms": _round(ours.p50_ms),
            "p99_ms": _round(ours.p99_ms),
            "errors": ours.errors,
            "baseline_per_second": _round(bare.per_second, 1),
            "baseline_p50_ms": _round(bare.p50_ms),
            "baseline_p99_ms": _round(bare.p99_ms),
            "baseline_errors": bare.errors,
            "ratio": _round(ratio, 3),
            "requests": ours.requests,
            "non_202": ours.non_202,
            # Rows the intake wrote under the timed load: about nine in ten requests, the tenth a replay.
            "registrations_created": created,
            "socket_errors": ours.socket_errors,
            "seconds": options.seconds,
            "connections": options.connections,
            "driver": "wrk" if use_wrk else "python",
            "database": make_url(database_url).get_backend_name(),
            "web_argv": " ".join(argv[2:]),
        }
    raise AssertionError("unreachable")  # ExitStack could swallow an exception, as far as mypy knows


def _registrations(database: Any) -> int:
    from sqlalchemy import func, select

    from registrations.models import Registration

    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Registration)) or 0)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
