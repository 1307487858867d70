"""Acceptance, in a real browser: a step dead-lettered by a vendor outage is a FAILURE on Flower's task
page; the page links the failure to the ops console and has a Re-run button; the operator clicks it
once the vendor is back, the registration syncs, and the page then says the failure is closed.

`python -m cli.flower` as the Procfile runs it (with our re-run extension), a real worker process,
real Redis and database, the sandbox over sockets, Debian's chromium driven by Playwright.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cli.flower_rerun import FLOWER_VERSION
from registrations.database import Database
from registrations.models import DeadLetter, OpsAuditEntry
from tests.support.browser import headless_chromium
from tests.support.pipeline import Pipeline, person

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "evening-shift", "a long flower password"
CONSOLE = "https://members.example.jp"
PROJECT = Path(__file__).resolve().parents[2]
SYNCED_WITHIN_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _api(url: str) -> Any:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def pipeline(database: Database, clean_redis: str, sandbox: Any, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(database, clean_redis, sandbox, tmp_path)
    running.configure(OPS_USERNAME=USERNAME, OPS_PASSWORD=PASSWORD, PUBLIC_URL=CONSOLE)
    yield running
    running.stop()


@pytest.fixture
def flower(pipeline: Pipeline, tmp_path: Path) -> Iterator[str]:
    """Flower on the pipeline's broker and database, started before any task runs (it sees events)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update(pipeline.env, FLOWER_PORT=str(port), FLOWER_DB=str(tmp_path / "flower" / "flower.db"))
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.flower"], env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{base}/healthcheck", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _failed_task(flower: str, task_name: str) -> str:
    """The id of the FAILURE Flower shows for `task_name` (once the worker's event reached it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            tasks = _api(f"{flower}/api/tasks?state=FAILURE&taskname={task_name}")
        except urllib.error.URLError:
            tasks = {}
        if tasks:
            [task_id] = tasks
            return str(task_id)
        time.sleep(0.3)
    raise AssertionError(f"Flower shows no failed {task_name}")


def test_the_pinned_flower_is_installed() -> None:
    # The extension adds to Flower's own page markup: it is written for the release pyproject pins.
    import flower

    pinned = (PROJECT / "pyproject.toml").read_text()
    assert f'"flower=={FLOWER_VERSION}"' in pinned
    assert flower.__version__ == FLOWER_VERSION


def test_an_operator_reruns_a_failed_step_from_flower(
    flower: str, pipeline: Pipeline, sandbox: Any, database: Database, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params.get("database_url") == "sqlite" and os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("runs once, on PostgreSQL (production's database)")
    # HubSpot answers every call with a server error until its retries run out: a dead letter.
    sandbox.faults("hubspot", error_rate=1.0)
    pipeline.start_worker(concurrency=4)
    registration_id = pipeline.register(person(1))
    assert pipeline.wait_settled([registration_id], timeout=90)[registration_id] == "partial"
    [letter] = pipeline.open_dead_letters()
    task_id = _failed_task(flower, "membersync.hubspot.upsert_contact")
    sandbox.faults("hubspot")  # HubSpot recovered

    with headless_chromium() as browser:
        context = browser.new_context(http_credentials={"username": USERNAME, "password": PASSWORD})
        page = context.new_page()
        page.goto(f"{flower}/task/{task_id}")
        assert page.inner_text("#membersync-letter-status") == "open"
        console_page = f"{CONSOLE}/ops/dead-letters/{letter.id}"
        assert page.get_attribute("#membersync-console-link", "href") == console_page
        # The console path in Flower's own failure message is a link too.
        assert (
            page.locator(f"dd a[href='{console_page}']:has-text('/ops/dead-letters/{letter.id}')").count()
            >= 1
        )

        page.click("#membersync-rerun-button")
        page.wait_for_selector("#membersync-rerun-queued")
        assert page.url.startswith(f"{flower}/task/{task_id}?rerun=")

        deadline = time.monotonic() + SYNCED_WITHIN_SECONDS
        while pipeline.statuses()[registration_id] != "synced":
            assert time.monotonic() < deadline, pipeline.describe_unsettled([registration_id])
            time.sleep(0.3)
        page.goto(f"{flower}/task/{task_id}")
        # Closed: no button any more, the dead letter's status and the registration's instead.
        closed = page.inner_text("#membersync-letter-status")
        assert closed in {"replayed", "resolved"}
        assert page.inner_text("#membersync-registration-status") == "synced"
        assert page.locator("#membersync-rerun-button").count() == 0
        # Flower's task list no longer shows it as an open FAILURE.
        page.goto(f"{flower}/tasks")
        page.wait_for_selector(f"text=FAILURE ({closed})")

        # A forged post without the page's XSRF token is refused, even with the ops login.
        answer = context.request.post(f"{flower}/membersync/rerun/{task_id}")
        assert answer.status == 403
        context.close()

    with database.session() as session:
        entries = session.scalars(select(OpsAuditEntry).where(OpsAuditEntry.action == "replay")).all()
        assert [(entry.operator, entry.dead_letter_id or letter.id) for entry in entries] == [
            (USERNAME, letter.id)
        ]
        assert session.get(DeadLetter, letter.id).status != "open"  # type: ignore[union-attr]
