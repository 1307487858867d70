"""Fixtures for the sandbox tests: emulators served in-process on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from sandbox.common import ThreadedServer

Serve = Callable[[Flask], ThreadedServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start apps on free ports for one test; every server is stopped afterwards."""
    servers: list[ThreadedServer] = []

    def start(app: Flask) -> ThreadedServer:
        server = ThreadedServer(app, port=0).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
