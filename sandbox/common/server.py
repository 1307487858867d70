"""Serve a Flask app from a background thread, so tests and the runner run emulators in-process."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

# Where an app keeps callables that must run before its server stops (e.g. releasing requests that a
# timeout-after-commit fault is holding open); see sandbox.common.faults.
STOP_HOOKS_KEY = "sandbox.stop_hooks"


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log (a load test would drown the console),
    speaking HTTP/1.1 with keep-alive as the real vendors do: under HTTP/1.0 every call paid a TCP
    handshake (and the client a name lookup) that no vendor charges, in every test and benchmark.

    Each open connection is noted on the server, so that stopping it closes them too: a client's
    pooled connection must not keep reaching an emulator that has been stopped (an outage)."""

    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: without TCP_NODELAY the body of a kept-alive
    # connection waits for the client's delayed ACK of the headers.
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        """Answer one request and keep the connection for the next.

        Werkzeug's own handler closes every connection (and then waits up to 10 ms for leftover
        input); here the answer is buffered (emulator answers are small) and always carries its
        Content-Length, and the request body the app left unread is drained, so the next request
        line is where the client put it. A chunked request body gets Werkzeug's handling (and a
        closed connection)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        body = LimitedStream(self.rfile, length)  # type: ignore[arg-type]
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = body
        environ["wsgi.input_terminated"] = True
        answer: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is not None and answer:
                raise exc_info[1].with_traceback(exc_info[2])
            answer[:] = [status, headers]
            return chunks.append

        try:
            iterable = self.server.app(environ, start_response)
            try:
                chunks.extend(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            # As Werkzeug would: the error is logged and the client gets a 500 on a closed connection.
            self.close_connection = True
            self.log_error("error on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            self.send_error(500)
            return
        status, headers = answer
        code = int(status.split(" ", 1)[0])
        data = b"".join(chunks)
        try:
            self.send_response(code, status.partition(" ")[2])
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if not (100 <= code < 200 or code in (204, 304)):
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and environ["REQUEST_METHOD"] != "HEAD":
                self.wfile.write(data)
            body.exhaust()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def setup(self) -> None:
        super().setup()
        with _connections_lock:
            _open_connections(self.server).add(self.connection)

    def finish(self) -> None:
        with _connections_lock:
            _open_connections(self.server).discard(self.connection)
        super().finish()

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


_connections_lock = threading.Lock()


def _open_connections(server: Any) -> set[socket.socket]:
    found: set[socket.socket] | None = getattr(server, "sandbox_connections", None)
    if found is None:
        found = server.sandbox_connections = set()
    return found


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
        # Idle keep-alive connections (and any still answering) end with the server.
        with _connections_lock:
            connections = list(_open_connections(self._server))
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)
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
