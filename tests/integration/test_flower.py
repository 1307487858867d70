"""`python -m cli.flower` (the Procfile's flower line) for real: it starts on a real Redis broker,
answers its health check, keeps its API behind basic auth, and saves its state when stopped."""

from __future__ import annotations

import base64
import http.client
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

USERNAME, PASSWORD = "watcher", "wAtch-9f2Kq7#Lx"
# A named operator (OPS_USERS) signs in to Flower too, with their own password.
NAMED, NAMED_PASSWORD = "alice", "alice walks the night shift"
# Production refuses to start without strong keys (config.settings).
KEYS = {
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
    "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0",
}
# Inherited variables that would point Flower or its Celery app somewhere else.
FOREIGN = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "BROKER_URL",
    "APP",
    "OPS_USERNAME",
    "OPS_PASSWORD",
    "OPS_USERS",
    "OPS_USERS_FILE",
    "SECRET_KEY",
    "MEMBER_CODE_KEY",
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
        **KEYS,
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
def flower(tmp_path: Path, clean_redis: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Flower in production mode; its sign-in throttle counts in the test's emptied Redis."""
    port = _free_port()
    from config.operators import hash_password

    named = f"{NAMED}:{hash_password(NAMED_PASSWORD)}"
    env = _environment(
        tmp_path, clean_redis, port, OPS_USERNAME=USERNAME, OPS_PASSWORD=PASSWORD, OPS_USERS=named
    )
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
    # A named operator with their own password, twice (the second from the remembered match).
    assert [_get(f"{base}/api/workers", auth=(NAMED, NAMED_PASSWORD))[0] for _ in range(2)] == [200, 200]
    assert _get(f"{base}/api/workers", auth=(NAMED, PASSWORD))[0] == 401

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
    assert "OPS_USERNAME must be set outside dev mode" in result.stderr


def _call(base: str, authorization: str | bytes | None, source: str = "127.0.0.1") -> tuple[int, str | None]:
    """GET /api/workers from `source` (a loopback address) with this raw Authorization header:
    (status, Retry-After)."""
    host, _, port = base.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    try:
        connection.putrequest("GET", "/api/workers")
        if authorization is not None:
            connection.putheader("Authorization", authorization)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        connection.close()


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_flower_ends_100_wrong_passwords_in_429s(flower: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    base = flower[0]
    answers = [_call(base, _basic(USERNAME, f"guess-{n}")) for n in range(100)]
    assert [status for status, _ in answers[:10]] == [401] * 10
    assert {status for status, _ in answers[10:]} == {429}
    assert all(wait is not None and 1 <= int(wait) <= 60 for _, wait in answers[10:])
    # Blocked means blocked: the right pair from this address is refused too, and says nothing.
    assert _call(base, _basic(USERNAME, PASSWORD))[0] == 429
    # The username is blocked too, from any address; another username from another address is not.
    assert _call(base, _basic(USERNAME, PASSWORD), source="127.0.0.2")[0] == 429
    assert _call(base, _basic("someone-else", "wrong"), source="127.0.0.3")[0] == 401


def test_flower_throttles_per_username_across_addresses(
    flower: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base = flower[0]
    for n in range(10):
        assert _call(base, _basic(USERNAME, f"guess-{n}"), source=f"127.0.1.{n + 1}")[0] == 401
    status, wait = _call(base, _basic(USERNAME, PASSWORD), source="127.0.2.1")
    assert (status, wait is not None) == (429, True)
    # Another username from a fresh address is not held up by the first one's failures.
    assert _call(base, _basic("someone-else", "wrong"), source="127.0.2.2")[0] == 401


# Credentials Flower's own check answered with a 500 (non-ASCII text) or that are malformed.
ODD_AUTHORIZATIONS: list[str | bytes] = [
    _basic("ユーザー", "パスワード"),
    _basic(USERNAME, "pässwörd"),
    "Basic " + base64.b64encode(b"\xff\xfe:\xe9").decode(),  # not UTF-8
    "Basic " + base64.b64encode(b"no colon").decode(),
    "Basic !!!not-base64!!!",
    "Basic",
    "Bearer something",
    "Basic ユーザー".encode(),  # raw non-ASCII bytes in the header
    b"Basic \xe9\xe9\xe9",
]


def test_flower_answers_401_to_odd_credentials_never_500(
    flower: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base = flower[0]
    answers = {repr(authorization): _call(base, authorization)[0] for authorization in ODD_AUTHORIZATIONS}
    assert answers == {repr(authorization): 401 for authorization in ODD_AUTHORIZATIONS}
    assert _call(base, _basic(USERNAME, PASSWORD))[0] == 200
