"""Start every emulator and the mail catcher in-process: `start_sandbox()`, or `main()` to run until a signal.

Ports default to the README's sandbox table and are overridden by SANDBOX_SHOPIFY_PORT, SANDBOX_SMAREGI_PORT,
SANDBOX_HUBSPOT_PORT, SANDBOX_SMTP_PORT and SANDBOX_MAIL_HTTP_PORT (or by `ports=`). Rate limits come
from SANDBOX_SHOPIFY_BUCKET, SANDBOX_SHOPIFY_RESTORE_RATE, SANDBOX_SMAREGI_RATE_PER_SECOND,
SANDBOX_SMAREGI_TOKEN_EXPIRES_IN, SANDBOX_HUBSPOT_RATE_PER_10S and SANDBOX_HUBSPOT_SEARCH_PER_SECOND.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from flask import Flask

from sandbox import hubspot, smaregi
from sandbox.common import ThreadedServer
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
    "shopify": "shop sandbox.myshopify.com, API version 2025-01, X-Shopify-Access-Token: shpat_sandbox",
    "smaregi": "contract sandbox, client sandbox-client / sandbox-secret (token: POST /app/sandbox/token)",
    "hubspot": "Authorization: Bearer pat-sandbox",
    "smtp": "no authentication",
    "mail": "GET /api/messages",
}


@dataclass
class Sandbox:
    """The running emulators: `.urls` by name (shopify, smaregi, hubspot, smtp, mail) and `.stop()`."""

    servers: dict[str, ThreadedServer] = field(default_factory=dict)
    mail: MailCatcher | None = None
    skipped: dict[str, str] = field(default_factory=dict)

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
    )


def _smaregi_app(env: Mapping[str, str]) -> Flask:
    return smaregi.create_app(
        smaregi.SmaregiSettings(
            rate_per_second=_setting(env, "SANDBOX_SMAREGI_RATE_PER_SECOND", int, 10),
            token_expires_in=_setting(env, "SANDBOX_SMAREGI_TOKEN_EXPIRES_IN", int, 3600),
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
    factories: dict[str, Callable[[Mapping[str, str]], Flask]] = {
        "shopify": _shopify_app,
        "smaregi": _smaregi_app,
        "hubspot": _hubspot_app,
    }
    try:
        for name, factory in factories.items():
            try:
                app = factory(env)
            except ImportError as exc:
                sandbox.skipped[name] = f"emulator not available ({exc})"
                continue
            sandbox.servers[name] = ThreadedServer(app, host, chosen[name], name=name).start()
        sandbox.mail = MailCatcher(host, chosen["smtp"], chosen["mail"]).start()
    except BaseException:
        sandbox.stop()  # a port in use must not leave the others listening
        raise
    return sandbox


def describe(sandbox: Sandbox) -> str:
    """The lines `main()` prints: every URL with its sandbox credentials, then anything skipped."""
    lines = [f"{name:8} {url:32} {CREDENTIALS[name]}" for name, url in sandbox.urls.items()]
    if "shopify" in sandbox.urls:
        lines.append(f"{'':8} Shopify GraphQL: {sandbox.urls['shopify']}/admin/api/2025-01/graphql.json")
    lines += [f"{name:8} skipped: {reason}" for name, reason in sandbox.skipped.items()]
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
