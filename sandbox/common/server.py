"""Serve a Flask app from a background thread, so tests and the runner run emulators in-process."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

# Where an app keeps callables that must run before its server stops (e.g. releasing requests that a
# timeout-after-commit fault is holding open); see sandbox.common.faults.
STOP_HOOKS_KEY = "sandbox.stop_hooks"


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log: a load test would drown the console."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class ThreadedServer:
    """Serve one WSGI app on host:port from a daemon thread; port 0 picks a free port."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, name: str | None = None) -> None:
        self.app = app
        self.name = name or app.name
        self._requested = (host, port)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The host the server listens on."""
        return self._requested[0]

    @property
    def port(self) -> int:
        """The port actually bound (known once started)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} server is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:8012."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        """Bind the socket and start serving; returns self so `ThreadedServer(app).start()` chains."""
        if self._server is not None:
            return self
        host, port = self._requested
        # threaded=True: one thread per request, daemonic, so a request hung by a fault never blocks exit.
        try:
            self._server = make_server(
                host, port, self.app, threaded=True, request_handler=_QuietRequestHandler
            )
        except SystemExit:
            # Werkzeug exits the process when the port is taken; a caller must be able to recover.
            raise OSError(f"sandbox {self.name}: cannot listen on {host}:{port} (in use?)") from None
        self._thread = threading.Thread(target=self._serve, name=f"sandbox-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._server is not None
        # A short poll interval keeps stop() quick; shutdown() waits for the loop's next poll.
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Release held requests, stop serving and close the listening socket."""
        if self._server is None:
            return
        for hook in self.app.extensions.get(STOP_HOOKS_KEY, []):
            hook()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_stop_hook(app: Flask, hook: Any) -> None:
    """Register a callable that ThreadedServer.stop() runs before shutting the server down."""
    app.extensions.setdefault(STOP_HOOKS_KEY, []).append(hook)
