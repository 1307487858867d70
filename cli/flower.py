"""`python -m cli.flower`: Flower for our Celery app, behind basic auth, with persistent state.

Flower reads every `FLOWER_*` variable that names one of its own options (FLOWER_URL_PREFIX, say);
the options below are passed on its command line, which wins over those, so auth cannot be
switched off from the environment. It listens on 127.0.0.1 unless FLOWER_ADDRESS names another
address (docker-compose.yml: its container's interfaces, reached only through the proxy). The
basic-auth check itself is ours (`guard_flower_login`): throttled like every other check of the
ops login, and never a 500 on odd credentials.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.credentials import FailureThrottle, basic_credentials, credentials_match
from config.settings import ConfigError, Settings, load_settings

DEFAULT_DB = Path("var") / "flower.db"
DEFAULT_ADDRESS = "127.0.0.1"
# Flower keeps every task it has seen in memory (its default is 100 000); a registration makes four
# tasks, so this holds the last few thousand registrations in a bounded amount of memory.
DEFAULT_MAX_TASKS = 20_000
# Persistent mode otherwise writes its state only on a clean shutdown; a killed container would
# lose the task history since it started.
STATE_SAVE_INTERVAL_MS = 60_000


def flower_argv(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The `celery` arguments that start Flower for `settings` (for `Celery.start`, in-process).

    The list carries the ops password: hand it to `Celery.start` in this process, never to a child
    process's command line, where any local user could read it from /proc.
    """
    env = os.environ if environ is None else environ
    username, password = settings.ops_credentials()
    if "," in username or "," in password:
        # Flower's --basic_auth takes several comma-separated user:password pairs, so a comma
        # would silently split one credential into two that never match.
        raise ConfigError("OPS_USERNAME and OPS_PASSWORD must not contain ',' (Flower splits on it)")
    try:
        max_tasks = int(env.get("FLOWER_MAX_TASKS") or DEFAULT_MAX_TASKS)
    except ValueError:
        raise ConfigError("FLOWER_MAX_TASKS is invalid: expected a positive integer") from None
    if max_tasks <= 0:
        raise ConfigError("FLOWER_MAX_TASKS is invalid: expected a positive integer")
    argv = [
        "flower",
        f"--port={settings.flower_port}",
        f"--basic_auth={username}:{password}",
        "--persistent=True",
        f"--db={flower_db(env)}",
        f"--max_tasks={max_tasks}",
        f"--state_save_interval={STATE_SAVE_INTERVAL_MS}",
    ]
    # Loopback unless the deployment says where: Flower's login is basic auth, in clear over plain
    # HTTP, so it is reached through a TLS proxy (or an SSH tunnel), never straight off the network.
    argv.append(f"--address={env.get('FLOWER_ADDRESS') or DEFAULT_ADDRESS}")
    return argv


def flower_db(environ: Mapping[str, str] | None = None) -> Path:
    """Where Flower keeps its state between restarts: FLOWER_DB, else ./var/flower.db."""
    env = os.environ if environ is None else environ
    return Path(env.get("FLOWER_DB") or DEFAULT_DB)


def guard_flower_metrics() -> None:
    """Put Flower's own `/metrics` behind its basic auth like every other page.

    Flower serves `/metrics` without authentication (only `/healthcheck` needs to be open: it is
    the container's liveness probe); its series name our task names, workers and queues.
    """
    from flower.views import monitor
    from tornado import web

    get = monitor.Metrics.get
    if not getattr(get, "membersync_guarded", False):
        guarded = web.authenticated(get)
        guarded.membersync_guarded = True  # type: ignore[attr-defined]
        monitor.Metrics.get = guarded


def guard_flower_login(settings: Settings) -> None:
    """Check Flower's basic auth our way: the ops login, throttled per client address and per
    username through the Redis the web service uses (so failures add up across the console,
    `/metrics` and Flower), 429 with Retry-After once over the limit, and 401 for anything
    malformed. Flower's own check compares text with `hmac.compare_digest`, which raises on
    non-ASCII credentials (a 500), and counts nothing.
    """
    from flower.views import BaseHandler
    from tornado import web

    from config.operators import RememberedOperators, load_operators

    expected_username, expected_password = settings.ops_credentials()
    throttle = FailureThrottle.from_settings(settings)
    # The console's named operators sign in here too, so a re-run from Flower is audited by name.
    operators = RememberedOperators(load_operators(settings))

    def get_current_user(handler: Any) -> bool:
        given = basic_credentials(handler.request.headers.get("Authorization"))
        if given is None:
            raise web.HTTPError(401)  # none given (a browser's first request): ask, count nothing

        # The shared login first: its right pair never pays for a named operator's scrypt check.
        def matches() -> bool:  # asked only when the client and the username are not blocked
            return credentials_match(*given, expected_username, expected_password) or operators.matches(
                *given
            )

        verdict = throttle.check(handler.request.remote_ip, given[0], matches)
        if verdict.retry_after is not None:
            handler.set_status(429)
            handler.set_header("Retry-After", str(verdict.retry_after))
            # Finish, not HTTPError: Flower's error page would drop the Retry-After header.
            raise web.Finish("too many failed attempts\n")
        if not verdict.allowed:
            raise web.HTTPError(401)
        return True

    BaseHandler.get_current_user = get_current_user


def install_rerun_button(settings: Settings) -> bool:
    """Add the re-run button to failed steps' pages (`cli.flower_rerun`), its links pointing at the
    ops console on PUBLIC_URL (the web app's port on this machine in dev mode)."""
    from cli.flower_rerun import install

    try:
        console = settings.public_base_url
    except ConfigError:
        console = ""  # links relative to Flower's own host: right behind a proxy serving both
    return install(console)


def main() -> None:
    """Start Flower on the Celery app built from the environment; exits with its status."""
    from tasks.factory import create_celery_app

    try:
        settings = load_settings()
        argv = flower_argv(settings)
    except ConfigError as error:
        # The message names the variable; a traceback would only bury it.
        sys.exit(f"membersync flower: {error}")
    # The shelve file is created by Flower, its folder is not.
    flower_db().parent.mkdir(parents=True, exist_ok=True)
    guard_flower_login(settings)
    guard_flower_metrics()
    install_rerun_button(settings)
    celery = create_celery_app(settings)
    sys.exit(celery.start(argv) or 0)


if __name__ == "__main__":
    main()
