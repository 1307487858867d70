"""The production packaging: docker-compose.yml, Procfile, Dockerfile, .ci/run and the Flower launcher.

No Docker engine runs here, so the compose file is checked by parsing it (and by `docker compose
config` where the plugin exists); the Procfile lines are expanded by a real shell and their
arguments parsed by gunicorn and Celery's own command line.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from cli.flower import DEFAULT_MAX_TASKS, flower_argv
from config.celery import BULK_QUEUE, MAINTENANCE_QUEUE, REALTIME_QUEUE, celery_config
from config.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TYPES = {"web", "worker", "beat", "flower", "release"}
QUEUES = {REALTIME_QUEUE, BULK_QUEUE, MAINTENANCE_QUEUE}
# Names whose value is a credential: it must come from the host environment, never from the file.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|DSN", re.IGNORECASE)
REQUIRED_FROM_HOST = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?\?[^}]*)?\}$")
# Compose-only settings the application does not read itself.
COMPOSE_ONLY_ENV = {"FLOWER_DB"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environment as a mapping, so the x- anchor merges"
    return environment


def _settings_env_names() -> set[str]:
    import dataclasses

    from config.systems import SYSTEMS

    fields = {spec.metadata["env"] for spec in dataclasses.fields(Settings) if "env" in spec.metadata}
    return fields | {system.retry_variable for system in SYSTEMS}


def _dev_settings(**env: str) -> Settings:
    return Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "DATABASE_URL": "sqlite://", **env})


# --- docker-compose.yml -------------------------------------------------------------------------


def test_redis_keeps_queued_tasks_across_restarts_and_never_evicts() -> None:
    redis = _services()["redis"]
    command = redis["command"]
    assert redis["image"].startswith("redis:7")
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"]), "the AOF lives on a volume"


def test_every_database_user_waits_for_migrations_and_healthy_backing_services() -> None:
    services = _services()
    migrate = services["migrate"]
    assert migrate["command"] == ["membersync", "db", "upgrade"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no", "a one-shot job must not be restarted after it exits 0"

    users = [name for name, svc in services.items() if "DATABASE_URL" in _environment(svc)]
    assert {"web", "worker", "beat"} <= set(users)
    for name in users:
        if name == "migrate":
            continue
        depends_on = services[name].get("depends_on") or {}
        assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully", name
        assert depends_on.get("postgres", {}).get("condition") == "service_healthy", name
        assert depends_on.get("redis", {}).get("condition") == "service_healthy", name


@pytest.mark.parametrize(("name", "probe"), [("redis", "redis-cli ping"), ("postgres", "pg_isready")])
def test_backing_services_have_healthchecks(name: str, probe: str) -> None:
    healthcheck = _services()[name]["healthcheck"]
    assert not healthcheck.get("disable")
    assert probe in " ".join(healthcheck["test"])


def test_web_serves_gunicorn_on_8000_with_a_healthz_healthcheck() -> None:
    web = _services()["web"]
    assert web["command"][:2] == ["gunicorn", "app.wsgi:application"]
    assert "0.0.0.0:8000" in web["command"]
    assert any(str(port).endswith(":8000") for port in web["ports"])
    assert "/healthz" in " ".join(web["healthcheck"]["test"])


def test_flower_requires_auth_from_the_host_environment() -> None:
    flower = _services()["flower"]
    assert flower["command"] == ["python", "-m", "cli.flower"]
    environment = _environment(flower)
    for name in ("OPS_USERNAME", "OPS_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment[name]), f"{name} must be required"
    assert any(str(port).endswith(":5555") for port in flower["ports"])


def test_worker_scales_out_and_beat_runs_once() -> None:
    services = _services()
    worker, beat = services["worker"], services["beat"]
    # container_name or a fixed host port makes `--scale worker=N` fail.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert int(beat.get("deploy", {}).get("replicas", 1)) <= 1
    assert beat.get("scale", 1) <= 1


def test_shared_environment_is_production_on_postgres_and_redis() -> None:
    environment = _environment(_services()["web"])
    assert environment["MEMBERSYNC_ENV"] == "production"
    assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    for name in ("SECRET_KEY", "MEMBER_CODE_KEY"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment[name]), f"{name} must be required"
    for name in ("web", "worker", "beat", "migrate", "flower"):
        shared = _environment(_services()[name])
        assert shared["MEMBERSYNC_ENV"] == "production", name
        assert shared["REDIS_URL"] == environment["REDIS_URL"], name


def test_every_vendor_setting_is_passed_through_and_no_unknown_name_is_set() -> None:
    known = _settings_env_names()
    vendor = {
        name for name in known if name.startswith(("SHOPIFY_", "SMAREGI_", "HUBSPOT_", "SMTP_", "SYNC_"))
    }
    for name in ("web", "worker", "beat"):
        environment = _environment(_services()[name])
        assert vendor <= set(environment), f"{name} misses {sorted(vendor - set(environment))}"
        # Every setting reaches every process (the ports are each service's own).
        missing = known - set(environment) - {"PORT", "FLOWER_PORT"}
        assert not missing, f"{name} does not pass {sorted(missing)}"
        unknown = set(environment) - known - COMPOSE_ONLY_ENV
        assert not unknown, f"{name} sets names the application never reads: {sorted(unknown)}"


def test_no_secret_value_is_written_in_the_compose_file() -> None:
    for name, service in _services().items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key) and value is not None:
                # ${VAR} or ${VAR:?message}; a ${VAR:-default} would be a hard-coded secret.
                assert REQUIRED_FROM_HOST.fullmatch(str(value)), f"{name}.{key} = {value!r}"
    database_url = _environment(_services()["web"])["DATABASE_URL"]
    password = re.match(r"postgresql\+psycopg://[^:]+:(.*)@", database_url)
    assert password and REQUIRED_FROM_HOST.fullmatch(password.group(1)), database_url
    assert REQUIRED_FROM_HOST.fullmatch(_environment(_services()["postgres"])["POSTGRES_PASSWORD"])


def _compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or Debian's standalone `docker-compose`; None when neither."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_config_validates_where_compose_exists(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "example",
        "SECRET_KEY": "example",
        "MEMBER_CODE_KEY": "example",
        "OPS_USERNAME": "ops",
        "OPS_PASSWORD": "example",
    }
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


# --- Procfile -----------------------------------------------------------------------------------


def _procfile() -> dict[str, str]:
    lines: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line)
        assert match, f"not a Procfile line: {line!r}"
        lines[match.group(1)] = match.group(2)
    return lines


def _expand(command: str, **env: str) -> list[str]:
    """The argv a process manager runs: the line expanded by sh, as honcho and foreman do."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    result = subprocess.run(
        ["sh", "-c", f'set -- {command}; printf "%s\\0" "$@"'],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\0")[:-1]


def _celery_params(argv: list[str], celery_app: Any) -> dict[str, Any]:
    """Celery's own command line parses `celery -A ... SUB args`; a wrong flag raises UsageError."""
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    assert argv[:3] == ["celery", "-A", "tasks.celery_app"]
    sub, rest = argv[3], argv[4:]
    parent = click.Context(celery_cli, info_name="celery", obj=CLIContext(celery_app, True, None, True))
    command = celery_cli.get_command(parent, sub)
    assert command is not None, sub
    params: dict[str, Any] = command.make_context(sub, rest, parent=parent).params
    return params


@pytest.fixture(scope="module")
def celery_app() -> Any:
    from tasks.factory import create_celery_app

    return create_celery_app(_dev_settings())


def test_procfile_has_every_process_type() -> None:
    assert set(_procfile()) >= PROCESS_TYPES


def test_procfile_lines_take_configuration_only_from_the_environment() -> None:
    for name, command in _procfile().items():
        for literal in ("://", "127.0.0.1", "localhost", "--broker", "password", "secret"):
            assert literal not in command.lower(), f"{name} hard-codes {literal!r}"
    web = _expand(_procfile()["web"], PORT="9123", WEB_CONCURRENCY="3", GUNICORN_THREADS="7")
    assert web[web.index("--bind") + 1] == "0.0.0.0:9123"
    assert web[web.index("--workers") + 1] == "3"
    assert web[web.index("--threads") + 1] == "7"
    worker = _expand(_procfile()["worker"], CELERY_WORKER_CONCURRENCY="33")
    assert worker[worker.index("--concurrency") + 1] == "33"
    beat = _expand(_procfile()["beat"], CELERY_BEAT_SCHEDULE="/srv/beat-schedule")
    assert beat[beat.index("--schedule") + 1] == "/srv/beat-schedule"


def test_procfile_worker_consumes_every_queue_with_events_and_a_thread_pool(celery_app: Any) -> None:
    argv = _expand(_procfile()["worker"])
    params = _celery_params(argv, celery_app)
    assert set(params["queues"]) == QUEUES
    routed = {route["queue"] for route in celery_config(_dev_settings())["task_routes"].values()}
    assert routed <= set(params["queues"]), "a routed queue nobody consumes would strand its tasks"
    assert params["task_events"] is True
    assert params["pool"].__module__ == "celery.concurrency.thread"
    assert params["concurrency"] >= 4


def test_procfile_beat_keeps_its_schedule_in_a_writable_place(celery_app: Any) -> None:
    params = _celery_params(_expand(_procfile()["beat"]), celery_app)
    schedule = Path(params["schedule"])
    assert schedule.is_absolute()
    assert os.access(schedule.parent, os.W_OK)


def test_procfile_flower_and_release_lines() -> None:
    assert _expand(_procfile()["flower"]) == ["python", "-m", "cli.flower"]
    assert _expand(_procfile()["release"]) == ["membersync", "db", "upgrade"]


def test_procfile_modules_import(tmp_path: Path) -> None:
    # In a fresh interpreter, because each of them builds its app from the environment at import.
    env = {**os.environ, "MEMBERSYNC_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    code = (
        "import app.wsgi, tasks.celery_app, cli.flower; "
        "assert callable(app.wsgi.application); assert callable(cli.flower.main); "
        "assert tasks.celery_app.app.main == 'membersync'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile, .dockerignore, .ci/run ---------------------------------------------------------


def test_dockerfile_runs_the_installed_package_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    assert re.search(r"pip install \.(\s|$)", text), "the package itself, without extras"
    assert "[dev]" not in text and "[test]" not in text
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert "EXPOSE 8000" in instructions
    assert any(line.startswith("HEALTHCHECK ") for line in instructions)
    assert "/healthz" in text


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var", ".env"} <= ignored


def test_ci_run_is_executable_strict_bash_that_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert re.search(r"^exec make test$", text, re.MULTILINE)
    assert 'export TEST_DATABASE_URL="postgresql+psycopg://postgres@' in text
    assert "export TEST_REDIS_URL=" in text
    # The suite picks its own Redis database; a REDIS_URL from CI would override that choice.
    assert not re.search(r"export REDIS_URL\b", text)
    subprocess.run(["bash", "-n", str(script)], check=True)


# --- cli.flower ---------------------------------------------------------------------------------


def test_flower_argv_in_dev_mode_uses_the_dev_login_and_persists_under_var() -> None:
    argv = flower_argv(_dev_settings(), environ={})
    assert argv[0] == "flower"
    assert "--port=5555" in argv
    assert "--basic_auth=ops:ops" in argv
    assert "--persistent=True" in argv
    assert f"--db={Path('var') / 'flower.db'}" in argv
    assert f"--max_tasks={DEFAULT_MAX_TASKS}" in argv
    assert DEFAULT_MAX_TASKS < 100_000, "below Flower's own default, which is unbounded in practice"
    assert "--address=127.0.0.1" in argv, "the dev login stays on loopback"
    assert "--address=127.0.0.1" not in flower_argv(_dev_settings(), environ={"FLOWER_ADDRESS": "0.0.0.0"})


def test_flower_argv_takes_port_db_credentials_and_bound_from_the_environment() -> None:
    settings = Settings.from_env(
        environ={
            "DATABASE_URL": "sqlite://",
            "OPS_USERNAME": "watcher",
            "OPS_PASSWORD": "s3cr:et-Vq8#zK2w",
            "FLOWER_PORT": "6001",
        }
    )
    argv = flower_argv(settings, environ={"FLOWER_DB": "/data/flower.db", "FLOWER_MAX_TASKS": "500"})
    assert "--port=6001" in argv
    assert "--basic_auth=watcher:s3cr:et-Vq8#zK2w" in argv
    assert "--db=/data/flower.db" in argv
    assert "--max_tasks=500" in argv
    assert not any(arg.startswith("--address") for arg in argv), "production binds every interface"


def test_flower_refuses_to_start_without_credentials_outside_dev_mode() -> None:
    settings = Settings.from_env(environ={"DATABASE_URL": "sqlite://"})
    with pytest.raises(ConfigError, match="OPS_USERNAME"):
        flower_argv(settings, environ={})


def test_flower_refuses_a_comma_that_would_split_the_credential() -> None:
    settings = _dev_settings(OPS_USERNAME="ops", OPS_PASSWORD="pa,ss")
    with pytest.raises(ConfigError, match="must not contain ','") as raised:
        flower_argv(settings, environ={})
    assert "pa,ss" not in str(raised.value), "the message never shows the password"


@pytest.mark.parametrize("bound", ["0", "-1", "many"])
def test_flower_refuses_an_invalid_task_bound(bound: str) -> None:
    with pytest.raises(ConfigError, match="FLOWER_MAX_TASKS"):
        flower_argv(_dev_settings(), environ={"FLOWER_MAX_TASKS": bound})
