"""Start every emulator and the mail catcher in-process: `start_sandbox()`, or `main()` to run until a signal.

Ports default to the README's sandbox table and are overridden by SANDBOX_SHOPIFY_PORT, SANDBOX_SMAREGI_PORT,
SANDBOX_HUBSPOT_PORT, SANDBOX_SMTP_PORT and SANDBOX_MAIL_HTTP_PORT (or by `ports=`). Rate limits come
from SANDBOX_SHOPIFY_BUCKET, SANDBOX_SHOPIFY_RESTORE_RATE, SANDBOX_SMAREGI_RATE_PER_SECOND,
SANDBOX_SMAREGI_TOKEN_EXPIRES_IN, SANDBOX_HUBSPOT_RATE_PER_10S and SANDBOX_HUBSPOT_SEARCH_PER_SECOND.
SANDBOX_SMAREGI_WEBHOOK_URL is where the Smaregi emulator posts its webhooks (sandbox.smaregi.webhooks).

With SANDBOX_STATE_DIR set (`membersync dev` sets it to var/sandbox), the emulators' records are loaded
from that folder at start and saved there shortly after every change and on stop, so the sandbox keeps
its customers, members and contacts across restarts as the database keeps its registrations (and ids
never restart under records that point at them). Unset, everything is in memory and starts empty.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask

from sandbox import hubspot, smaregi
from sandbox.common import StoreFiles, ThreadedServer
from sandbox.mailcatcher import MailCatcher

DEFAULT_PORTS = {"shopify": 8011, "smaregi": 8012, "hubspot": 8013, "smtp": 8025, "mail": 8026}
PORT_VARIABLES = {
    "shopify": "SANDBOX_SHOPIFY_PORT",
    "smaregi": "SANDBOX_SMAREGI_PORT",
    "hubspot": "SANDBOX_HUBSPOT_PORT",
    "smtp": "SANDBOX_SMTP_PORT",
    "mail": "SANDBOX_MAIL_HTTP_PORT",
}
CREDENTIALS = {
    "shopify": "shop sandbox.myshopify.com, API version 2026-10, X-Shopify-Access-Token: shpat_sandbox",
    "smaregi": "contract sandbox, client sandbox-client / sandbox-secret (token: POST /app/sandbox/token)",
    "hubspot": "Authorization: Bearer pat-sandbox",
    "smtp": "no authentication",
    "mail": "GET /api/messages",
}
STATE_DIR_VARIABLE = "SANDBOX_STATE_DIR"


@dataclass
class Sandbox:
    """The running emulators: `.urls` by name (shopify, smaregi, hubspot, smtp, mail) and `.stop()`."""

    servers: dict[str, ThreadedServer] = field(default_factory=dict)
    mail: MailCatcher | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    # Set when the records persist (SANDBOX_STATE_DIR): saved once more after the servers stop.
    store_files: StoreFiles | None = None

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of every running emulator; the SMTP catcher as smtp://host:port."""
        urls = {name: server.url for name, server in self.servers.items()}
        if self.mail is not None:
            urls["smtp"] = f"smtp://{self.mail.host}:{self.mail.smtp_port}"
            urls["mail"] = self.mail.url
        return urls

    def connector_env(self) -> dict[str, str]:
        """The environment variables that point Membersync's connectors at these emulators.

        Only names and URLs: the sandbox still imports nothing of the project it stands in for.
        """
        urls = self.urls
        env = {
            "SHOPIFY_ADMIN_URL": urls.get("shopify", ""),
            "SMAREGI_API_URL": urls.get("smaregi", ""),
            "SMAREGI_ID_URL": urls.get("smaregi", ""),
            "HUBSPOT_API_URL": urls.get("hubspot", ""),
        }
        if self.mail is not None:
            env.update({"SMTP_HOST": self.mail.host, "SMTP_PORT": str(self.mail.smtp_port)})
        return {name: value for name, value in env.items() if value}

    def stop(self) -> None:
        """Stop every server; no port stays open."""
        for server in self.servers.values():
            server.stop()
        if self.mail is not None:
            self.mail.stop()
        if self.store_files is not None:
            self.store_files.close()  # after the servers: no request can change a store any more


def _setting(env: Mapping[str, str], name: str, convert: Callable[[str], Any], default: Any) -> Any:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        return convert(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a valid {convert.__name__}") from None


def _shopify_app(env: Mapping[str, str]) -> Flask:
    # Imported lazily: the Shopify emulator is a separate package that may be absent in a partial tree.
    shopify = importlib.import_module("sandbox.shopify")
    return shopify.create_app(
        bucket_size=_setting(env, "SANDBOX_SHOPIFY_BUCKET", float, 2000.0),
        restore_rate=_setting(env, "SANDBOX_SHOPIFY_RESTORE_RATE", float, 100.0),
        webhooks=shopify_webhooks(env),
    )


def shopify_webhooks(env: Mapping[str, str]) -> Any:
    """The shop's webhook sender when SANDBOX_SHOPIFY_WEBHOOK_URL is set (signed with
    SHOPIFY_WEBHOOK_SECRET, the secret the app verifies with), else None.

    SANDBOX_SHOPIFY_WEBHOOK_DUPLICATE_RATE (default 0.02) is how often a delivery is sent twice;
    SANDBOX_SHOPIFY_WEBHOOK_RETRY_SECONDS (comma-separated) the waits before each retry.
    """
    url = env.get("SANDBOX_SHOPIFY_WEBHOOK_URL")
    if not url:
        return None
    secret = env.get("SHOPIFY_WEBHOOK_SECRET") or ""
    if not secret:
        raise ValueError("SANDBOX_SHOPIFY_WEBHOOK_URL needs SHOPIFY_WEBHOOK_SECRET (deliveries are signed)")
    webhooks = importlib.import_module("sandbox.shopify.webhooks")
    retries = env.get("SANDBOX_SHOPIFY_WEBHOOK_RETRY_SECONDS")
    retry_seconds = [float(s) for s in retries.split(",")] if retries else webhooks.DEFAULT_RETRY_SECONDS
    return webhooks.WebhookSender(
        url,
        secret,
        duplicate_rate=_setting(
            env, "SANDBOX_SHOPIFY_WEBHOOK_DUPLICATE_RATE", float, webhooks.DEFAULT_DUPLICATE_RATE
        ),
        retry_seconds=retry_seconds,
    )


def _smaregi_app(env: Mapping[str, str]) -> Flask:
    return smaregi.create_app(
        smaregi.SmaregiSettings(
            # Reads and writes are budgeted apart (10/s and 4/s by default); the old single
            # SANDBOX_SMAREGI_RATE_PER_SECOND sizes both when the per-kind variables are unset.
            rate_per_second=_setting(env, "SANDBOX_SMAREGI_RATE_PER_SECOND", int, None),
            read_per_second=_setting(env, "SANDBOX_SMAREGI_READ_RATE_PER_SECOND", int, None),
            write_per_second=_setting(env, "SANDBOX_SMAREGI_WRITE_RATE_PER_SECOND", int, None),
            token_expires_in=_setting(env, "SANDBOX_SMAREGI_TOKEN_EXPIRES_IN", int, 3600),
            # Where its webhooks go (`membersync dev`: the dev web's /webhooks/smaregi/<token>).
            webhook_url=env.get("SANDBOX_SMAREGI_WEBHOOK_URL") or None,
        )
    )


def _hubspot_app(env: Mapping[str, str]) -> Flask:
    return hubspot.create_app(
        hubspot.HubSpotSettings(
            requests_per_window=_setting(env, "SANDBOX_HUBSPOT_RATE_PER_10S", int, 100),
            search_per_second=_setting(env, "SANDBOX_HUBSPOT_SEARCH_PER_SECOND", int, 4),
        )
    )


def resolve_ports(ports: Mapping[str, int] | None, env: Mapping[str, str]) -> dict[str, int]:
    """Ports by name: explicit `ports` first, then SANDBOX_*_PORT, then the documented defaults."""
    resolved = {name: _setting(env, PORT_VARIABLES[name], int, port) for name, port in DEFAULT_PORTS.items()}
    return {**resolved, **(ports or {})}


def start_sandbox(
    host: str = "127.0.0.1", ports: Mapping[str, int] | None = None, env: Mapping[str, str] | None = None
) -> Sandbox:
    """Start Shopify, Smaregi, HubSpot and the mail catcher on `host`; port 0 picks a free port."""
    env = os.environ if env is None else env
    chosen = resolve_ports(ports, env)
    sandbox = Sandbox()
    state_dir = env.get(STATE_DIR_VARIABLE)
    if state_dir:
        sandbox.store_files = StoreFiles(Path(state_dir))
    factories: dict[str, Callable[[Mapping[str, str]], Flask]] = {
        "shopify": _shopify_app,
        "smaregi": _smaregi_app,
        "hubspot": _hubspot_app,
    }
    try:
        for name, factory in factories.items():
            try:
                with _persisted(sandbox, name):
                    app = factory(env)
            except ImportError as exc:
                sandbox.skipped[name] = f"emulator not available ({exc})"
                continue
            sandbox.servers[name] = ThreadedServer(app, host, chosen[name], name=name).start()
        sandbox.mail = MailCatcher(host, chosen["smtp"], chosen["mail"]).start()
        if sandbox.store_files is not None:
            sandbox.store_files.start()
    except BaseException:
        sandbox.stop()  # a port in use must not leave the others listening
        raise
    return sandbox


def _persisted(sandbox: Sandbox, name: str) -> contextlib.AbstractContextManager[None]:
    """While an emulator is built: its record stores load from and save to `<name>.json`, if persisting."""
    if sandbox.store_files is None:
        return contextlib.nullcontext()
    return sandbox.store_files.scope(name)


def describe(sandbox: Sandbox) -> str:
    """The lines `main()` prints: every URL with its sandbox credentials, then anything skipped."""
    lines = [f"{name:8} {url:32} {CREDENTIALS[name]}" for name, url in sandbox.urls.items()]
    if "shopify" in sandbox.urls:
        lines.append(f"{'':8} Shopify GraphQL: {sandbox.urls['shopify']}/admin/api/2026-10/graphql.json")
    lines += [f"{name:8} skipped: {reason}" for name, reason in sandbox.skipped.items()]
    if sandbox.store_files is not None:
        lines.append(f"{'':8} records persist in {sandbox.store_files.directory} ({STATE_DIR_VARIABLE})")
    return "\n".join(lines)


def run_forever(sandbox: Sandbox) -> None:
    """Block until SIGINT or SIGTERM, then stop every server (call from the main thread)."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """`membersync sandbox` / `python -m sandbox`: start everything, print the URLs, run until stopped."""
    try:
        sandbox = start_sandbox()
    except (OSError, ValueError) as exc:
        print(f"sandbox: cannot start: {exc}", file=sys.stderr)
        return 1
    print("Membersync sandbox running (Ctrl-C to stop):", flush=True)
    print(describe(sandbox), flush=True)
    run_forever(sandbox)
    print("sandbox stopped", flush=True)
    return 0
