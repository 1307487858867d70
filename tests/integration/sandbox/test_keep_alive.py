"""The emulators keep connections alive as real vendors do, and a stopped emulator ends them."""

from __future__ import annotations

import pytest
import requests
from flask import Flask, jsonify, request

from sandbox.common import ThreadedServer


def _app() -> Flask:
    app = Flask("keep-alive")

    @app.post("/echo")
    def echo() -> tuple[object, int]:
        return jsonify(port=request.environ["REMOTE_PORT"], body=request.get_json()), 200

    @app.post("/ignore")
    def ignore() -> tuple[object, int]:
        # Leaves the request body unread: the server must drain it before the next request line.
        return jsonify(port=request.environ["REMOTE_PORT"]), 201

    return app


def test_one_connection_serves_many_calls_and_stop_ends_it() -> None:
    server = ThreadedServer(_app()).start()
    url = server.url
    session = requests.Session()
    ports = set()
    for number in range(10):
        answer = session.post(f"{url}/echo", json={"n": number}, timeout=5)
        assert answer.json()["body"] == {"n": number}
        assert answer.headers["Content-Length"] == str(len(answer.content))
        ports.add(answer.json()["port"])
        ignored = session.post(f"{url}/ignore", data=b"x" * 5000, timeout=5)
        assert ignored.status_code == 201
        ports.add(ignored.json()["port"])
    assert len(ports) == 1
    server.stop()
    with pytest.raises(requests.ConnectionError):
        session.post(f"{url}/echo", json={}, timeout=5)
