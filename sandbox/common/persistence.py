"""Optional persistence of every RecordStore to JSON files, so a restarted sandbox keeps its data.

Off unless a runner opens a `StoreFiles` and builds its emulators inside `files.scope(name)`: every
`RecordStore` created there is restored from `<directory>/<name>.json` at once, and written back by a
background saver shortly after it changes and on `close()`. Without it (tests, `membersync sandbox`)
stores stay purely in memory. The emulators need no code of their own for it: a store is matched to
its saved part by the scope, its id field, its index names and its place among stores of the same
shape, so adding a store to an emulator does not shift the others.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.common.store import RecordStore

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# How often the saver looks for changes; a write reaches the disk within about this (or a few times
# the last save's duration, when a large store makes saving slow).
SAVE_INTERVAL_SECONDS = 0.25

_open_scope: ContextVar[_Scope | _Collector | None] = ContextVar("sandbox_store_scope", default=None)


class _Scope:
    """The stores of one emulator, saved together in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stores: dict[str, RecordStore] = {}
        self.saved_versions: dict[str, int] = {}
        self.saved = _read(path)

    def adopt(self, store: RecordStore) -> None:
        shape = store.shape()
        ordinal = sum(1 for key in self.stores if key.rsplit("#", 1)[0] == shape)
        key = f"{shape}#{ordinal + 1}"
        self.stores[key] = store
        snapshot = self.saved.get(key)
        if snapshot is not None:
            store.restore(snapshot)
        self.saved_versions[key] = store.version

    def changed(self) -> bool:
        return any(store.version != self.saved_versions.get(key) for key, store in self.stores.items())

    def save(self) -> None:
        versions = {key: store.version for key, store in self.stores.items()}
        document = {
            "format": FORMAT_VERSION,
            "stores": {key: store.snapshot() for key, store in self.stores.items()},
        }
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        # Atomic on POSIX: a stop in the middle of a save leaves the previous file, never half of one.
        os.replace(temporary, self.path)
        self.saved_versions.update(versions)


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ValueError(f"sandbox state {path} cannot be read ({error}); remove it to start empty") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        raise ValueError(f"sandbox state {path} has an unknown format; remove it to start empty")
    stores = document.get("stores")
    return stores if isinstance(stores, dict) else {}


class StoreFiles:
    """Persists the RecordStores built inside `scope(name)` to `<directory>/<name>.json`."""

    def __init__(self, directory: Path, interval_seconds: float = SAVE_INTERVAL_SECONDS) -> None:
        self.directory = directory
        self.interval_seconds = interval_seconds
        self._scopes: list[_Scope] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._saver: threading.Thread | None = None

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Every RecordStore created inside is restored from and saved to `<name>.json`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        scope = _Scope(self.directory / f"{name}.json")
        with self._lock:
            self._scopes.append(scope)
        token = _open_scope.set(scope)
        try:
            yield
        finally:
            _open_scope.reset(token)

    def start(self) -> StoreFiles:
        """Start the background saver (writes a changed scope within a fraction of a second)."""
        if self._saver is None:
            self._saver = threading.Thread(target=self._run, name="sandbox-store-saver", daemon=True)
            self._saver.start()
        return self

    def save(self) -> None:
        """Write every scope whose stores changed since its last save."""
        with self._lock:
            for scope in self._scopes:
                if scope.changed():
                    scope.save()

    def close(self) -> None:
        """Stop the saver and write what changed (call once the servers stopped taking requests)."""
        self._stopping.set()
        if self._saver is not None:
            self._saver.join(timeout=30)
            self._saver = None
        self.save()

    def _run(self) -> None:
        pause = self.interval_seconds
        while not self._stopping.wait(pause):
            started = time.monotonic()
            try:
                self.save()
            except OSError as error:  # a full disk must not stop the emulators; the next round retries
                log.warning("sandbox state not saved: %s", error)
            # A large store takes long to write: never spend more than a fifth of the time saving.
            pause = max(self.interval_seconds, 4 * (time.monotonic() - started))


class _Collector:
    """Collects the stores created inside `collected_stores()`; restores and saves nothing."""

    def __init__(self) -> None:
        self.stores: list[RecordStore] = []

    def adopt(self, store: RecordStore) -> None:
        self.stores.append(store)


@contextlib.contextmanager
def collected_stores() -> Iterator[list[RecordStore]]:
    """Every RecordStore created inside, in creation order, without persisting anything.

    How the benchmarks reach an emulator's records to seed 100,000 of them at once, in-process,
    instead of one API request each.
    """
    collector = _Collector()
    token = _open_scope.set(collector)
    try:
        yield collector.stores
    finally:
        _open_scope.reset(token)


def adopt(store: RecordStore) -> None:
    """Called by every new RecordStore: restore and track it when a scope is open, else nothing."""
    scope = _open_scope.get()
    if scope is not None:
        scope.adopt(store)
