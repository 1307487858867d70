"""`membersync chaos`: the production shape under faults, and proof that nothing is lost or duplicated.

What runs (everything started here is stopped again, also on Ctrl-C or SIGTERM):

- a valkey-server started by the run on a free port with its append-only file (REDIS_URL of every
  process: locks, rate limits, and the broker with `--broker redis`); with `--broker rabbitmq` the
  broker is `--broker-url` (default amqp://guest:guest@127.0.0.1:5672//), which must have no message
  waiting in our queues;
- the database of DATABASE_URL (PostgreSQL: a schema of its own for the run, dropped at the end;
  every connection of the run's processes carries the application_name `membersync-chaos-<run>`),
  else a temporary SQLite file;
- the sandbox (the three vendor emulators and the mail catcher) in this process on free ports;
- `--workers` `celery worker` processes, one `celery beat` and gunicorn serving `app.wsgi` (the
  Procfile's processes, configured only by environment variables).

It posts `--registrations` registrations over HTTP (every fifth one repeats the address and the person
of an earlier one; each carries an Idempotency-Key, every tenth is sent a second time with the same
key, and a post that fails is retried with its key, as a client would) while it injects, as the
posting progresses:

- sandbox faults on every vendor from the start: errors, throttling and timeout-after-commit (the
  vendor commits, the answer never comes: the lost answer);
- SIGKILL of a random worker's process group, restarted 3 s later (`--worker-kills` times);
- a Redis restart: valkey stopped and started again on the same port with the same append-only file;
- a database connection drop: on PostgreSQL, pg_terminate_backend of every connection of the run's
  processes (skipped on SQLite, with a note in the summary);
- a sandbox outage: every vendor answers 503 for `--outage-seconds` (a worker is killed in the
  middle of it too).

Then the faults are cleared; once nothing is under way, the dead letters are replayed with
`membersync dlq replay --all` (as ops would) until every accepted registration is `synced` or
`--drain-timeout` passes. The checks: every accepted registration `synced`; one object per distinct
address in Shopify, Smaregi and HubSpot (the emulators' state); one welcome mail (one Message-ID) per
distinct person in the mail catcher; no e-mail address or name of the run in Redis (every key and
value, the broker's messages decoded, sampled while the run is under way and at its end), in the
logs of every process, or in task arguments.

Retry timings. Production retries back off for minutes to hours, so a multi-minute outage would
take hours to drain. `--fast-retries` (the default; `--production-retries` turns it off) sets, and the summary
records under `timings`: RETRY_POLICY_<SYSTEM>=attempts=6,base=0.2,cap=2,budget=60 (an outage
longer than a minute dead-letters, which the replay then proves), HTTP_READ_TIMEOUT_SECONDS=2 (how
long a lost answer keeps a thread; set in the environment, it wins). The step lease, the stalled
sweep and the lock keep their production defaults, as do the workers' heartbeat leases that bring a
killed worker's work back. With `--production-retries` nothing is set and the drain takes as long as
production would.

The last stdout line is one JSON object: accepted, synced, dead_lettered_then_replayed, lost,
duplicated, faults (injected, by kind), drain_seconds (from the end of the last fault to the last
registration synced), broker, and the details of each check. Progress goes to stderr.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from benchmarks.pipeline import (
    HIGH_OWN_LIMITS,
    HIGH_SANDBOX_LIMITS,
    PROJECT,
    VENDORS,
    BenchError,
    Worker,
    bench_process_env,
    free_port,
    purge_queues,
    sandbox_env,
    stop_on_sigterm,
    temporary_directory,
    wait_for_health,
    web_argv,
    worker_argv,
)
from registrations.states import RegistrationStatus
from tasks.queues import queue_depths

BROKERS = ("redis", "rabbitmq")
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
# Settled, as far as the workers go: only a replay can change these now.
AT_REST = frozenset({RegistrationStatus.SYNCED, RegistrationStatus.PARTIAL, RegistrationStatus.FAILED})
FAST_RETRY_POLICY = "attempts=6,base=0.2,cap=2,budget=60"
# Only how long a lost answer keeps a thread. The lease, the stalled sweep and the lock keep their
# production defaults: a killed worker's work comes back through the workers' heartbeat leases, and
# a stalled sweep shorter than the queue's wait re-publishes a backlog of 2,000 over and over
# (seen: STALLED_AFTER_SECONDS=20 re-queued 500 registrations every 5 s, 19,000 messages deep).
FAST_TIMINGS = {"HTTP_READ_TIMEOUT_SECONDS": "2"}
RESTART_AFTER_KILL_SECONDS = 3.0
# Answers a client retries with the same Idempotency-Key (the intake may be mid-fault).
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
CLIENT_ATTEMPTS = 30

Say = Callable[[str], None]


def say(message: str) -> None:
    print(f"[chaos] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ChaosOptions:
    registrations: int = 2000
    broker: str = "redis"
    broker_url: str | None = None  # rabbitmq only; default DEFAULT_RABBITMQ_URL
    outage_seconds: float = 180.0
    workers: int = 3
    concurrency: int = 8
    worker_kills: int = 2
    error_rate: float = 0.10
    throttle_rate: float = 0.05
    timeout_after_commit_rate: float = 0.03
    fast_retries: bool = True
    drain_timeout_seconds: float = 900.0
    intake_threads: int = 6
    seed: int = 17

    def check(self) -> None:
        if self.registrations < 10:
            raise ValueError("--registrations must be at least 10")
        if self.broker not in BROKERS:
            raise ValueError(f"--broker must be one of {', '.join(BROKERS)}")
        if self.outage_seconds < 0:
            raise ValueError("--outage-seconds must not be negative")
        if self.workers < 2:
            raise ValueError("--workers must be at least 2 (one is killed while the others work)")
        if self.worker_kills < 0:
            raise ValueError("--worker-kills must not be negative")


# --- the people and the posts ----------------------------------------------------------------------


def _letters(number: int, width: int = 4) -> str:
    """`number` as lower-case letters (names take no digits)."""
    out = ""
    for _ in range(width):
        number, digit = divmod(number, 26)
        out = chr(ord("a") + digit) + out
    return out


@dataclass(frozen=True)
class Plan:
    """Who each submission is, and which ones are sent twice with the same key."""

    run_id: str
    registrations: int

    @property
    def family_name(self) -> str:
        """Every person's last name: this run's marker, searched for in Redis and the logs."""
        return "Kaos" + _letters(int(self.run_id, 16) % 26**6, 6)

    @property
    def email_marker(self) -> str:
        return f"chaos-{self.run_id}-"

    def person(self, submission: int) -> int:
        """Every fifth submission repeats the person of the one three before it."""
        return submission - 3 if submission % 5 == 4 else submission

    def sent_twice(self, submission: int) -> bool:
        return submission % 10 == 0

    def email(self, person: int) -> str:
        return f"{self.email_marker}p{person}@example.com"

    def body(self, submission: int) -> dict[str, Any]:
        person = self.person(submission)
        return {
            "email": self.email(person),
            "first_name": "Hana" + _letters(person),
            "last_name": self.family_name.capitalize(),
            "first_name_kana": "ハナコ",
            "last_name_kana": "ヤマダ",
            "phone": f"0902{person % 10_000_000:07d}",  # Shopify refuses a phone another customer holds
            "locale": "ja" if person % 2 else "en",
        }

    def key(self, submission: int) -> str:
        return f"idem-{self.run_id}-{submission}"  # not the e-mail marker: keys may be logged

    def distinct_emails(self) -> set[str]:
        return {self.email(self.person(number)) for number in range(self.registrations)}


@dataclass
class Intake:
    """What the intake answered: the accepted ids, and what the repeated keys came back with."""

    ids: dict[int, str] = field(default_factory=dict)  # submission -> registration id
    repeat_mismatches: int = 0
    repeats: int = 0
    client_retries: int = 0
    refused: Counter[int] = field(default_factory=Counter)
    posted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(session: requests.Session, url: str, body: dict[str, Any], key: str, intake: Intake) -> str | None:
    """One submission, retried with its Idempotency-Key while the intake fails (as a client would)."""
    for attempt in range(CLIENT_ATTEMPTS):
        try:
            response = session.post(url, json=body, headers={"Idempotency-Key": key}, timeout=30)
        except requests.RequestException:
            status = 0
        else:
            if response.status_code == 202:
                return str(response.json()["id"])
            status = response.status_code
        if status and status not in RETRIED_STATUSES:
            with intake.lock:
                intake.refused[status] += 1
            return None
        with intake.lock:
            intake.client_retries += 1
        time.sleep(min(5.0, 0.2 * 2**attempt))
    with intake.lock:
        intake.refused[0] += 1
    return None


def post_all(plan: Plan, web_url: str, threads: int, intake: Intake) -> None:
    local = threading.local()
    url = f"{web_url}/api/registrations"

    def one(submission: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        body, key = plan.body(submission), plan.key(submission)
        registration_id = _post(session, url, body, key, intake)
        if registration_id is not None and plan.sent_twice(submission):
            again = _post(session, url, body, key, intake)
            with intake.lock:
                intake.repeats += 1
                if again != registration_id:
                    intake.repeat_mismatches += 1
        with intake.lock:
            if registration_id is not None:
                intake.ids[submission] = registration_id
            intake.posted += 1

    with ThreadPoolExecutor(threads, thread_name_prefix="chaos-intake") as executor:
        list(executor.map(one, range(plan.registrations)))


# --- the services and the faults -------------------------------------------------------------------


class Redis:
    """The run's valkey-server with its append-only file, restartable on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        from sandbox.valkey import start_embedded_redis

        self.port = free_port()
        self.server = start_embedded_redis(data_dir, port=self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def restart(self) -> None:
        from sandbox.valkey import _server_in_own_process_group

        self.server.stop(timeout=30)  # SIGTERM: valkey writes and syncs its append-only file
        with _server_in_own_process_group():
            self.server.start()
        if self.server.port != self.port:
            raise BenchError(f"valkey came back on port {self.server.port}, not {self.port}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.stop()


@dataclass
class Faults:
    """The sandbox's fault switches, and a tally of what was injected."""

    urls: Mapping[str, str]
    options: ChaosOptions
    injected: Counter[str] = field(default_factory=Counter)
    last_fault_ended: float | None = None

    def _configure(self, body: Mapping[str, Any]) -> None:
        for number, name in enumerate(VENDORS):
            # A seed of each vendor's own: the same seed everywhere would fault the same positions.
            seeded = {**body, "seed": body["seed"] + number} if "seed" in body else dict(body)
            response = requests.post(f"{self.urls[name]}/_sandbox/faults", json=seeded, timeout=10)
            response.raise_for_status()

    def background(self) -> None:
        self._configure(
            {
                "error_rate": self.options.error_rate,
                "throttle_rate": self.options.throttle_rate,
                "timeout_after_commit_rate": self.options.timeout_after_commit_rate,
                "seed": self.options.seed,
            }
        )

    def outage(self) -> None:
        self._configure({"error_rate": 1.0})

    def clear(self) -> None:
        self._configure({})
        self.count_sandbox_faults()
        self.last_fault_ended = time.monotonic()

    def count_sandbox_faults(self) -> None:
        """The emulators' own counts of the faults they injected (`fault.<kind>` counters)."""
        for kind in ("error", "throttle", "timeout_after_commit"):
            self.injected[f"sandbox_{kind}"] = 0
        for name in VENDORS:
            state = requests.get(f"{self.urls[name]}/_sandbox/state", timeout=60).json()
            for counter, count in (state.get("requests") or {}).items():
                if counter.startswith("fault."):
                    self.injected[f"sandbox_{counter.removeprefix('fault.')}"] += int(count)


# --- database --------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_database(environ: Mapping[str, str], tmp: Path, run_id: str, log: Say) -> Iterator[tuple[str, str]]:
    """(URL for the run's processes, URL for this process): PostgreSQL in a schema of its own, else SQLite."""
    configured = environ.get("DATABASE_URL")
    if not configured or make_url(configured).get_backend_name() != "postgresql":
        url = f"sqlite:///{tmp / 'chaos.db'}"
        yield url, url
        return
    base = make_url(configured)
    schema = f"chaos_{run_id}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    log(f"database: {base.render_as_string(hide_password=True)}, schema {schema}")
    scoped = base.update_query_dict({"options": f"-csearch_path={schema}"})
    processes = scoped.update_query_dict({"application_name": application_name(run_id)})
    observer = scoped.update_query_dict({"application_name": f"membersync-chaos-observer-{run_id}"})
    try:
        yield processes.render_as_string(hide_password=False), observer.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def application_name(run_id: str) -> str:
    return f"membersync-chaos-{run_id}"


def drop_connections(database_url: str, run_id: str) -> int:
    """pg_terminate_backend of every connection the run's processes hold; how many there were."""
    engine = create_engine(make_url(database_url).difference_update_query(["application_name", "options"]))
    try:
        with engine.begin() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": application_name(run_id)},
                ).all()
            )
    finally:
        engine.dispose()


# --- personal data ---------------------------------------------------------------------------------


def _decoded_message(raw: bytes) -> bytes:
    """A kombu message on Redis with its base64 body decoded (task arguments live there)."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        document = json.loads(raw)
        if isinstance(document, list):  # the unacked hash holds [message, exchange, routing key]
            document = document[0]
        body = document.get("body")
        if document.get("properties", {}).get("body_encoding") == "base64" and isinstance(body, str):
            return raw + b"\n" + base64.b64decode(body)
    return raw


def redis_personal_data(redis_url: str, markers: list[str]) -> list[str]:
    """Keys of the run's Redis whose name or value holds a marker (values decoded where kombu encodes)."""
    import redis as redis_client

    client: Any = redis_client.Redis.from_url(redis_url)  # typed as sync or async alike
    needles = [marker.lower().encode() for marker in markers]
    found: list[str] = []

    def leaks(blob: bytes) -> bool:
        lowered = _decoded_message(blob).lower()
        return any(needle in lowered for needle in needles)

    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            values: list[bytes] = [key]
            with contextlib.suppress(redis_client.ResponseError):
                if kind == b"string":
                    values.append(client.get(key) or b"")
                elif kind == b"list":
                    values.extend(client.lrange(key, 0, -1))
                elif kind == b"hash":
                    for name, value in client.hgetall(key).items():
                        values.extend((name, value))
                elif kind == b"set":
                    values.extend(client.smembers(key))
                elif kind == b"zset":
                    values.extend(client.zrange(key, 0, -1))
                elif kind == b"stream":
                    for _, entry in client.xrange(key):
                        for name, value in entry.items():
                            values.extend((name, value))
            if any(leaks(value) for value in values):
                found.append(key.decode(errors="replace"))
    finally:
        client.close()
    return found


def log_personal_data(paths: list[Path], markers: list[str]) -> dict[str, int]:
    """Lines holding a marker, per log file."""
    pattern = re.compile("|".join(re.escape(marker) for marker in markers), re.IGNORECASE)
    found: dict[str, int] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            hits = sum(1 for line in path.read_text(errors="replace").splitlines() if pattern.search(line))
            if hits:
                found[path.name] = hits
    return found


# --- the run ---------------------------------------------------------------------------------------


class Processes:
    """The production shape's processes: workers (killable, restartable), beat and web."""

    def __init__(self, env: Mapping[str, str], tmp: Path, options: ChaosOptions, log: Say) -> None:
        self.env = dict(env)
        self.tmp = tmp
        self.options = options
        self.log = log
        self.workers: list[Worker] = []
        self.started = 0
        self.logs: list[Path] = []
        self.beat: Worker | None = None
        self.web: Worker | None = None
        self.web_url = ""

    def new_worker(self) -> Worker:
        path = self.tmp / f"worker-{self.started}.log"
        self.started += 1
        # A node name of its own: on RabbitMQ a worker's control queue is exclusive to its node name,
        # so a second worker with the default one (celery@host) on this host cannot start.
        argv = worker_argv("threads", self.options.concurrency)
        argv += ["--hostname", f"chaos{self.started}-{os.getpid()}@%h"]
        worker = Worker(argv, self.env, path)
        self.logs.append(path)
        self.workers.append(worker)
        return worker

    def start_worker(self) -> Worker:
        worker = self.new_worker()
        worker.start(self.log)
        return worker

    def start(self) -> None:
        """Every process at once (each takes seconds to import and connect), ready when all are."""
        beat_argv = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "beat", "--loglevel", "INFO"]
        beat_argv += ["--schedule", str(self.tmp / "beat-schedule")]
        self.beat = Worker(beat_argv, self.env, self.tmp / "beat.log", ready_marker=b"beat: Starting")
        port = free_port()
        self.web = Worker(web_argv(port), self.env, self.tmp / "web.log", ready_marker=b"Booting worker")
        self.logs += [self.beat.log_path, self.web.log_path]
        everything = [*(self.new_worker() for _ in range(self.options.workers)), self.beat, self.web]
        with ThreadPoolExecutor(len(everything)) as starting:
            list(starting.map(lambda process: process.start(self.log), everything))
        self.web_url = f"http://127.0.0.1:{port}"
        wait_for_health(self.web_url, self.web)

    def kill_random_worker(self, rng: random.Random) -> None:
        """SIGKILL a live worker's whole process group, and start a replacement a moment later."""
        alive = [worker for worker in self.workers if worker.alive()]
        victim = rng.choice(alive)
        assert victim.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.process.pid, 9)
        victim.process.wait(10)
        self.log(f"SIGKILLed worker pid {victim.process.pid}")
        time.sleep(RESTART_AFTER_KILL_SECONDS)
        self.start_worker()

    def stop(self) -> None:
        for process in [self.web, self.beat, *self.workers]:
            if process is not None:
                process.stop()


def run_chaos(
    options: ChaosOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """Run the chaos suite and return its summary (the module docstring says what is in it)."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(options.seed)
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        redis = Redis(tmp / "valkey")
        stack.callback(redis.stop)
        log(f"redis: valkey-server with its append-only file at {redis.url}")
        broker_url = redis.url
        if options.broker == "rabbitmq":
            broker_url = options.broker_url or DEFAULT_RABBITMQ_URL
        processes_url, observer_url = stack.enter_context(run_database(environ, tmp, run_id, log))

        from sandbox.runner import DEFAULT_PORTS, start_sandbox

        sandbox = start_sandbox(ports=dict.fromkeys(DEFAULT_PORTS, 0), env=HIGH_SANDBOX_LIMITS)
        stack.callback(sandbox.stop)
        env: dict[str, str] = {
            **bench_process_env(
                environ, database_url=processes_url, redis_url=redis.url, broker_url=broker_url
            ),
            **HIGH_OWN_LIMITS,
            **sandbox_env(sandbox),
        }
        env.pop("SENTRY_DSN", None)
        timings: dict[str, str] = {}
        if options.fast_retries:
            timings = {f"RETRY_POLICY_{name.upper()}": FAST_RETRY_POLICY for name in (*VENDORS, "email")}
            # A timing set in the environment wins.
            timings.update({name: environ.get(name) or value for name, value in FAST_TIMINGS.items()})
            env.update(timings)

        from config.settings import Settings
        from registrations.database import Database

        settings = Settings.from_env(environ={**env, "DATABASE_URL": observer_url})
        database = Database.from_settings(settings)
        stack.callback(database.dispose)
        database.upgrade()

        waiting = {name: count for name, count in queue_depths(broker_url).items() if count}
        if waiting:
            raise BenchError(
                f"messages are already waiting on {options.broker} ({waiting}); purge them first"
            )
        stack.callback(purge_queues, broker_url)

        processes = Processes(env, tmp, options, log)
        stack.callback(processes.stop)
        processes.start()

        plan = Plan(run_id, options.registrations)
        markers = [plan.email_marker, plan.family_name]
        faults = Faults(sandbox.urls, options)
        faults.background()
        intake = Intake()
        poster = threading.Thread(
            target=post_all, args=(plan, processes.web_url, options.intake_threads, intake), daemon=True
        )
        started = time.monotonic()
        poster.start()
        redis_leaks: set[str] = set()

        def reached(fraction: float) -> None:
            target = math.ceil(options.registrations * fraction)
            while intake.posted < target and poster.is_alive():
                time.sleep(0.1)

        def kill() -> None:
            processes.kill_random_worker(rng)
            faults.injected["worker_sigkill"] += 1

        kills_before_outage = max(0, options.worker_kills - 1)
        for number in range(kills_before_outage):
            reached(0.1 + 0.3 * number / max(1, kills_before_outage))
            kill()
        reached(0.4)
        redis_leaks.update(redis_personal_data(redis.url, markers))  # the queues hold task arguments now
        redis.restart()
        faults.injected["redis_restart"] += 1
        log("restarted Redis (same port, same append-only file)")
        reached(0.55)
        database_note = None
        if make_url(processes_url).get_backend_name() == "postgresql":
            dropped = drop_connections(observer_url, run_id)
            faults.injected["database_connection_drop"] += 1
            log(f"dropped the run's {dropped} database connections")
        else:
            database_note = (
                "skipped: SQLite has no server connections to drop (set DATABASE_URL to PostgreSQL)"
            )
            log(f"database connection drop {database_note}")
        reached(0.7)
        faults.outage()
        faults.injected["sandbox_outage"] += 1
        log(f"sandbox outage: every vendor answers 503 for {options.outage_seconds:.0f}s")
        outage_ends = time.monotonic() + options.outage_seconds
        if options.worker_kills:
            time.sleep(options.outage_seconds / 2)
            kill()
        time.sleep(max(0.0, outage_ends - time.monotonic()))
        poster.join()
        redis_leaks.update(redis_personal_data(redis.url, markers))
        faults.clear()
        log(f"faults cleared after {time.monotonic() - started:.0f}s; {len(intake.ids)} accepted; draining")

        drained = drain(database, env, intake, options, faults, tmp, log)
        redis_leaks.update(redis_personal_data(redis.url, markers))
        return summarize(
            plan,
            intake,
            drained,
            faults,
            sandbox.urls,
            options,
            timings,
            database_note,
            log,
            redis_leaks=sorted(redis_leaks),
            log_leaks=log_personal_data([*processes.logs, tmp / "dlq-replay.log"], markers),
        )
    raise AssertionError("unreachable")


@dataclass
class Drained:
    statuses: dict[str, str]
    dead_letters: int
    replayed_registrations: int
    replay_rounds: int
    seconds: float | None


def _statuses(database: Any, ids: set[str]) -> dict[str, str]:
    from registrations.models import Registration

    with database.session() as session:
        rows = session.execute(select(Registration.id, Registration.status).where(Registration.id.in_(ids)))
        return {row[0]: str(row[1]) for row in rows}


def drain(
    database: Any,
    env: Mapping[str, str],
    intake: Intake,
    options: ChaosOptions,
    faults: Faults,
    tmp: Path,
    log: Say,
) -> Drained:
    """Until every accepted registration is synced: wait for the workers, replay what came to rest
    dead-lettered (`membersync dlq replay --all`), wait again."""
    from registrations.models import DeadLetter

    ids = set(intake.ids.values())
    deadline = time.monotonic() + options.drain_timeout_seconds
    rounds = 0
    quiet_since: float | None = None
    next_report = time.monotonic()
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = _statuses(database, ids)
        counts = Counter(statuses.values())
        if counts[RegistrationStatus.SYNCED] == len(ids):
            break
        if time.monotonic() >= next_report:
            log(f"draining: {dict(counts)}")
            next_report = time.monotonic() + 10
        if all(status in AT_REST for status in statuses.values()):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2:  # at rest for a moment: nothing left but dead letters
                rounds += 1
                replay_dead_letters(env, tmp, log)
                quiet_since = None
                time.sleep(2)
        else:
            quiet_since = None
        time.sleep(1)
    seconds = time.monotonic() - faults.last_fault_ended if faults.last_fault_ended else None
    with database.session() as session:
        letters = session.execute(
            select(DeadLetter.registration_id, DeadLetter.status).where(DeadLetter.registration_id.in_(ids))
        ).all()
        total = session.scalar(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.registration_id.in_(ids))
        )
    replayed = {registration_id for registration_id, status in letters if status != "open"}
    synced_all = all(status == RegistrationStatus.SYNCED for status in statuses.values())
    return Drained(statuses, int(total or 0), len(replayed), rounds, seconds if synced_all else None)


def replay_dead_letters(env: Mapping[str, str], tmp: Path, log: Say) -> None:
    """`membersync dlq replay --all`, as ops would run it (its output appended to dlq-replay.log)."""
    command = [
        str(Path(sys.executable).with_name("membersync")),
        "dlq",
        "replay",
        "--all",
        "--operator",
        "chaos",
    ]
    finished = subprocess.run(
        command, cwd=PROJECT, env=dict(env), capture_output=True, timeout=600, check=False
    )
    output = finished.stdout + finished.stderr
    with (tmp / "dlq-replay.log").open("ab") as kept:
        kept.write(output)
    last = output.decode(errors="replace").strip().splitlines()[-1:] or [""]
    log(f"membersync dlq replay --all: exit {finished.returncode}: {last[0][:300]}")


def summarize(
    plan: Plan,
    intake: Intake,
    drained: Drained,
    faults: Faults,
    urls: Mapping[str, str],
    options: ChaosOptions,
    timings: Mapping[str, str],
    database_note: str | None,
    log: Say,
    *,
    redis_leaks: list[str],
    log_leaks: dict[str, int],
) -> dict[str, Any]:
    from benchmarks.pipeline import held_by_system

    held = held_by_system(urls)
    people = plan.distinct_emails()
    accepted_people = {plan.email(plan.person(submission)) for submission in intake.ids}
    duplicated: dict[str, int] = {}
    missing: dict[str, int] = {}
    for system in ("shopify", "smaregi", "hubspot"):
        counts = {email: count for email, count in held[system].items() if email in people}
        duplicated[system] = sum(1 for count in counts.values() if count > 1)
        missing[system] = len(accepted_people - set(counts))
    # A welcome sent twice (a worker killed after the send, before the record) carries the same
    # Message-ID both times, so a mail client shows it once: a duplicate is a second welcome
    # Message-ID for one address. (A repeated address's owner gets an "already a member" notice,
    # <notice.…>, not a second welcome.)
    message_ids: dict[str, set[str]] = defaultdict(set)
    kinds: Counter[str] = Counter()
    # Thousands of mails on a loaded host: a 2,000-registration run's listing took over 60 s once.
    inbox = requests.get(f"{urls['mail']}/api/messages", timeout=600).json()
    for message in inbox["messages"] if isinstance(inbox, dict) else inbox:
        message_id = str(message.get("message_id") or "").strip()
        kind = message_id.lstrip("<").partition(".")[0]
        for address in message["recipients"]:
            if address.lower() in people:
                kinds[kind] += 1
                if kind == "welcome":
                    message_ids[address.lower()].add(message_id)
    duplicated["email"] = sum(1 for ids in message_ids.values() if len(ids) > 1)
    missing["email"] = len(accepted_people - set(message_ids))
    # The registrations of a person some system lacks (ids only), for `membersync status ID`.
    lacking = {email for email in accepted_people if any(email not in held[name] for name in held)}
    missing_ids = sorted(
        registration_id
        for submission, registration_id in intake.ids.items()
        if plan.email(plan.person(submission)) in lacking
    )
    accepted = len(set(intake.ids.values()))
    synced = sum(1 for status in drained.statuses.values() if status == RegistrationStatus.SYNCED)
    result: dict[str, Any] = {
        "chaos": "membersync",
        "broker": options.broker,
        "registrations": options.registrations,
        "accepted": accepted,
        "synced": synced,
        "dead_lettered_then_replayed": drained.replayed_registrations,
        "lost": accepted - synced,
        "duplicated": sum(duplicated.values()),
        "faults": dict(sorted(faults.injected.items())),
        "drain_seconds": None if drained.seconds is None else round(drained.seconds, 1),
        "distinct_people": len(accepted_people),
        "welcome_mails": sum(len(ids) for ids in message_ids.values()),
        "mails_caught_by_kind": dict(kinds),
        "duplicated_by_system": duplicated,
        "missing_by_system": missing,
        "missing_registrations": missing_ids[:20],
        "statuses": dict(Counter(drained.statuses.values())),
        "dead_letters": drained.dead_letters,
        "replay_rounds": drained.replay_rounds,
        "repeated_keys": intake.repeats,
        "repeated_key_mismatches": intake.repeat_mismatches,
        "client_retries": intake.client_retries,
        "intake_refused": dict(intake.refused),
        "personal_data": {"redis_keys": redis_leaks[:20], "log_lines": log_leaks},
        "database_drop": database_note or "pg_terminate_backend",
        "workers": options.workers,
        "concurrency": options.concurrency,
        "outage_seconds": options.outage_seconds,
        "retries": "fast" if options.fast_retries else "production",
        "timings": dict(timings),
    }
    log(
        f"accepted {accepted}, synced {synced}, lost {result['lost']}, duplicated {result['duplicated']}, "
        f"drained in {result['drain_seconds']}s after the last fault"
    )
    return result


def failed_checks(result: Mapping[str, Any]) -> list[str]:
    """What the run proved wrong: empty when nothing was lost, duplicated, missing or leaked."""
    failed = []
    if result["lost"]:
        failed.append(f"lost {result['lost']}")
    if result["duplicated"]:
        failed.append(f"duplicated {result['duplicated_by_system']}")
    if any(result["missing_by_system"].values()):
        failed.append(f"missing {result['missing_by_system']}")
    if result["welcome_mails"] != result["distinct_people"]:
        failed.append(f"{result['welcome_mails']} welcome mails for {result['distinct_people']} people")
    if result["repeated_key_mismatches"]:
        failed.append(f"{result['repeated_key_mismatches']} repeated Idempotency-Keys got another id")
    leaks = result["personal_data"]
    if leaks["redis_keys"] or leaks["log_lines"]:
        failed.append(f"personal data found: {leaks}")
    return failed
