"""The web app served over real HTTP for the fuzzers, on the suite's database and Redis broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from config.settings import Settings
from registrations.database import Database


@pytest.fixture
def live_url(make_settings: Callable[..., Settings], database: Database, clean_redis: str) -> Iterator[str]:
    """The intake as production runs it (publishing to a real Redis broker), on a free port.

    The intake's rate limit stays off (the suite's default) so the fuzzer explores the API rather
    than the 429 answer; that answer has its own test in test_openapi_document.py.
    """
    from app import create_app

    settings = make_settings(CELERY_BROKER_URL=clean_redis, REDIS_URL=clean_redis)
    app: Any = create_app(settings, database=database)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fuzz-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
