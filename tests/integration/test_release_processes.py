"""The Procfile's web and release lines, run for real: gunicorn parses its flags and builds the app,
and `membersync db upgrade` migrates a fresh database (integration: they start processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.unit.test_packaging import _expand, _procfile


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
    env = {**os.environ, "MEMBERSYNC_ENV": "production", "DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [str(membersync), "db", "upgrade"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"registrations", "sync_steps", "outbox", "alembic_version"} <= tables
