"""The production edge, run for real: deploy/Caddyfile in a local Caddy, with a certificate made for
the test, in front of the Procfile's gunicorn web in production mode (Secure cookies, CSRF,
TRUSTED_PROXY_COUNT=1), driven by a real browser.

The form registers and the console signs in over HTTPS through the proxy; Flower answers under
/flower/ behind its login, as docker-compose.yml serves it; plain HTTP is redirected; a body over the
app's limit stops at the proxy; a client that trickles its body holds the proxy, never gunicorn's only
thread; and a client cannot choose its own address for the rate limit.

Debian's caddy (CI installs it in .ci/run) and chromium; skipped where either is missing locally.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import func, select

from registrations.database import Database
from registrations.models import Registration
from tests.support.browser import headless_chromium
from tests.unit.test_packaging import _expand, _procfile

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
OPS_USERNAME, OPS_PASSWORD = "night-shift", "vX9#kLm2-qRt7wZp"
SECRETS = {
    "OPS_USERNAME": OPS_USERNAME,
    "OPS_PASSWORD": OPS_PASSWORD,
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
    "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0",
}
# The intake's production limit (INTAKE_RATE_LIMIT's default).
INTAKE_LIMIT_PER_MINUTE = 60
START_SECONDS = 30
# Caddy 2.6.4 renamed request buffering (deploy/Caddyfile); Debian 12 ships 2.6.2.
CURRENT_BUFFERING_SINCE = (2, 6, 4)


def caddy_executable() -> str:
    found = shutil.which("caddy")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("no caddy executable: .ci/run installs Debian's caddy package")
    pytest.skip("no caddy executable on this machine (Debian: apt-get install caddy)")


def caddy_version(caddy: str) -> tuple[int, ...]:
    answer = subprocess.run([caddy, "version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", answer)
    assert match, answer
    return tuple(int(part) for part in match.groups())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def self_signed_certificate(folder: Path) -> None:
    """cert.pem and key.pem for localhost, as an operator would put them in TLS_CERT_DIR."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


@dataclass
class Edge:
    """The running stack: the site as the browser reaches it, and what sits behind it."""

    url: str  # https://localhost:<port>, PUBLIC_URL
    http_port: int
    https_port: int
    database: Database
    redis_url: str

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "localhost", self.https_port, timeout=10, context=ssl._create_unverified_context()
        )


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until_served(edge: Edge, processes: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Until gunicorn and Flower answer through the proxy (each binds before it is ready)."""
    deadline = time.monotonic() + START_SECONDS
    waiting = ["/healthz", "/flower/healthcheck"]
    while True:
        for name, (process, log) in processes.items():
            assert process.poll() is None, f"{name} exited:\n{log.read_text()}"
        try:
            connection = edge.connection()
            connection.request("GET", waiting[0])
            if connection.getresponse().status == 200:
                waiting.pop(0)
                if not waiting:
                    return
                continue
        except OSError:
            pass
        assert time.monotonic() < deadline, "\n".join(log.read_text() for _, log in processes.values())
        time.sleep(0.1)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Edge]:
    caddy = caddy_executable()
    folder = tmp_path_factory.mktemp("edge")
    certs = folder / "certs"
    certs.mkdir()
    self_signed_certificate(certs)
    database = Database(f"sqlite:///{folder / 'membersync.db'}")
    database.upgrade()
    redis.Redis.from_url(redis_url).flushdb()

    https_port, http_port, web_port, flower_port = free_port(), free_port(), free_port(), free_port()
    public_url = f"https://localhost:{https_port}"
    # The Procfile's web line, as a process manager expands it: one worker with one thread, so a
    # request that held it would show; on loopback rather than every interface.
    web = _expand(_procfile()["web"], PORT=str(web_port), WEB_CONCURRENCY="1", GUNICORN_THREADS="1")
    web[web.index("--bind") + 1] = f"127.0.0.1:{web_port}"
    web_env = {
        **os.environ,
        **SECRETS,
        "MEMBERSYNC_ENV": "production",
        "DATABASE_URL": database.url,
        "REDIS_URL": redis_url,
        "PUBLIC_URL": public_url,
        "TRUSTED_PROXY_COUNT": "1",  # as docker-compose.yml sets it behind its one proxy
    }
    web_env.pop("CELERY_BROKER_URL", None)
    # Flower as docker-compose.yml runs it, on loopback here (the default) instead of its container's
    # interfaces: under /flower/, the client address taken from the proxy's X-Real-Ip.
    flower_env = {
        **{name: value for name, value in web_env.items() if not name.startswith("FLOWER_")},
        "FLOWER_PORT": str(flower_port),
        "FLOWER_DB": str(folder / "flower.db"),
        "FLOWER_URL_PREFIX": "flower",
        "FLOWER_XHEADERS": "true",
    }
    caddy_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "XDG_DATA_HOME": str(folder / "caddy-data"),
        "XDG_CONFIG_HOME": str(folder / "caddy-config"),
        "PUBLIC_URL": public_url,
        "TLS_CERTIFICATES": "files",
        "CADDY_CERT_DIR": str(certs),
        "CADDY_HTTP_PORT": str(http_port),
        "CADDY_HTTPS_PORT": str(https_port),
        "WEB_UPSTREAM": f"127.0.0.1:{web_port}",
        "FLOWER_UPSTREAM": f"127.0.0.1:{flower_port}",
    }
    if caddy_version(caddy) < CURRENT_BUFFERING_SINCE:
        caddy_env["CADDY_REQUEST_BUFFERING"] = "legacy"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    processes = {
        "gunicorn": (start([gunicorn, *web[1:]], web_env, folder, folder / "web.log"), folder / "web.log"),
        "flower": (
            start([sys.executable, "-m", "cli.flower"], flower_env, folder, folder / "flower.log"),
            folder / "flower.log",
        ),
        "caddy": (
            start([caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], caddy_env, folder,
                  folder / "caddy.log"),
            folder / "caddy.log",
        ),
    }  # fmt: skip
    running = Edge(public_url, http_port, https_port, database, redis_url)
    try:
        wait_until_served(running, processes)
        yield running
    finally:
        for process, _ in reversed(processes.values()):
            stop(process)
        database.dispose()


def test_the_form_registers_and_the_console_signs_in_over_https_through_the_proxy(edge: Edge) -> None:
    redis.Redis.from_url(edge.redis_url).flushdb()
    with headless_chromium() as browser:
        context = browser.new_context(ignore_https_errors=True, locale="en-US")
        page = context.new_page()

        page.goto(f"{edge.url}/?lang=en")
        page.fill("#email", "hanako.edge@example.jp")
        page.fill("#last_name", "山田")
        page.fill("#first_name", "花子")
        with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
            page.click("button.submit")
        page.wait_for_load_state()
        # 303 to the thank-you page: the CSRF token matched the session cookie the proxy carried.
        assert posted.value.status == 303, page.content()
        assert page.url.startswith(f"{edge.url}/thanks/")
        reference = page.url.removeprefix(f"{edge.url}/thanks/").split("?")[0]
        with edge.database.session() as session:
            assert session.scalar(select(func.count()).select_from(Registration)) == 1
            assert session.get(Registration, reference) is not None

        page.goto(f"{edge.url}/ops/")
        assert page.url.startswith(f"{edge.url}/ops/login")
        page.fill("#username", OPS_USERNAME)
        page.fill("#password", OPS_PASSWORD)
        with page.expect_response(lambda answer: answer.request.method == "POST") as signed_in:
            page.click("button:has-text('Sign in')")
        page.wait_for_load_state()
        assert signed_in.value.status == 303
        assert page.url == f"{edge.url}/ops/"
        cookies = context.cookies(edge.url)
        assert cookies and all(cookie["secure"] for cookie in cookies), cookies
        context.close()


def test_flower_answers_under_flower_behind_its_login(edge: Edge) -> None:
    connection = edge.connection()
    connection.request("GET", "/flower")
    answer = connection.getresponse()
    answer.read()
    assert (answer.status, answer.getheader("Location")) == (302, "/flower/")
    connection.request("GET", "/flower/")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 401
    token = base64.b64encode(f"{OPS_USERNAME}:{OPS_PASSWORD}".encode()).decode()
    connection.request("GET", "/flower/", headers={"Authorization": f"Basic {token}"})
    answer = connection.getresponse()
    page = answer.read().decode()
    assert answer.status == 200
    assert "/flower/static/" in page, "Flower's own links carry the prefix the proxy serves it under"


def test_readiness_with_the_vendors_checks_stays_on_the_internal_network(edge: Edge) -> None:
    connection = edge.connection()
    connection.request("GET", "/readyz")
    answer = connection.getresponse()
    assert (answer.status, answer.read()) == (404, b"")


def test_plain_http_is_redirected_to_https(edge: Edge) -> None:
    connection = http.client.HTTPConnection("localhost", edge.http_port, timeout=10)
    connection.request("GET", "/ops/")
    answer = connection.getresponse()
    assert answer.status in {301, 308}
    # To the same host and path over https (the https port is 443 in production).
    location = urlsplit(answer.getheader("Location") or "")
    assert (location.scheme, location.hostname, location.path) == ("https", "localhost", "/ops/")


def test_a_body_over_the_apps_limit_stops_at_the_proxy(edge: Edge) -> None:
    connection = edge.connection()
    body = json.dumps({"email": "big@example.jp", "padding": "x" * 20_000}).encode()
    connection.request("POST", "/api/registrations", body, {"Content-Type": "application/json"})
    assert connection.getresponse().status == 413


def test_a_client_trickling_its_body_never_holds_gunicorns_thread(edge: Edge) -> None:
    context = ssl._create_unverified_context()
    with (
        socket.create_connection(("localhost", edge.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as slow,
    ):
        slow.sendall(
            b"POST /api/registrations HTTP/1.1\r\nHost: localhost\r\n"
            b'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"email": '
        )
        time.sleep(0.5)  # the proxy has the headers and part of the body; the rest never comes
        began = time.monotonic()
        connection = edge.connection()
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        # Had the proxy passed the request on, gunicorn's one thread would wait for the body (up
        # to the proxy's 30 s body timeout) before it could answer anyone else.
        assert time.monotonic() - began < 5


def test_a_client_cannot_choose_its_own_address_for_the_rate_limit(edge: Edge) -> None:
    redis.Redis.from_url(edge.redis_url).flushdb()
    connection = edge.connection()
    statuses = []
    for attempt in range(INTAKE_LIMIT_PER_MINUTE + 1):
        # A different address each time: the proxy replaces the header, the app trusts only the
        # proxy's (TRUSTED_PROXY_COUNT=1), so every post counts against this one client.
        spoofed = {"X-Forwarded-For": f"203.0.113.{attempt % 250}", "Content-Type": "application/json"}
        connection.request("POST", "/api/registrations", b"{}", spoofed)
        answer = connection.getresponse()
        answer.read()
        statuses.append(answer.status)
    assert 429 not in statuses[:INTAKE_LIMIT_PER_MINUTE], statuses
    assert statuses[-1] == 429
