"""One way in for a registration, used by the JSON API and the HTML form alike.

Validate → write registration, steps and outbox in one transaction → commit → publish (from the ids
the intake holds, `registrations.outbox.publish_claimed`: the row is committed as published, so a
broker that takes the chain costs no second transaction; one that is down un-marks the row for the
relay, and never fails the request). A rejected registration writes nothing; an accepted one is
durable before anyone is told so. An Idempotency-Key is not looked up first: the unique index
refuses a repeat, and only then is the first registration read (a retry is the rare case).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from app.schemas import load_registration
from app.services import services
from registrations.intake import (
    Acceptance,
    IdempotencyConflict,
    accept_registration,
    find_by_idempotency_key,
    fingerprint,
)
from registrations.outbox import bound_publisher, publish_claimed

__all__ = ["IdempotencyConflict", "submit"]


class _SQLiteWriters:
    """The intake's writers to one SQLite file take turns: a thread lock in this process, then an
    exclusive lock on a file beside the database across the web's processes. Both wake the next
    writer the moment the last one is done, where SQLite's busy handler makes a writer that finds
    the database locked sleep 1, 2, 5, 10, 15, 20, 25 ms... before it looks again: under a burst,
    eight web threads polling that way made most of the intake's latency (and its p99)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.file: int | None = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        with self.lock:
            if self.file is None:
                self.file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.file, fcntl.LOCK_UN)


_writers: dict[str, _SQLiteWriters | None] = {}
_writers_lock = threading.Lock()


def _writers_of(url: str) -> _SQLiteWriters | None:
    """The turn-taking of the SQLite file `url` names (None: another database, or in memory)."""
    if url not in _writers:
        with _writers_lock:
            parsed = make_url(url)
            file = parsed.database if parsed.get_backend_name() == "sqlite" else None
            if file and file != ":memory:" and not file.startswith("file:"):
                _writers[url] = _SQLiteWriters(Path(f"{file}-intake.lock"))
            else:
                _writers[url] = None
    return _writers[url]


def submit(payload: Any, *, idempotency_key: str | None = None, source: str = "api") -> Acceptance:
    """Accept a registration; raises ValidationError (bad fields) or IdempotencyConflict."""
    fields = load_registration(payload)
    found = services()
    # A database that publishes nothing (no broker bound) leaves the row to the relay, unclaimed.
    publisher = bound_publisher(found.database)
    writers = _writers_of(found.database.url)
    try:
        with writers.turn() if writers else contextlib.nullcontext(), found.database.session() as session:
            acceptance = accept_registration(
                session,
                fields,
                settings=found.settings,
                idempotency_key=idempotency_key,
                source=source,
                caller_publishes=publisher is not None,
            )
    except IntegrityError:
        # The Idempotency-Key was taken (a client's retry, or two requests racing): the first answers.
        if idempotency_key is None:
            raise
        with found.database.session() as session:
            existing = find_by_idempotency_key(session, idempotency_key)
            if existing is None:
                raise
            if existing.request_fingerprint != fingerprint(fields):
                raise IdempotencyConflict(idempotency_key) from None
            acceptance = Acceptance(existing, created=False, outbox_id=None)
    if publisher is not None and acceptance.outbox_id is not None:
        publish_claimed(
            publisher, found.database, acceptance.outbox_id, acceptance.registration.id, acceptance.systems
        )
    return acceptance
