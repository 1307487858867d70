"""A thread-safe in-memory record store with dict indexes, so lookups stay O(1) at 100,000 records."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.common import persistence

Record = dict[str, Any]
# Computes an index key from a record; None means "not indexed" (e.g. a member without an email).
KeyFunction = Callable[[Record], str | None]


class DuplicateKeyError(Exception):
    """A unique index already holds this key."""

    def __init__(self, index: str, key: str, existing_id: str) -> None:
        super().__init__(f"{index} {key!r} already used by record {existing_id}")
        self.index = index
        self.key = key
        self.existing_id = existing_id


class RecordStore:
    """Records by sequential string id, with unique and non-unique indexes maintained on every write.

    Records handed out must be treated as read-only: `update` always stores a new dict, so a record
    read earlier is never changed under a reader's feet. Records must be JSON values: when the runner
    persists the sandbox (see sandbox.common.persistence) every store is saved as JSON.
    """

    def __init__(
        self,
        *,
        id_field: str = "id",
        unique: Mapping[str, KeyFunction] | None = None,
        multi: Mapping[str, KeyFunction] | None = None,
    ) -> None:
        self.id_field = id_field
        self._unique_keys = dict(unique or {})
        self._multi_keys = dict(multi or {})
        # Reentrant, so an emulator can hold it around a read-check-write of several calls.
        self.lock = threading.RLock()
        # Bumped by every change (insert, update, delete, clear), so a saver knows what to write.
        self.version = 0
        self.clear()
        persistence.adopt(self)

    def clear(self) -> None:
        """Drop every record and restart ids from 1."""
        with self.lock:
            self._records: dict[str, Record] = {}
            self._unique: dict[str, dict[str, str]] = {name: {} for name in self._unique_keys}
            # Ordered "sets" of ids (dict keys) so removal from a multi index is O(1) too.
            self._multi: dict[str, dict[str, dict[str, None]]] = {name: {} for name in self._multi_keys}
            self._next_id = 1
            self.version += 1

    def __len__(self) -> int:
        return len(self._records)

    def insert(self, record: Record) -> Record:
        """Store a new record under the next id (written into `id_field`); raises DuplicateKeyError."""
        with self.lock:
            self._check_unique(record, own_id=None)
            record_id = str(self._next_id)
            self._next_id += 1
            stored = {self.id_field: record_id, **record}
            stored[self.id_field] = record_id
            self._records[record_id] = stored
            self._index(stored)
            return stored

    def update(self, record_id: str, change: Callable[[Record], Record]) -> Record:
        """Replace a record by `change(current)` atomically; KeyError if unknown, DuplicateKeyError."""
        with self.lock:
            current = self._records[record_id]
            updated = dict(change(dict(current)))
            updated[self.id_field] = record_id
            self._check_unique(updated, own_id=record_id)
            self._unindex(current)
            self._records[record_id] = updated
            self._index(updated)
            return updated

    def remove(self, record_id: str) -> Record | None:
        """Remove a record; the record removed, or None when there was none."""
        with self.lock:
            record = self._records.pop(record_id, None)
            if record is not None:
                self._unindex(record)
            return record

    def get(self, record_id: str) -> Record | None:
        """The record with this id, or None."""
        return self._records.get(record_id)

    def find(self, index: str, key: str) -> Record | None:
        """The record whose unique `index` equals `key`, or None."""
        with self.lock:
            record_id = self._unique[index].get(key)
            return None if record_id is None else self._records[record_id]

    def find_all(self, index: str, key: str) -> list[Record]:
        """Every record whose `index` equals `key`, oldest first (unique or non-unique index)."""
        with self.lock:
            if index in self._unique:
                found = self.find(index, key)
                return [] if found is None else [found]
            return [self._records[record_id] for record_id in self._multi[index].get(key, {})]

    def all(self) -> list[Record]:
        """Every record, oldest first."""
        with self.lock:
            return list(self._records.values())

    def page(self, offset: int, limit: int, records: Iterable[Record] | None = None) -> list[Record]:
        """`limit` records starting at `offset` (of `records` if given, else of the whole store)."""
        with self.lock:
            source = self._records.values() if records is None else records
            return list(itertools.islice(source, offset, offset + limit))

    def shape(self) -> str:
        """The id field and index names: what a saved store must match to be restored into this one."""
        return f"{self.id_field}:{','.join(sorted(self._unique_keys))}:{','.join(sorted(self._multi_keys))}"

    def snapshot(self) -> dict[str, Any]:
        """Every record and the next id, as JSON values (what persistence saves)."""
        with self.lock:
            records = list(self._records.values())
            next_id = self._next_id
        # Records are replaced, never changed in place, so the list can be read outside the lock.
        return {"next_id": next_id, "records": records}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the contents by a snapshot's records; ids continue after the highest one saved."""
        with self.lock:
            self.clear()
            for record in snapshot.get("records", []):
                record_id = str(record[self.id_field])
                self._records[record_id] = record
                self._index(record)
            highest = max((int(key) for key in self._records if key.isdigit()), default=0)
            self._next_id = max(int(snapshot.get("next_id", 1)), highest + 1)

    def _check_unique(self, record: Record, own_id: str | None) -> None:
        for name, key_of in self._unique_keys.items():
            key = key_of(record)
            if key is None:
                continue
            holder = self._unique[name].get(key)
            if holder is not None and holder != own_id:
                raise DuplicateKeyError(name, key, holder)

    def _index(self, record: Record) -> None:
        self.version += 1
        record_id = record[self.id_field]
        for name, key_of in self._unique_keys.items():
            key = key_of(record)
            if key is not None:
                self._unique[name][key] = record_id
        for name, key_of in self._multi_keys.items():
            key = key_of(record)
            if key is not None:
                self._multi[name].setdefault(key, {})[record_id] = None

    def _unindex(self, record: Record) -> None:
        # Also how a subclass deletes a record (it pops the record and unindexes it): count it.
        self.version += 1
        record_id = record[self.id_field]
        for name, key_of in self._unique_keys.items():
            key = key_of(record)
            if key is not None:
                self._unique[name].pop(key, None)
        for name, key_of in self._multi_keys.items():
            key = key_of(record)
            holders = self._multi[name].get(key) if key is not None else None
            if holders is not None:
                holders.pop(record_id, None)
                if not holders:
                    del self._multi[name][key]  # type: ignore[arg-type]
