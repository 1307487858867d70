"""`python -m cli.flower` (the Procfile's flower line) for real: it starts on a real Redis broker,
answers its health check, keeps its API behind basic auth, and saves its state when stopped."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "watcher", "flower-test-password"
# Inherited variables that would point Flower or its Celery app somewhere else.
FOREIGN = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "BROKER_URL",
    "APP",
    "OPS_USERNAME",
    "OPS_PASSWORD",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(tmp_path: Path, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("FLOWER_")}
    env.update(
        MEMBERSYNC_ENV="production",
        DATABASE_URL=f"sqlite:///{tmp_path / 'flower-test.db'}",
        REDIS_URL=redis_url,
        FLOWER_PORT=str(port),
        FLOWER_DB=str(tmp_path / "state" / "flower.db"),
        FLOWER_ADDRESS="127.0.0.1",
        **extra,
    )
    return env


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def flower(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = _free_port()
    env = _environment(tmp_path, redis_url, port, OPS_USERNAME=USERNAME, OPS_PASSWORD=PASSWORD)
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.flower"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"flower exited {process.returncode}: {(tmp_path / 'flower.log').read_text()}")
            try:
                if _get(f"{base}/healthcheck")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"flower did not answer: {(tmp_path / 'flower.log').read_text()}")
            time.sleep(0.2)
        yield base, process, tmp_path / "state"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_flower_serves_its_health_check_and_guards_its_api(
    flower: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base, process, state = flower
    assert _get(f"{base}/healthcheck") == (200, b"OK")
    assert _get(f"{base}/api/workers")[0] == 401
    assert _get(f"{base}/")[0] == 401
    assert _get(f"{base}/api/workers", auth=(USERNAME, "wrong"))[0] == 401
    # Flower's own Prometheus page is not public either.
    assert _get(f"{base}/metrics")[0] == 401
    status, body = _get(f"{base}/metrics", auth=(USERNAME, PASSWORD))
    assert status == 200 and b"flower_" in body
    status, body = _get(f"{base}/api/workers", auth=(USERNAME, PASSWORD))
    assert status == 200
    assert body.startswith(b"{")

    # SIGTERM (what docker and honcho send) is a clean stop that writes the persistent state.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert list(state.glob("flower.db*")), "persistent mode saved its state under FLOWER_DB"


def test_flower_refuses_to_start_in_production_without_credentials(tmp_path: Path, redis_url: str) -> None:
    env = _environment(tmp_path, redis_url, _free_port())
    result = subprocess.run(
        [sys.executable, "-m", "cli.flower"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "OPS_USERNAME and OPS_PASSWORD must be set" in result.stderr
