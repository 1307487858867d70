"""`python -m benchmarks.counting_worker -A tasks.celery_app worker ...`: a celery worker that counts
what it does, for `bench pipeline --profile`.

Counted in this process, by wrapping the libraries' own entry points (the project's code is not
touched): SQL statements (SQLAlchemy `before_cursor_execute` on every engine), transactions
(`begin`), Redis round trips (each `send_packed_command` of redis-py: one per command, one per
pipeline; the broker's own traffic included), HTTP requests and new HTTP connections (urllib3:
`urlopen`, `connect`), SMTP connections. Every half second the totals are written as JSON to the path
in MEMBERSYNC_BENCH_COUNTS, so the bench can take the difference over the part of the run it
measures (the worker's start-up and idle time left out).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

COUNTS_ENV = "MEMBERSYNC_BENCH_COUNTS"
_counts: Counter[str] = Counter()
_lock = threading.Lock()


def bump(name: str) -> None:
    with _lock:
        _counts[name] += 1


def install() -> None:
    """Wrap the counted entry points (class-level, so every engine, client and pool is counted)."""
    import smtplib

    import redis.connection
    import urllib3.connection
    import urllib3.connectionpool
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", lambda *args, **kwargs: bump("sql_statements"))
    event.listen(Engine, "begin", lambda connection: bump("sql_transactions"))

    def counted(cls: Any, method: str, name: str) -> None:
        original = getattr(cls, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bump(name)
            return original(*args, **kwargs)

        setattr(cls, method, wrapper)

    redis_connection = getattr(redis.connection, "AbstractConnection", redis.connection.Connection)
    counted(redis_connection, "send_packed_command", "redis_round_trips")
    counted(urllib3.connectionpool.HTTPConnectionPool, "urlopen", "http_requests")
    counted(urllib3.connection.HTTPConnection, "connect", "http_connections")
    counted(smtplib.SMTP, "connect", "smtp_connections")


def _writer(path: Path) -> None:
    while True:
        with _lock:
            text = json.dumps(dict(_counts))
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)
        time.sleep(0.5)


def read_counts(path: Path) -> Counter[str]:
    """The totals a counting worker last wrote to `path` (empty before its first write)."""
    try:
        return Counter(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Counter()


def main() -> None:
    install()
    path = os.environ.get(COUNTS_ENV)
    if path:
        threading.Thread(target=_writer, args=(Path(path),), daemon=True, name="bench-counts").start()
    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
