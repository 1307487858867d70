"""The command line as a person uses it: `membersync dev` end to end, and the database commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import devserver
from cli.main import main
from sandbox.valkey import redis_answers

CONTRACT_COMMANDS = ("dev", "sandbox", "status", "dlq", "reconcile", "check", "db", "bench", "directory")


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
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return 0, None


def test_help_lists_every_contract_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in CONTRACT_COMMANDS:
        assert command in result.output


def test_db_upgrade_then_status_and_dlq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("MEMBERSYNC_ENV", "test")
    runner = CliRunner()
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "cli.db").exists()

    from config.systems import SYSTEM_NAMES
    from registrations.database import Database
    from registrations.models import DeadLetter, Registration, SyncStep

    with Database(f"sqlite:///{tmp_path / 'cli.db'}").session() as session:
        registration = Registration(
            request_fingerprint="f", email="cli@example.com", first_name="A", last_name="B"
        )
        registration.steps = [SyncStep(system=s) for s in SYSTEM_NAMES]
        session.add(registration)
        session.flush()
        session.add(
            DeadLetter(
                registration_id=registration.id,
                system="smaregi",
                task_name="membersync.smaregi.upsert_member",
                error_class="PermanentError",
                message="ambiguous_match",
            )
        )
        registration_id = registration.id

    status = runner.invoke(main, ["status", registration_id, "--json"])
    assert status.exit_code == 0, status.output
    document = json.loads(status.output)
    assert document["id"] == registration_id and set(document["steps"]) == {
        "shopify",
        "smaregi",
        "hubspot",
        "email",
        "consent",
    }
    assert "cli@example.com" not in status.output

    listed = json.loads(runner.invoke(main, ["dlq", "list", "--json"]).output)
    assert [letter["message"] for letter in listed] == ["ambiguous_match"]
    assert json.loads(runner.invoke(main, ["--json", "dlq", "list"]).output) == listed  # either place

    # For people by default: a table, the JSON only with --json; status keeps its JSON on stdout
    # (the contract's) and puts its table on stderr.
    table = runner.invoke(main, ["dlq", "list"])
    assert table.exit_code == 0 and not table.output.lstrip().startswith("[")
    header, _rule, row, *_ = table.output.splitlines()
    assert header.split()[:4] == ["#", "system", "status", "attempts"]
    assert row.split()[:4] == [str(listed[0]["id"]), "smaregi", "open", "0"] and "ambiguous_match" in row
    shown = runner.invoke(main, ["status", registration_id])
    assert json.loads(shown.stdout)["id"] == registration_id
    assert f"Registration {registration_id}: accepted" in shown.stderr
    assert any(line.split()[:2] == ["smaregi", "pending"] for line in shown.stderr.splitlines())
    assert runner.invoke(main, ["status", registration_id, "--json"]).stderr == ""
    assert runner.invoke(main, ["status", "no-such-id"]).exit_code != 0

    # Done by hand in the vendor's tool: resolved with a note, nothing run, listed as resolved.
    letter_id = str(listed[0]["id"])
    assert runner.invoke(main, ["dlq", "resolve", letter_id]).exit_code != 0  # the note is required
    resolved = runner.invoke(
        main,
        ["dlq", "resolve", letter_id, "--note", "member made at the till", "--operator", "kenji", "--json"],
    )
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.output)["status"] == "resolved"
    shown = json.loads(runner.invoke(main, ["dlq", "show", letter_id, "--json"]).output)
    # Who resolved it is kept with the note (and in the audit trail): --operator, else the OS user.
    assert shown["notes"] == "resolved: member made at the till (cli: kenji)"
    assert json.loads(runner.invoke(main, ["dlq", "list", "--json"]).output) == []
    assert [
        item["id"]
        for item in json.loads(runner.invoke(main, ["dlq", "list", "--status", "resolved", "--json"]).output)
    ] == [int(letter_id)]
    again = runner.invoke(main, ["dlq", "resolve", letter_id, "--note", "twice"])
    assert again.exit_code != 0 and f"no open dead letter {letter_id}" in again.output


def test_an_invalid_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code != 0
    assert "PORT" in result.output


def test_dev_starts_embedded_redis_when_none_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(devserver, "LOCAL_REDIS", f"redis://127.0.0.1:{free_port()}/0")
    env: dict[str, str] = {}
    server = devserver.choose_redis(env)
    try:
        assert server is not None
        assert redis_answers(env["REDIS_URL"])
        assert (tmp_path / "var" / "valkey").is_dir()
    finally:
        assert server is not None
        server.stop()


def test_dev_runs_everything_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    ports = {
        "PORT": free_port(),
        "FLOWER_PORT": free_port(),
        "SANDBOX_SHOPIFY_PORT": free_port(),
        "SANDBOX_SMAREGI_PORT": free_port(),
        "SANDBOX_HUBSPOT_PORT": free_port(),
        "SANDBOX_SMTP_PORT": free_port(),
        "SANDBOX_MAIL_HTTP_PORT": free_port(),
    }
    env = {**os.environ, **{name: str(port) for name, port in ports.items()}, "INTAKE_RATE_LIMIT": "off"}
    for name in ("DATABASE_URL", "MEMBERSYNC_ENV"):
        env.pop(name, None)
    log = (tmp_path / "dev.log").open("w")
    dev = subprocess.Popen(
        [str(Path(sys.executable).parent / "membersync"), "dev"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web = f"http://127.0.0.1:{ports['PORT']}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and http("GET", f"{web}/healthz")[0] != 200:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            time.sleep(0.5)
        status, body = http(
            "POST",
            f"{web}/api/registrations",
            {"email": "dev@example.com", "first_name": "A", "last_name": "B"},
        )
        assert status == 202, (tmp_path / "dev.log").read_text()[-3000:]
        status, document = http("GET", f"{web}{body['status_url']}")
        assert status == 200 and document["id"] == body["id"]
        assert (tmp_path / "var" / "membersync.db").exists()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not listening(ports["FLOWER_PORT"]):
            time.sleep(0.5)
        assert listening(ports["FLOWER_PORT"]) and listening(ports["SANDBOX_SHOPIFY_PORT"])
        # Once every service answers (the worker included), a short banner with the URLs.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Membersync is ready" not in (tmp_path / "dev.log").read_text():
            time.sleep(0.5)
        shown = (tmp_path / "dev.log").read_text()
        assert "Membersync is ready" in shown, shown[-3000:]
        banner = shown[shown.index("Membersync is ready") :]
        for port in ("PORT", "FLOWER_PORT", "SANDBOX_MAIL_HTTP_PORT", "SANDBOX_SMAREGI_PORT"):
            assert f"http://127.0.0.1:{ports[port]}/" in banner, port
        assert "var/log/dev.log" in banner
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(40)
        log.close()
    time.sleep(1)
    assert [name for name, port in ports.items() if listening(port)] == []
    # The third-party banners (Celery's, gunicorn's, Flower's) are in the log file, not on screen.
    shown = (tmp_path / "dev.log").read_text()
    logged = (tmp_path / "var" / "log" / "dev.log").read_text()
    for banner_line in ("[queues]", "Listening at:", "Visit me at", "celery@"):
        assert banner_line in logged and banner_line not in shown, banner_line
    assert len(shown.splitlines()) < 40, shown
