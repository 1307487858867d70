"""The Procfile's web and release lines, run for real: gunicorn parses its flags and builds the app,
and `membersync db upgrade` migrates a fresh database (integration: they start processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.unit.test_packaging import _expand, _procfile

# What production refuses to start without (config.settings.Settings.require_secrets).
SECRETS = {
    "OPS_USERNAME": "ops-lead",
    "OPS_PASSWORD": "vX9#kLm2-qRt7wZp",
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
    "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0",
}


def test_procfile_web_line_is_accepted_by_gunicorn_and_logs_no_query_strings(tmp_path: Path) -> None:
    argv = _expand(_procfile()["web"])
    assert argv[:2] == ["gunicorn", "app.wsgi:application"]
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000", "PORT defaults to the CONTRACT port"
    log_format = argv[argv.index("--access-logformat") + 1]
    assert "%(U)s" in log_format
    # %(r)s is the request line with its query string, %(q)s the query string, %(f)s the referer.
    for leaky in ("%(r)s", "%(q)s", "%(f)s"):
        assert leaky not in log_format
    # --check-config parses every flag and imports app.wsgi, building the app from the environment.
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = {**os.environ, "MEMBERSYNC_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}"}
    result = subprocess.run(
        [str(gunicorn), "--check-config", *argv[1:]], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_release_command_migrates_a_database(tmp_path: Path) -> None:
    membersync = Path(sys.executable).with_name("membersync")
    assert membersync.exists(), "the membersync console script is installed with the package"
    database = tmp_path / "release.db"
    env = {**os.environ, **SECRETS, "MEMBERSYNC_ENV": "production", "DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [str(membersync), "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"registrations", "sync_steps", "outbox", "alembic_version"} <= tables


def test_procfile_worker_refuses_to_start_without_a_member_code_key(tmp_path: Path) -> None:
    """Started, it would take tasks and dead-letter every Smaregi step; it must not start at all."""
    argv = _expand(_procfile()["worker"])
    assert argv[:3] == ["celery", "-A", "tasks.celery_app"]
    celery = Path(sys.executable).with_name("celery")
    secrets = {name: value for name, value in SECRETS.items() if name != "MEMBER_CODE_KEY"}
    env = {
        **{name: value for name, value in os.environ.items() if name != "MEMBER_CODE_KEY"},
        **secrets,
        "MEMBERSYNC_ENV": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",  # never reached: it stops before connecting
    }
    result = subprocess.run(
        [str(celery), *argv[1:]], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "MEMBER_CODE_KEY must be set outside dev mode" in result.stderr + result.stdout
