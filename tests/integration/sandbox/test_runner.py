"""The runner: every emulator in-process, environment knobs, and `python -m sandbox` stopping cleanly."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.runner import PORT_VARIABLES, Sandbox, start_sandbox

ALL_FREE = dict.fromkeys(PORT_VARIABLES, 0)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    running = start_sandbox(ports=ALL_FREE, env={"SANDBOX_SMAREGI_RATE_PER_SECOND": "2"})
    yield running
    running.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_start_sandbox_serves_every_emulator_with_their_controls(sandbox):
    assert set(sandbox.urls) == {"shopify", "smaregi", "hubspot", "smtp", "mail"}
    for name in ("shopify", "smaregi", "hubspot"):
        assert requests.get(f"{sandbox.urls[name]}/_sandbox/state", timeout=5).status_code == 200
    assert requests.get(f"{sandbox.urls['mail']}/api/messages", timeout=5).json() == []
    smtp_port = int(sandbox.urls["smtp"].rsplit(":", 1)[1])
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
        smtp.sendmail("a@example.jp", ["b@example.jp"], b"Subject: hi\r\n\r\nhello\r\n")
    assert requests.get(f"{sandbox.urls['mail']}/api/messages", timeout=5).json()[0]["subject"] == "hi"


def test_environment_sets_rate_limits(sandbox):
    url = sandbox.urls["smaregi"]
    token = requests.post(
        f"{url}/app/sandbox/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [requests.get(f"{url}/sandbox/pos/customers", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_stop_leaves_no_port_listening():
    running = start_sandbox(ports=ALL_FREE, env={})
    ports = [int(url.rsplit(":", 1)[1]) for url in running.urls.values()]
    assert all(is_listening(port) for port in ports)
    running.stop()
    assert not any(is_listening(port) for port in ports)


def test_missing_shopify_emulator_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "sandbox.shopify", None)
    running = start_sandbox(ports=ALL_FREE, env={})
    try:
        assert "shopify" not in running.urls and "shopify" in running.skipped
        assert "smaregi" in running.urls
    finally:
        running.stop()


def test_bad_settings_are_refused_clearly():
    with pytest.raises(ValueError, match="SANDBOX_HUBSPOT_RATE_PER_10S"):
        start_sandbox(ports=ALL_FREE, env={"SANDBOX_HUBSPOT_RATE_PER_10S": "lots"})


def test_a_port_in_use_stops_the_others(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(OSError):
            start_sandbox(ports={**ALL_FREE, "hubspot": busy}, env={})


def test_python_m_sandbox_prints_urls_and_stops_on_sigterm():
    ports = {name: free_port() for name in PORT_VARIABLES}
    env = {**os.environ, **{PORT_VARIABLES[name]: str(port) for name, port in ports.items()}}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"],
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(6)]
        assert "running" in banner[0]
        assert any(f"127.0.0.1:{ports['smaregi']}" in line and "sandbox-client" in line for line in banner)
        assert any("pat-sandbox" in line for line in banner)
        assert requests.get(f"http://127.0.0.1:{ports['hubspot']}/_sandbox/state", timeout=5).ok
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.1)
    assert not any(is_listening(port) for port in ports.values())
