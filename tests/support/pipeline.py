"""The pipeline under test: a real worker process, real Redis, a real database, the sandbox over sockets.

`Pipeline` starts `celery -A tasks.celery_app worker` as a subprocess configured only through the
environment (as the Procfile runs it), submits registrations through the intake, and waits until
every registration has settled.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app import create_app
from registrations.database import Database
from registrations.models import DeadLetter, Registration
from tasks.factory import create_celery_app

# Fast retries, short vendor timeouts: faults resolve in seconds, not the production minutes.
FAST_RETRIES = "attempts=10,base=0.1,cap=1,budget=300"
WORKER_READY_SECONDS = 60
SETTLED = frozenset({"synced", "partial", "failed"})
PROJECT = Path(__file__).resolve().parents[3]


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies (a timed-out run leaves no worker behind)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Pipeline:
    """One test's pipeline: its settings, intake client, worker processes and sandbox."""

    def __init__(
        self,
        database: Database,
        redis_url: str,
        sandbox: Any,
        tmp_path: Path,
        *,
        broker_url: str | None = None,
    ) -> None:
        self.database = database
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        self.env: dict[str, str] = {
            "MEMBERSYNC_ENV": "test",
            "DATABASE_URL": database.url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url or redis_url,
            "INTAKE_RATE_LIMIT": "off",
            "HTTP_READ_TIMEOUT_SECONDS": "1",
            "LOCK_WAIT_SECONDS": "2",
            "STEP_LEASE_SECONDS": "20",
            **{
                f"RETRY_POLICY_{system}": FAST_RETRIES
                for system in ("SHOPIFY", "SMAREGI", "HUBSPOT", "EMAIL")
            },
            **sandbox.env,
        }
        self.workers: list[subprocess.Popen[bytes]] = []
        self._client: Any = None
        self._client_lock = threading.Lock()

    def configure(self, **env: str) -> None:
        """Change the environment of the intake and of workers started from now on."""
        self.env.update(env)
        self._client = None

    @property
    def settings(self) -> Any:
        from config.settings import Settings

        return Settings.from_env(environ=self.env)

    @property
    def client(self) -> Any:
        # One app for all threads (an app is built once per process in production too).
        with self._client_lock:
            if self._client is None:
                self._client = create_app(self.settings, database=self.database).test_client()
            return self._client

    def celery(self) -> Any:
        """A Celery app on the same broker and database, for publishing from the test (replay)."""
        return create_celery_app(self.settings, self.database)

    def start_worker(self, *, concurrency: int = 16) -> subprocess.Popen[bytes]:
        """Start a worker process and wait until it consumes."""
        log_path = self.tmp_path / f"worker-{len(self.workers)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks.celery_app",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--queues",
                "membersync.realtime,membersync.bulk,membersync.maintenance",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            cwd=PROJECT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.workers.append(process)
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if b" ready." in log_path.read_bytes():
                return process
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker did not start:\n{log_path.read_text(errors='replace')[-4000:]}")

    def start_beat(self) -> subprocess.Popen[bytes]:
        """Start celery beat (the relay and the stalled-chain sweep run on its schedule)."""
        log_path = self.tmp_path / "beat.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks.celery_app",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.tmp_path / "beat-schedule"),
            ],
            cwd=PROJECT,
            env={**os.environ, **self.env},
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.workers.append(process)
        return process

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()  # a warm shutdown that hangs must not hold the suite
                    process.wait(timeout=15)

    def register(self, body: dict[str, Any]) -> str:
        response = self.client.post("/api/registrations", json=body)
        assert response.status_code == 202, response.get_json()
        registration_id: str = response.get_json()["id"]
        return registration_id

    def ops_status(self, registration_id: str) -> dict[str, Any]:
        """What ops see of a registration (`membersync status ID`): ids, attempts, notes, errors."""
        from registrations.status import status_document

        with self.database.session() as session:
            registration = session.get(Registration, registration_id)
            assert registration is not None, registration_id
            return status_document(registration)

    def registrations(self) -> list[Registration]:
        """Every registration, detached (for assertions on their columns)."""
        with self.database.session() as session:
            rows = list(session.scalars(select(Registration)))
            session.expunge_all()
            return rows

    def statuses(self) -> dict[str, str]:
        with self.database.session() as session:
            return {row[0]: row[1] for row in session.execute(select(Registration.id, Registration.status))}

    def wait_settled(self, ids: list[str], timeout: float = 120) -> dict[str, str]:
        """Wait until every registration is synced, partial or failed; the final statuses."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if all(statuses.get(i) in SETTLED for i in ids):
                return {i: statuses[i] for i in ids}
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not settled after {timeout}s: {Counter(statuses.get(i) for i in ids)}\n"
                    + self.describe_unsettled([i for i in ids if statuses.get(i) not in SETTLED])
                    + "\n"
                    + self.worker_log_tail()
                )
            time.sleep(0.2)

    def describe_unsettled(self, ids: list[str]) -> str:
        """Each unsettled registration's steps (state, attempts, last error, task id)."""
        lines = []
        with self.database.session() as session:
            for registration_id in ids[:10]:
                registration = session.get(Registration, registration_id)
                assert registration is not None
                lines.append(
                    f"{registration_id}: "
                    + "; ".join(
                        f"{step.system}={step.state}/{step.attempts} {step.last_error} {step.celery_task_id}"
                        for step in registration.steps
                    )
                )
        return "\n".join(lines)

    def open_dead_letters(self) -> list[DeadLetter]:
        with self.database.session() as session:
            letters = list(session.scalars(select(DeadLetter).where(DeadLetter.status == "open")))
            session.expunge_all()
            return letters

    def worker_log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.tmp_path.glob("worker-*.log"))
        return "\n".join(path.read_text(errors="replace")[-chars:] for path in logs)

    def stop(self) -> None:
        self.kill_workers(signal.SIGTERM)


def till_member(sandbox: Any, email: str, code: str) -> dict[str, Any]:
    """A member made at the shop's register, straight in Smaregi (as the POS would)."""
    import requests

    base = sandbox.urls["smaregi"]
    token = requests.post(
        f"{base}/app/sandbox/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "client_credentials", "scope": "pos.customers:read pos.customers:write"},
        timeout=5,
    ).json()["access_token"]
    response = requests.post(
        f"{base}/sandbox/pos/customers",
        headers={"Authorization": f"Bearer {token}"},
        json={"customerCode": code, "lastName": "山田", "firstName": "花子", "mailAddress": email},
        timeout=5,
    )
    assert response.status_code == 200, response.text  # Smaregi's create answers 200
    member: dict[str, Any] = response.json()
    return member


def person(number: int, **extra: Any) -> dict[str, Any]:
    """A valid registration body for person `number`."""
    return {
        "email": f"member{number}@example.com",
        "first_name": "Hanako",
        "last_name": "Yamada",
        "first_name_kana": "ハナコ",
        "last_name_kana": "ヤマダ",
        "phone": f"0901234{number:04d}",
        "locale": "ja" if number % 2 else "en",
        **extra,
    }


def _emails(objects: list[dict[str, Any]], read: Any) -> Counter[str]:
    return Counter((read(obj) or "").lower() for obj in objects if read(obj))


def held_by_system(sandbox: Any) -> dict[str, Counter[str]]:
    """For each system, how many objects hold each email address."""
    return {
        "shopify": _emails(sandbox.state("shopify")["customers"], lambda c: c.get("email")),
        "smaregi": _emails(sandbox.state("smaregi")["customers"], lambda m: m.get("mailAddress")),
        "hubspot": _emails(
            sandbox.state("hubspot")["contacts"], lambda c: (c.get("properties") or {}).get("email")
        ),
        # The welcome; a member-number email that follows a welcome sent without the number is
        # counted apart (see `member_number_mails`).
        "email": _mailed(sandbox, "<welcome."),
    }


def _mailed(sandbox: Any, message_id_prefix: str) -> Counter[str]:
    return Counter(
        address.lower()
        for message in sandbox.messages()
        if str(message.get("message_id") or "").strip().startswith(message_id_prefix)
        for address in message["recipients"]
    )


def member_number_mails(sandbox: Any) -> Counter[str]:
    """How many member-number emails (sent after a welcome without the number) each address got."""
    return _mailed(sandbox, "<member-number.")


def assert_exactly_once(sandbox: Any, emails: set[str]) -> None:
    """Every email is held by exactly one object in every system, and nothing else is."""
    for system, held in held_by_system(sandbox).items():
        duplicated = {email: count for email, count in held.items() if count > 1}
        assert not duplicated, f"{system} holds duplicates: {duplicated}"
        assert set(held) == emails, f"{system}: missing {emails - set(held)}, extra {set(held) - emails}"
    repeated = {email: count for email, count in member_number_mails(sandbox).items() if count > 1}
    assert not repeated, f"member-number email sent more than once: {repeated}"


LINK = re.compile(r"https?://[^\s<>\"]+/(?:confirm|unsubscribe)/[A-Za-z0-9._-]+")


def mails_to(sandbox: Any, address: str) -> list[dict[str, Any]]:
    """The caught messages addressed to `address`."""
    return [m for m in sandbox.messages() if address in m["recipients"]]


def links(message: dict[str, Any], kind: str) -> list[str]:
    """The paths of the links of `kind` (confirm / unsubscribe) in a caught message's text part."""
    found = {urlsplit(url).path for url in LINK.findall(message.get("text") or "")}
    return sorted(path for path in found if path.startswith(f"/{kind}/"))


def wait_for(condition: Any, timeout: float = 60, what: str = "condition") -> Any:
    """Poll `condition` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answer_card(pipeline: Pipeline, sandbox: Any, registration_id: str, email: str, answer: str) -> None:
    """Wait until the registration waits for its owner about a card made at the till, then answer
    the welcome mail's "is this card yours?" link as the owner would (the page's POST)."""
    wait_for(lambda: pipeline.statuses().get(registration_id) == "waiting", what="the card question")
    [card] = links(mails_to(sandbox, email)[0], "confirm")
    assert pipeline.client.post(card, data={"answer": answer}).status_code == 200
