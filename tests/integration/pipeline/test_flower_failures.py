"""In Flower, a dead-lettered step is a FAILURE that names its dead letter, and `membersync.replay`
applied through Flower's own API brings the registration to `synced` (real worker, real Flower)."""

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

from tests.support.pipeline import Pipeline, person

AUTH = "Basic " + base64.b64encode(b"ops:flower-secret").decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Authorization", AUTH)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, None  # not listening yet


@pytest.fixture
def flower(pipeline: Pipeline, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")},
        **pipeline.env,
        "OPS_USERNAME": "ops",
        "OPS_PASSWORD": "flower-secret",
        "FLOWER_PORT": str(port),
        "FLOWER_DB": str(tmp_path / "flower.db"),
        "FLOWER_ADDRESS": "127.0.0.1",
    }
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.flower"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _call(f"{base}/api/workers")[0] != 200:
            assert process.poll() is None, (tmp_path / "flower.log").read_text()
            assert time.monotonic() < deadline, "flower did not answer"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_a_dead_letter_is_a_failure_in_flower_and_flower_replays_it(
    pipeline: Pipeline, sandbox: Any, flower: str
) -> None:
    pipeline.start_worker()
    sandbox.faults("hubspot", error_rate=1.0)  # every HubSpot answer a 5xx: retries run out
    registration_id = pipeline.register(person(3))
    assert pipeline.wait_settled([registration_id]) == {registration_id: "partial"}
    [letter] = pipeline.open_dead_letters()

    deadline = time.monotonic() + 30
    failed: list[dict[str, Any]] = []
    while not failed:
        status, tasks = _call(f"{flower}/api/tasks?state=FAILURE")
        assert status == 200
        failed = [task for task in tasks.values() if task.get("name") == "membersync.hubspot.upsert_contact"]
        assert failed or time.monotonic() < deadline, tasks
        time.sleep(0.3)
    [task] = failed
    assert f"#{letter.id}" in task["exception"] and "membersync.replay" in task["exception"]

    sandbox.faults("hubspot")  # the vendor is back
    status, answer = _call(f"{flower}/api/task/async-apply/membersync.replay", {"args": [str(letter.id)]})
    assert status == 200, answer
    deadline = time.monotonic() + 60
    while pipeline.statuses()[registration_id] != "synced":
        assert time.monotonic() < deadline, pipeline.describe_unsettled([registration_id])
        time.sleep(0.2)
    assert [letter.status for letter in pipeline.open_dead_letters()] == []
