"""`membersync bench pipeline`: registrations per second end to end, on this machine, for real.

What runs: the sandbox emulators and the SMTP catcher in this process on free ports, each vendor
emulator answering after `latency_ms` (`POST /_sandbox/faults {"latency_ms": L}`) and with rate limits
far above what is measured (ours raised to match: the vendors' limits are not what this measures);
the database of DATABASE_URL, else a temporary SQLite file; the Redis of REDIS_URL when it answers,
else an embedded valkey-server; `--workers` `celery -A tasks.celery_app worker` subprocesses (one by
default) with the pool and concurrency asked for, and ONE gunicorn web process serving `app.wsgi` on
a free port, all configured only by environment variables (as the Procfile runs them). N
registrations are posted over HTTP to that intake (`--intake-threads` client threads, one
keep-alive session each) as fast as it accepts them, while the workers already work, and the
database is polled until every one has settled.

What is reported (the last stdout line, one JSON object; progress goes to stderr):

- `per_second`: registrations synced / (the moment the last of them became `synced` - the
  `created_at` of the first accepted). Intake, broker, worker, database and every step all count.
- `p50_s`, `p99_s`: per registration, `registrations.updated_at` of the row once its status is
  `synced` (the commit that made it synced: nothing writes the row after that) minus its
  `created_at` (the intake's commit). Nearest-rank percentiles over the synced registrations. All N
  arrive as one burst, so these include the wait in the queue behind the rest of the burst.
- `lost`: accepted registrations not `synced` within `--timeout` seconds (a `partial` or `failed`
  one counts: it did not sync; `statuses` and `dead_letters` say what became of them). Posts the
  intake refused (not 202) are not accepted, so not lost: they are `intake_errors`.
- `duplicated`: email addresses held by more than one object in any sandbox system (Shopify and
  Smaregi customers, HubSpot contacts, recipients of the caught welcome mails: a member-number
  follow-up is not a second welcome); `duplicated_by_system` says which. `missing` counts the
  synced registrations whose address some system does not hold.
- `baseline_per_second`: the bare four-task Celery chain (benchmarks/bare_chain.py: trivial tasks,
  the fourth counts the chain in Redis) on the same broker, with the same pool, concurrency, number
  of worker processes and Celery configuration, N chains published from `--intake-threads` threads,
  timed from the first publish to the last chain's end; `ratio` = per_second / baseline_per_second:
  what our steps cost against Celery's own floor. `baseline_worker_cpu_ms_per_chain` is its CPU.
- `sequential_baseline_per_second`: what the same code achieves sequentially, one registration at a
  time, in one thread and with no broker: registrations are written exactly as the intake writes
  them and the step tasks are run one after the other in this process (`Task.apply`, the worker's
  own code), against the same sandbox, latency, database and Redis, over
  `--baseline-registrations` (default min(N, 10)) registrations after one untimed warm-up, before
  any worker starts; `sequential_ratio` = per_second / it. With L > 0 it is close to
  1 / (vendor calls per registration x L): that figure is `theoretical_sequential_per_second`, with
  the calls counted by the emulators as `vendor_calls_per_registration` (HTTP calls that pay the
  latency; the SMTP send does not).
- `workers`: worker processes (`--workers`, each a `celery worker` with the pool and concurrency
  asked for). With `--scale-out 1,2,4` the run is repeated for each count on the same broker,
  database and sandbox (the bare chain too), and `scale_out` lists per_second, baseline_per_second
  and ratio for each; the top-level figures are those of `--workers`.
- `redis_commands_per_registration`: the Redis server's `total_commands_processed` over the posting
  and settling, divided by N: every client's commands (intake, workers, idle broker polling, task
  events), so it means "per registration" only on the bench's own Redis (the embedded one when
  REDIS_URL is unset).
- `profile` (with `--profile`: the workers run as `python -m benchmarks.counting_worker`): per
  registration, the workers' SQL statements and transactions, Redis round trips (redis-py sends:
  one per command or pipeline, the broker's included), HTTP requests and new HTTP connections, SMTP
  connections, counted over the posting and settling.
- also `worker_cpu_ms_per_registration` (the worker's process group) and
  `bench_cpu_ms_per_registration` (this process: emulators, intake, polling), CPU time spent while
  posting and settling, divided by N: when their sum times `per_second` nears the machine's cores,
  the run was CPU-bound, whatever the pool.

Everything started here is stopped again (worker, sandbox, embedded Redis, temporary directory),
also on Ctrl-C or SIGTERM. With MEMBERSYNC_BENCH_KEEP=1 the temporary directory stays (the web's and
the workers' logs, the SQLite database; its path is printed), and a run with an address held twice
also leaves each emulator's state and the caught mails there (`sandbox-state-<workers>/`).
Point DATABASE_URL and REDIS_URL at throw-away services only: the bench
writes registrations into that database and publishes on that broker's queues.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from benchmarks.counting_worker import COUNTS_ENV
from registrations.states import RegistrationStatus
from tasks.queues import queue_depths

QUEUES = "membersync.realtime,membersync.bulk,membersync.maintenance"
POOLS = ("threads", "prefork", "gevent", "eventlet", "solo")
VENDORS = ("shopify", "smaregi", "hubspot")
SETTLED = frozenset({RegistrationStatus.SYNCED, RegistrationStatus.PARTIAL, RegistrationStatus.FAILED})
PROJECT = Path(__file__).resolve().parents[1]
WORKER_READY_SECONDS = 60
WORKER_STOP_SECONDS = 20

# Far above anything measured, in the emulators and in our own buckets alike.
HIGH_SANDBOX_LIMITS = {
    "SANDBOX_SHOPIFY_BUCKET": "1000000",
    "SANDBOX_SHOPIFY_RESTORE_RATE": "100000",
    "SANDBOX_SMAREGI_RATE_PER_SECOND": "100000",
    "SANDBOX_HUBSPOT_RATE_PER_10S": "1000000",
    "SANDBOX_HUBSPOT_SEARCH_PER_SECOND": "100000",
}
HIGH_OWN_LIMITS = {
    "SHOPIFY_BUCKET_SIZE": "1000000",
    "SHOPIFY_RESTORE_RATE": "100000",
    "SMAREGI_RATE_LIMIT_PER_SECOND": "100000",
    "HUBSPOT_RATE_LIMIT_PER_10S": "1000000",
}

Say = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not run (a service did not start, the worker died)."""


def say(message: str) -> None:
    """Progress for a person: stderr, so stdout's last line stays the JSON result."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PipelineOptions:
    registrations: int = 200
    latency_ms: int = 0
    pool: str = "threads"
    concurrency: int = 16
    timeout_seconds: float = 300.0
    baseline_registrations: int | None = None  # None: min(registrations, 10)
    intake_threads: int = 8
    poll_seconds: float = 0.05
    workers: int = 1
    scale_out: tuple[int, ...] = ()  # also measure with each of these worker process counts
    bare: bool = True  # the bare four-task chain baseline (`ratio`)
    profile: bool = False  # count SQL, Redis, HTTP per registration (benchmarks/counting_worker.py)

    def check(self) -> None:
        if self.registrations < 1:
            raise ValueError("--registrations must be at least 1")
        if self.workers < 1 or any(count < 1 for count in self.scale_out):
            raise ValueError("--workers and --scale-out counts must be at least 1")
        if self.latency_ms < 0:
            raise ValueError("--latency-ms must not be negative")
        if self.pool not in POOLS:
            raise ValueError(f"--pool must be one of {', '.join(POOLS)}")
        if self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.intake_threads < 1:
            raise ValueError("--intake-threads must be at least 1")

    @property
    def baseline_count(self) -> int:
        wanted = self.baseline_registrations
        return max(0, min(self.registrations, 10) if wanted is None else wanted)


# --- services ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so every `finally` below still cleans up."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


KEEP_ENV = "MEMBERSYNC_BENCH_KEEP"


@contextlib.contextmanager
def temporary_directory() -> Iterator[Path]:
    """The run's scratch directory (database, logs); kept, and named on stderr, when
    MEMBERSYNC_BENCH_KEEP is set, so the web's and workers' logs can be read after the run."""
    path = Path(tempfile.mkdtemp(prefix="membersync-bench-"))
    try:
        yield path
    finally:
        if os.environ.get(KEEP_ENV):
            say(f"kept the run's logs and database in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def bench_process_env(
    environ: Mapping[str, str], *, database_url: str, redis_url: str, broker_url: str | None = None
) -> dict[str, str]:
    """The environment of the web and worker processes a bench starts: the caller's, in development
    mode ("test" is for the test suite only), on the run's database and Redis, and without the intake's
    per-client limit (every post of a bench comes from 127.0.0.1)."""
    return {
        **environ,
        "MEMBERSYNC_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url or environ.get("CELERY_BROKER_URL") or redis_url,
        "INTAKE_RATE_LIMIT": "off",
    }


@contextlib.contextmanager
def bench_redis(tmp: Path, environ: Mapping[str, str], log: Say = say) -> Iterator[str]:
    """REDIS_URL when it answers, else an embedded valkey-server for the run."""
    from sandbox.valkey import redis_answers, start_embedded_redis

    configured = environ.get("REDIS_URL")
    if configured and redis_answers(configured):
        log(f"redis: {configured}")
        yield configured
        return
    if configured:
        log(f"redis: REDIS_URL={configured} does not answer; starting an embedded valkey-server")
    server = start_embedded_redis(tmp / "valkey")
    try:
        url = f"{server.connection_url}/0"
        log(f"redis: embedded valkey-server at {url}")
        yield url
    finally:
        server.stop()


@contextlib.contextmanager
def bench_sandbox(env: Mapping[str, str], latency_ms: int = 0) -> Iterator[Any]:
    """Every emulator and the mail catcher on free ports, with `latency_ms` on each vendor."""
    from sandbox.runner import DEFAULT_PORTS, start_sandbox

    sandbox = start_sandbox(ports=dict.fromkeys(DEFAULT_PORTS, 0), env=env)
    try:
        set_latency(sandbox.urls, latency_ms)
        yield sandbox
    finally:
        sandbox.stop()


def set_latency(urls: Mapping[str, str], latency_ms: int) -> None:
    for name in VENDORS:
        post = requests.post(f"{urls[name]}/_sandbox/faults", json={"latency_ms": latency_ms}, timeout=10)
        post.raise_for_status()


def reset_sandbox(urls: Mapping[str, str], latency_ms: int) -> None:
    """Empty every store and counter, then put the latency back (a reset clears faults)."""
    for name in VENDORS:
        requests.post(f"{urls[name]}/_sandbox/reset", timeout=10).raise_for_status()
    requests.delete(f"{urls['mail']}/api/messages", timeout=10).raise_for_status()
    set_latency(urls, latency_ms)


def sandbox_env(sandbox: Any) -> dict[str, str]:
    """The variables that send every connector to this sandbox."""
    env: dict[str, str] = sandbox.connector_env()
    return env


class Worker:
    """One subprocess (a `celery worker`, or the gunicorn intake) in a process group of its own,
    stopped with everything in it; ready once `ready_marker` appears in its log."""

    def __init__(
        self, argv: list[str], env: Mapping[str, str], log_path: Path, *, ready_marker: bytes = b" ready."
    ) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.ready_marker = ready_marker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, log: Say = say) -> None:
        with self.log_path.open("wb") as output:
            # A session of its own: a terminal's Ctrl-C reaches the bench, which stops the worker.
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.ready_marker in self.log_path.read_bytes():
                log(f"{self.argv[2]} ready (pid {self.process.pid})")
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise BenchError(f"{' '.join(self.argv[:3])} did not start:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) of every live process in the worker's process group (Linux
        /proc; None elsewhere), so a prefork pool's children count too."""
        if self.process is None:
            return None
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            total = 0
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    # Fields after the command name (which may hold spaces): state is [0], pgrp [2].
                    fields = stat.read_text().rpartition(")")[2].split()
                    if int(fields[2]) == self.process.pid:
                        total += int(fields[11]) + int(fields[12])
            return total / ticks
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_problems(self, limit: int = 40) -> str:
        """The worker log's WARNING and ERROR lines and exception summaries (the first `limit`)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        wanted = [
            line[:500]
            for line in lines
            if "WARNING/" in line or "ERROR/" in line or re.match(r"^[\w.]+(Error|Exception): ", line)
        ]
        return "\n".join(wanted[:limit]) or "(none)"

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for the whole group if it takes too long."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(WORKER_STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def purge_queues(broker_url: str, queues: str = QUEUES) -> None:
    """Drop what is left in our queues after a run (an interrupted run leaves its burst there, and
    the next run's worker would take it). They were empty when the run began, so it is ours."""
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(broker_url, connect_timeout=5) as connection:
        for name in queues.split(","):
            channel = connection.channel()
            try:
                with contextlib.suppress(Exception):
                    channel.queue_purge(name)
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


class WorkerGroup:
    """Several worker processes on the same broker and database, measured and stopped together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def start(self, log: Say = say) -> None:
        for worker in self.workers:
            worker.start(log)

    def cpu_seconds(self) -> float | None:
        seconds = [worker.cpu_seconds() for worker in self.workers]
        return None if any(value is None for value in seconds) else sum(v or 0.0 for v in seconds)

    def alive(self) -> bool:
        return all(worker.alive() for worker in self.workers)

    def log_tail(self, chars: int = 4000) -> str:
        return "\n".join(worker.log_tail(chars // len(self.workers)) for worker in self.workers)

    def log_problems(self, limit: int = 40) -> str:
        return "\n".join(worker.log_problems(limit) for worker in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)  # all at once, then wait for each
        for worker in self.workers:
            worker.stop()


def web_problems(web: Worker, limit: int = 60) -> str:
    """The gunicorn log's lines other than access lines (errors and tracebacks), the last `limit`."""
    lines = [
        line for line in web.log_tail(200_000).splitlines() if '"POST /' not in line and '"GET /' not in line
    ]
    return "\n".join(lines[-limit:]) or "(none)"


def _worker_counts(paths: list[Path]) -> Counter[str]:
    from benchmarks.counting_worker import read_counts

    total: Counter[str] = Counter()
    for path in paths:
        total.update(read_counts(path))
    return total


def redis_commands(redis_url: str) -> int | None:
    """The server's `total_commands_processed` (every client's, the bench's own Redis in a clean run)."""
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        try:
            stats: Any = client.info("stats")
            return int(stats["total_commands_processed"])
        finally:
            client.close()
    return None


@dataclass(frozen=True)
class BareRun:
    workers: int
    chains: int
    seconds: float
    finished: int
    worker_cpu_seconds: float | None

    @property
    def per_second(self) -> float | None:
        return self.finished / self.seconds if self.finished and self.seconds > 0 else None


def measure_bare(
    options: PipelineOptions,
    workers: int,
    env: Mapping[str, str],
    redis_url: str,
    tmp: Path,
    stack: contextlib.ExitStack,
    log: Say = say,
) -> BareRun:
    """The bare four-task chain (benchmarks/bare_chain.py) on the same broker, pool, concurrency and
    number of worker processes: as many chains as registrations, published from `--intake-threads`
    threads as fast as the broker takes them, timed from the first publish to the last chain's end."""
    import redis

    from benchmarks import bare_chain

    counter = f"membersync:bench:bare:{uuid.uuid4().hex[:8]}"
    bare_env = {**env, bare_chain.COUNTER_ENV: counter}
    control = redis.Redis.from_url(redis_url)
    group = WorkerGroup(
        [
            Worker(
                [
                    *worker_argv(
                        options.pool,
                        options.concurrency,
                        app="benchmarks.bare_chain",
                        queues=bare_chain.QUEUE,
                    ),
                    "--hostname",
                    f"bare{n}@%h",
                ],
                bare_env,
                tmp / f"bare-{workers}-{n}.log",
            )
            for n in range(workers)
        ]
    )
    publisher = bare_chain.make_app(bare_env)  # publishing only, on the workers' broker
    try:
        group.start(log)
        cpu_before = group.cpu_seconds()
        started = time.monotonic()
        with ThreadPoolExecutor(options.intake_threads, thread_name_prefix="bench-bare") as executor:
            list(
                executor.map(
                    lambda n: bare_chain.bare_chain(publisher, n).apply_async(), range(options.registrations)
                )
            )
        deadline = started + options.timeout_seconds
        finished = 0
        while time.monotonic() < deadline:
            value: Any = control.get(counter)
            finished = int(value or 0)
            if finished >= options.registrations or not group.alive():
                break
            time.sleep(options.poll_seconds)
        seconds = time.monotonic() - started
        cpu_after = group.cpu_seconds()
    finally:
        group.stop()
        control.delete(counter)
        control.close()
        with contextlib.suppress(Exception):
            publisher.close()
    run = BareRun(
        workers,
        options.registrations,
        seconds,
        finished,
        None if cpu_after is None or cpu_before is None else cpu_after - cpu_before,
    )
    log(
        f"bare chain, {workers} worker process(es): {finished} chains in {seconds:.2f}s "
        f"({run.per_second or 0:.1f}/s)"
    )
    return run


def worker_argv(
    pool: str, concurrency: int, *, app: str = "tasks.celery_app", queues: str = QUEUES
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "-E",  # as the Procfile runs it (task events for Flower)
        "--without-mingle",
        "--without-gossip",
        "--loglevel",  # INFO as in the Procfile (and " ready." is an INFO line)
        "INFO",
    ]


def web_argv(port: int, workers: int = 2, threads: int = 8) -> list[str]:
    """The Procfile's web process on `port` (the intake over real HTTP, as production serves it)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "app.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "info",
        # No control socket: its per-user default path is shared with every other gunicorn.
        "--no-control-socket",
    ]


def wait_for_health(web_url: str, web: Worker, seconds: float = 30) -> None:
    """Until the intake answers /healthz (gunicorn binds before its workers have built the app)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{web_url}/healthz", timeout=2).status_code == 200:
                return
        if not web.alive():
            break
        time.sleep(0.2)
    raise BenchError(f"the intake did not answer /healthz:\n{web.log_tail()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- registrations ---------------------------------------------------------------------------------


# Shopify refuses a phone number another customer holds: each kind of registration has its own range.
PHONE_OFFSETS = {"": 0, "base": 8_000_000, "warm": 9_000_000}


def normalised(document: Mapping[str, Any]) -> dict[str, Any]:
    """`body` as the intake stores it (the phone in E.164), for the baseline that writes rows itself."""
    return {**document, "phone": "+81" + str(document["phone"])[1:]}


def body(run_id: str, tag: str, number: int) -> dict[str, Any]:
    """A valid registration of a person unique to this run (a reused database must not know them)."""
    phone = (PHONE_OFFSETS[tag] + number) % 10_000_000
    return {
        "email": f"bench-{run_id}-{tag}{number}@example.com",
        "first_name": "Hanako",
        "last_name": "Yamada",
        "first_name_kana": "ハナコ",
        "last_name_kana": "ヤマダ",
        "phone": f"0901{phone:07d}",
        "locale": "ja" if number % 2 else "en",
    }


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _counted_calls(state: Mapping[str, Any]) -> int:
    """HTTP requests an emulator answered, by its per-endpoint counters: not the dotted sub-counters
    (`fault.*`, Shopify's `graphql.<operation>` counts the same requests again), and not Smaregi's
    token calls (one per process, not per registration)."""
    counts = state.get("requests") or {}
    return sum(count for name, count in counts.items() if "." not in name and "token" not in name)


def vendor_calls(urls: Mapping[str, str]) -> int:
    total = 0
    for name in VENDORS:
        response = requests.get(f"{urls[name]}/_sandbox/state", timeout=30)
        response.raise_for_status()
        total += _counted_calls(response.json())
    return total


@dataclass(frozen=True)
class Baseline:
    registrations: int
    seconds: float
    vendor_calls: int
    synced: int

    @property
    def per_second(self) -> float | None:
        return self.registrations / self.seconds if self.registrations and self.seconds > 0 else None

    @property
    def calls_per_registration(self) -> float | None:
        return self.vendor_calls / self.registrations if self.registrations else None


def measure_baseline(
    settings: Any, database: Any, urls: Mapping[str, str], count: int, run_id: str, log: Say = say
) -> Baseline:
    """`count` registrations, each written as the intake writes it and then taken through all its
    steps one after the other in this thread (the worker's task code via `Task.apply`, no broker)."""
    from config.systems import SYSTEMS
    from registrations.intake import accept_registration
    from registrations.models import OutboxMessage, Registration, utcnow
    from tasks.factory import create_celery_app

    if count <= 0:
        return Baseline(0, 0.0, 0, 0)
    celery = create_celery_app(settings, database)
    steps = [celery.tasks[system.task_name] for system in SYSTEMS]

    def one(tag: str, number: int) -> str:
        with database.session() as session:
            acceptance = accept_registration(
                session, normalised(body(run_id, tag, number)), settings=settings, source="api"
            )
            outbox = session.get(OutboxMessage, acceptance.outbox_id)
            assert outbox is not None
            outbox.published_at = utcnow()  # run here, never by the worker's outbox relay
            registration_id = acceptance.registration.id
        for step in steps:
            step.apply(args=(registration_id,))
        return registration_id

    one("warm", 0)  # outside the clock: connections, the Smaregi token, first imports
    calls_before = vendor_calls(urls)
    started = time.perf_counter()
    ids = [one("base", number) for number in range(count)]
    seconds = time.perf_counter() - started
    calls = vendor_calls(urls) - calls_before
    with database.session() as session:
        synced = session.scalar(
            select(func.count()).where(
                Registration.id.in_(ids), Registration.status == RegistrationStatus.SYNCED
            )
        )
    baseline = Baseline(count, seconds, calls, int(synced or 0))
    log(
        f"baseline: {count} registrations one at a time in {seconds:.2f}s "
        f"({baseline.per_second or 0:.2f}/s, {baseline.calls_per_registration or 0:.1f} vendor calls each, "
        f"{baseline.synced} synced)"
    )
    return baseline


def held_by_system(urls: Mapping[str, str]) -> dict[str, Counter[str]]:
    """For each system, how many objects hold each email address."""

    def state(name: str) -> dict[str, Any]:
        response = requests.get(f"{urls[name]}/_sandbox/state", timeout=60)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def emails(objects: list[dict[str, Any]], read: Callable[[dict[str, Any]], Any]) -> Counter[str]:
        return Counter(str(read(obj)).lower() for obj in objects if read(obj))

    inbox = requests.get(f"{urls['mail']}/api/messages", timeout=60)
    inbox.raise_for_status()
    listed = inbox.json()
    messages = listed["messages"] if isinstance(listed, dict) else listed
    return {
        "shopify": emails(state("shopify")["customers"], lambda c: c.get("email")),
        "smaregi": emails(state("smaregi")["customers"], lambda m: m.get("mailAddress")),
        "hubspot": emails(state("hubspot")["contacts"], lambda c: (c.get("properties") or {}).get("email")),
        # Welcomes only: one ever per address is the promise. A member-number follow-up (its own
        # Message-ID, `<member-number.…>`) is a second mail by design, not a duplicate.
        "email": Counter(
            address.lower()
            for message in messages
            if str(message.get("message_id") or "").startswith("<welcome.")
            for address in message["recipients"]
        ),
    }


def _keep_sandbox_state(urls: Mapping[str, str], directory: Path) -> None:
    """Each emulator's state and the caught mails, as JSON files in `directory` (MEMBERSYNC_BENCH_KEEP)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*VENDORS, "mail"):
        path = "/api/messages" if name == "mail" else "/_sandbox/state"
        with contextlib.suppress(requests.RequestException):
            (directory / f"{name}.json").write_text(requests.get(f"{urls[name]}{path}", timeout=60).text)


# --- the run ---------------------------------------------------------------------------------------


class Probe:
    """Something measured alongside each round (`bench ratelimit --vendor shopify`): `start` just
    before the registrations are posted, `finish` once they have settled, its figures merged into
    that round's result."""

    def start(self, urls: Mapping[str, str]) -> None:
        return None

    def finish(self, urls: Mapping[str, str]) -> dict[str, Any]:
        return {}


def run_pipeline_bench(
    options: PipelineOptions,
    environ: Mapping[str, str] | None = None,
    log: Say = say,
    *,
    sandbox_limits: Mapping[str, str] | None = None,
    own_limits: Mapping[str, str] | None = None,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return its result document (see the module docstring). The rate limits
    are far above what is measured unless `sandbox_limits` (the emulators') and `own_limits` (ours)
    override some of them."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        redis_url = stack.enter_context(bench_redis(tmp, environ, log))
        database_url = environ.get("DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
        sandbox = stack.enter_context(
            bench_sandbox({**HIGH_SANDBOX_LIMITS, **(sandbox_limits or {})}, options.latency_ms)
        )
        log(f"sandbox: {', '.join(f'{k} {v}' for k, v in sandbox.urls.items())}")
        env = {
            **bench_process_env(environ, database_url=database_url, redis_url=redis_url),
            **HIGH_OWN_LIMITS,
            **(own_limits or {}),
            **sandbox_env(sandbox),
        }
        # A step holds a connection only for its short claim and record transactions; a pool as large
        # as the worker's concurrency keeps the measurement about vendors, not connection waits.
        env.setdefault("DATABASE_POOL_SIZE", str(max(20, options.concurrency)))
        env.pop("SENTRY_DSN", None)

        from config.settings import Settings
        from registrations.database import Database

        settings = Settings.from_env(environ=env)
        database = Database.from_settings(settings)
        stack.callback(database.dispose)
        log(f"database: {make_url(database_url).render_as_string(hide_password=True)}")
        database.upgrade()

        run_id = uuid.uuid4().hex[:8]
        broker_url = settings.broker_url
        waiting = {name: count for name, count in queue_depths(broker_url).items() if count}
        if waiting:
            raise BenchError(
                f"messages are already waiting on the broker ({waiting}): the bench's worker would take "
                "them. Point REDIS_URL (or CELERY_BROKER_URL) at an empty database, or purge them with "
                f"`celery -A tasks.celery_app purge -f -Q {QUEUES}`."
            )
        stack.callback(purge_queues, broker_url)  # runs after the workers have stopped (LIFO)
        reset_sandbox(sandbox.urls, options.latency_ms)
        baseline = measure_baseline(settings, database, sandbox.urls, options.baseline_count, run_id, log)
        reset_sandbox(sandbox.urls, options.latency_ms)
        # Chains the baseline's own commits may have published (they ran here already): not the workers'.
        purge_queues(broker_url)
        from benchmarks.bare_chain import QUEUE as BARE_QUEUE

        stack.callback(purge_queues, broker_url, BARE_QUEUE)

        port = free_port()
        web = Worker(web_argv(port), env, tmp / "web.log", ready_marker=b"Booting worker")
        stack.callback(web.stop)
        web.start(log)
        web_url = f"http://127.0.0.1:{port}"
        wait_for_health(web_url, web)

        counts = sorted({options.workers, *options.scale_out})
        rounds: dict[int, dict[str, Any]] = {}
        for count in counts:
            bare = measure_bare(options, count, env, redis_url, tmp, stack, log) if options.bare else None
            argv = [*worker_argv(options.pool, options.concurrency)]
            if options.profile:
                argv = [sys.executable, "-m", "benchmarks.counting_worker", *argv[3:]]
            count_paths = [tmp / f"counts-{count}-{n}.json" for n in range(count)]
            group = WorkerGroup(
                [
                    Worker(
                        [*argv, "--hostname", f"bench{n}@%h"],
                        {**env, COUNTS_ENV: str(count_paths[n])} if options.profile else env,
                        tmp / f"worker-{count}-{n}.log",
                    )
                    for n in range(count)
                ]
            )
            log(f"{count} worker process(es): --pool {options.pool} --concurrency {options.concurrency}")
            try:
                group.start(log)
                if probe is not None:
                    probe.start(sandbox.urls)
                commands_before = redis_commands(redis_url)
                counts_before = _worker_counts(count_paths) if options.profile else None
                measured = _post_and_wait(options, web_url, database, group, f"{run_id}w{count}", log)
                commands = redis_commands(redis_url)
                if counts_before is not None:
                    time.sleep(0.7)  # the counting workers write their totals every half second
                    counted = _worker_counts(count_paths)
                    counted.subtract(counts_before)
            finally:
                group.stop()
            if measured.refused or len(measured.synced_at) < len(measured.ids):
                log(f"the workers' warnings and errors:\n{group.log_problems()}")
            if measured.refused:
                log(f"the intake's log, without its access lines:\n{web_problems(web)}")
            held = held_by_system(sandbox.urls)
            doubled = {
                system: sorted(email for email, number in held_counts.items() if number > 1)
                for system, held_counts in held.items()
            }
            if any(doubled.values()):
                log(f"addresses held more than once: {doubled}")
                if os.environ.get(KEEP_ENV):
                    _keep_sandbox_state(sandbox.urls, tmp / f"sandbox-state-{count}")
            redis_per_registration = (
                (commands - commands_before) / len(measured.ids)
                if commands is not None and commands_before is not None and measured.ids
                else None
            )
            rounds[count] = _result(
                options, count, measured, held, baseline, bare, database_url, redis_per_registration, log
            )
            if probe is not None:
                rounds[count].update(probe.finish(sandbox.urls))
            if counts_before is not None and measured.ids:
                rounds[count]["profile"] = {
                    f"{name}_per_registration": round(counted[name] / len(measured.ids), 2)
                    for name in sorted(counted)
                }
                log(f"worker profile per registration: {rounds[count]['profile']}")
            reset_sandbox(sandbox.urls, options.latency_ms)
        result = rounds[options.workers]
        if options.scale_out:
            result["scale_out"] = [
                {
                    name: rounds[count][name]
                    for name in (
                        "workers",
                        "per_second",
                        "baseline_per_second",
                        "ratio",
                        "p99_s",
                        "lost",
                        "duplicated",
                        "worker_cpu_ms_per_registration",
                    )
                }
                for count in counts
            ]
        return result
    raise AssertionError("unreachable")  # ExitStack could swallow an exception, as far as mypy knows


@dataclass
class Measured:
    ids: list[str]
    emails: dict[str, str]
    created: dict[str, datetime]
    synced_at: dict[str, datetime]
    statuses: dict[str, str]
    dead_letters: int
    post_seconds: float
    refused: int
    worker_cpu_seconds: float | None  # the worker's process group, while posting and settling
    bench_cpu_seconds: float  # this process (sandbox emulators, intake, polling), likewise


def _post_and_wait(
    options: PipelineOptions, web_url: str, database: Any, worker: Worker | WorkerGroup, run_id: str, log: Say
) -> Measured:
    from registrations.models import DeadLetter, Registration

    local = threading.local()

    def post(number: int) -> tuple[str, int, str]:
        """(email, HTTP status, registration id or the error body) of one registration."""
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = requests.Session()
        document = body(run_id, "", number)
        response = client.post(f"{web_url}/api/registrations", json=document, timeout=60)
        if response.status_code == 202:
            return document["email"], 202, str(response.json()["id"])
        return document["email"], response.status_code, response.text[:300]

    ids: list[str] = []
    emails: dict[str, str] = {}
    refused: Counter[int] = Counter()
    cpu_before = worker.cpu_seconds(), time.process_time()
    started = time.monotonic()
    executor = ThreadPoolExecutor(options.intake_threads, thread_name_prefix="bench-intake")
    try:
        for email, status, answer in executor.map(post, range(options.registrations)):
            if status != 202:
                # Not accepted, so not lost: the client was told. Counted and reported (`intake_errors`).
                if not refused:
                    log(f"the intake answered {status}: {answer}")
                refused[status] += 1
                continue
            ids.append(answer)
            emails[answer] = email
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    post_seconds = time.monotonic() - started
    log(
        f"posted {len(ids)} registrations in {post_seconds:.2f}s"
        + (f" ({sum(refused.values())} refused: {dict(refused)})" if refused else "")
        + "; waiting for them to settle"
    )
    if not ids:
        raise BenchError(f"the intake accepted none of them:\n{worker.log_tail()}")

    wanted = set(ids)
    created: dict[str, datetime] = {}
    synced_at: dict[str, datetime] = {}
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + options.timeout_seconds
    next_report = time.monotonic() + 5
    while True:
        with database.session() as session:
            rows = session.execute(
                select(
                    Registration.id, Registration.status, Registration.created_at, Registration.updated_at
                ).where(Registration.id.in_(wanted))
            ).all()
        for registration_id, status, created_at, updated_at in rows:
            created[registration_id] = created_at
            statuses[registration_id] = status
            if status == RegistrationStatus.SYNCED and registration_id not in synced_at:
                synced_at[registration_id] = updated_at
        settled = sum(1 for status in statuses.values() if status in SETTLED)
        if settled == len(ids):
            break
        now = time.monotonic()
        if now > deadline:
            log(f"timeout after {options.timeout_seconds:.0f}s: {Counter(statuses.values())}")
            break
        if not worker.alive():
            raise BenchError(f"the worker died:\n{worker.log_tail()}")
        if now >= next_report:
            log(f"{len(synced_at)}/{len(ids)} synced, {settled} settled")
            next_report = now + 5
        time.sleep(options.poll_seconds)
    worker_cpu, bench_cpu = worker.cpu_seconds(), time.process_time()
    with database.session() as session:
        dead_letters = session.scalar(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.registration_id.in_(wanted))
        )
    return Measured(
        ids,
        emails,
        created,
        synced_at,
        statuses,
        int(dead_letters or 0),
        post_seconds,
        sum(refused.values()),
        None if worker_cpu is None or cpu_before[0] is None else worker_cpu - cpu_before[0],
        bench_cpu - cpu_before[1],
    )


def _result(
    options: PipelineOptions,
    workers: int,
    measured: Measured,
    held: dict[str, Counter[str]],
    baseline: Baseline,
    bare: BareRun | None,
    database_url: str,
    redis_per_registration: float | None,
    log: Say,
) -> dict[str, Any]:
    latencies = [(measured.synced_at[i] - measured.created[i]).total_seconds() for i in measured.synced_at]
    per_second: float | None = None
    if measured.synced_at:
        span = (max(measured.synced_at.values()) - min(measured.created.values())).total_seconds()
        per_second = len(measured.synced_at) / span if span > 0 else None
    duplicated = {email for counts in held.values() for email, count in counts.items() if count > 1}
    missing = sum(
        1
        for i in measured.synced_at
        if any(measured.emails[i].lower() not in counts for counts in held.values())
    )
    sequential = baseline.per_second
    bare_per_second = bare.per_second if bare else None
    calls = baseline.calls_per_registration
    theoretical = 1 / (calls * options.latency_ms / 1000) if calls and options.latency_ms else None
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "registrations": options.registrations,
        "latency_ms": options.latency_ms,
        "per_second": _round(per_second),
        "p50_s": _round(percentile(latencies, 0.5), 3),
        "p99_s": _round(percentile(latencies, 0.99), 3),
        "lost": len(measured.ids) - len(measured.synced_at),
        "duplicated": len(duplicated),
        "duplicated_by_system": {
            system: sum(1 for count in counts.values() if count > 1) for system, counts in held.items()
        },
        "baseline_per_second": _round(bare_per_second),
        "ratio": _round(per_second / bare_per_second if per_second and bare_per_second else None, 3),
        "baseline": (
            "bare four-task Celery chain, same broker, pool, concurrency and worker processes"
            if bare
            else None
        ),
        "workers": workers,
        "pool": options.pool,
        "concurrency": options.concurrency,
        "worker_cpu_ms_per_registration": _per_registration_ms(measured.worker_cpu_seconds, measured),
        "baseline_worker_cpu_ms_per_chain": (
            None
            if bare is None or bare.worker_cpu_seconds is None or not bare.chains
            else round(1000 * bare.worker_cpu_seconds / bare.chains, 2)
        ),
        "redis_commands_per_registration": _round(redis_per_registration, 1),
        "sequential_baseline_per_second": _round(sequential),
        "sequential_ratio": _round(per_second / sequential if per_second and sequential else None),
        "database": make_url(database_url).get_backend_name(),
        "missing": missing,
        "statuses": dict(Counter(measured.statuses.values())),
        "dead_letters": measured.dead_letters,
        "intake_errors": measured.refused,
        "intake_seconds": _round(measured.post_seconds, 3),
        "intake_threads": options.intake_threads,
        "bench_cpu_ms_per_registration": _per_registration_ms(measured.bench_cpu_seconds, measured),
        "sequential_baseline_registrations": baseline.registrations,
        "vendor_calls_per_registration": _round(calls, 2),
        "theoretical_sequential_per_second": _round(theoretical),
    }
    log(
        f"{workers} worker process(es): {result['per_second']}/s "
        f"(bare chain {result['baseline_per_second']}/s, "
        f"ratio {result['ratio']}; sequential {result['sequential_baseline_per_second']}/s), "
        f"p50 {result['p50_s']}s p99 {result['p99_s']}s, lost {result['lost']}, "
        f"duplicated {result['duplicated']}"
    )
    return result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _per_registration_ms(seconds: float | None, measured: Measured) -> float | None:
    return None if seconds is None or not measured.ids else round(1000 * seconds / len(measured.ids), 1)
