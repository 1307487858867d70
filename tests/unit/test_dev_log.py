"""`membersync dev`'s terminal: every child line in the log file, only the problems on screen."""

from __future__ import annotations

import io
import os

from cli.devserver import LogRelay, ProblemLines
from config.settings import DEVELOPMENT_WARNING


def test_the_terminal_shows_warnings_errors_and_whole_tracebacks_only() -> None:
    show = ProblemLines()
    lines = [
        (
            "worker",
            "[2026-12-06 18:46:58,120: INFO/MainProcess] Connected to redis://127.0.0.1:6379/0",
            False,
        ),
        ("worker", " -------------- celery@vm v5.7.0 (collider)", False),
        ("web", "[2026-12-06 18:46:55 +0000] [31765] [INFO] Listening at: http://127.0.0.1:8000", False),
        ("web", "[2026-12-06 18:47:01 +0000] [31765] [ERROR] Exception in worker process", True),
        ("worker", "18:47:13 WARNING tasks.steps: smaregi throttled, waiting 2 s", True),
        ("flower", "[W 261206 18:47:00 inspector:98] Inspect method stats failed", False),
        ("flower", "[E 261206 18:47:00 web:1] Uncaught exception GET /", True),
        ("beat", DEVELOPMENT_WARNING, False),
        ("web", "Traceback (most recent call last):", True),
        ("worker", "18:47:14 INFO    celery.app.trace: Task succeeded", False),  # another child's
        ("web", '  File "app/views.py", line 3, in index', True),
        ("web", "    raise ValueError('x')", True),
        ("web", "ValueError: x", True),
        ("web", '127.0.0.1 "GET /healthz" 200 1ms', False),
    ]
    assert [show(name, line) for name, line, _ in lines] == [shown for _, _, shown in lines]


def test_every_line_goes_to_the_log_and_a_watched_line_is_noticed() -> None:
    read, write = os.pipe()
    out, log = io.StringIO(), io.StringIO()
    relay = LogRelay(out, width=7, log=log, show=ProblemLines())
    ready = relay.watch("worker", " ready.")
    with os.fdopen(write, "wb") as child:
        child.write(b"18:00:00 INFO    celery.apps.worker: celery@vm ready.\n18:00:01 ERROR   x: boom\n")
    relay.follow("worker", os.fdopen(read, "rb"))
    relay.say("Membersync is ready (3 s).")
    relay.close()
    assert ready.is_set()
    assert "worker  | 18:00:00 INFO    celery.apps.worker: celery@vm ready." in log.getvalue()
    assert "celery@vm ready" not in out.getvalue()
    assert "worker  | 18:00:01 ERROR   x: boom" in out.getvalue()
    assert "Membersync is ready (3 s)." in out.getvalue()
