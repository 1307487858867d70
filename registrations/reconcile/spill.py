"""The three systems' records spilled into a temporary SQLite file and read back one address at a time.

A run must not hold 100,000 records of each system in memory: each stream is written here as it is
read (batched inserts), then `people()` walks the table ordered by address, so only one person's
records are in memory at a time. The file lives in the temporary directory and is removed on close.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from registrations.reconcile.records import IdentityRecord, Record

BATCH = 1000
SYSTEMS = ("shopify", "smaregi", "hubspot")


@dataclass
class Person:
    """Everything the systems and `identities` hold for one canonical address."""

    email: str
    shopify: list[Record] = field(default_factory=list)
    smaregi: list[Record] = field(default_factory=list)
    hubspot: list[Record] = field(default_factory=list)
    identity: IdentityRecord | None = None


class Spill:
    """A temporary table of records keyed by canonical address."""

    def __init__(self, *, shared: bool = False) -> None:
        """`shared`: filled by another thread than the one that made it (one thread at a time)."""
        handle, self.path = tempfile.mkstemp(prefix="membersync-reconcile-", suffix=".sqlite3")
        os.close(handle)
        self.connection = sqlite3.connect(self.path, check_same_thread=not shared)
        self.connection.execute("PRAGMA journal_mode = OFF")
        self.connection.execute("PRAGMA synchronous = OFF")
        self.connection.execute(
            "CREATE TABLE records (email TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL)"
        )
        self.counts = dict.fromkeys((*SYSTEMS, "identity"), 0)

    def add(self, records: Iterable[Record]) -> int:
        """Spill records (batched); how many."""
        added = 0
        batch: list[tuple[str, str, str]] = []
        for record in records:
            batch.append((record.email, record.system, json.dumps(record.as_row(), ensure_ascii=False)))
            self.counts[record.system] += 1
            added += 1
            if len(batch) >= BATCH:
                self._insert(batch)
        self._insert(batch)
        return added

    def add_identities(self, identities: Iterable[IdentityRecord]) -> int:
        """Spill `identities` rows (ids only)."""
        batch: list[tuple[str, str, str]] = []
        added = 0
        for identity in identities:
            batch.append((identity.email, "identity", json.dumps(list(identity))))
            added += 1
            if len(batch) >= BATCH:
                self._insert(batch)
        self._insert(batch)
        self.counts["identity"] += added
        return added

    def _insert(self, batch: list[tuple[str, str, str]]) -> None:
        if batch:
            self.connection.executemany("INSERT INTO records VALUES (?, ?, ?)", batch)
            batch.clear()

    def merge(self, other: Spill) -> None:
        """Take in another spill's records (one SQL statement, nothing through Python)."""
        other.connection.commit()
        self.connection.commit()
        self.connection.execute("ATTACH DATABASE ? AS other", (other.path,))
        try:
            self.connection.execute("INSERT INTO records SELECT email, kind, body FROM other.records")
            self.connection.commit()
        finally:
            self.connection.execute("DETACH DATABASE other")
        for kind, count in other.counts.items():
            self.counts[kind] += count

    def addresses(self) -> int:
        """How many addresses there are (the progress bar's length)."""
        self.connection.commit()
        self.connection.execute("CREATE INDEX IF NOT EXISTS records_email ON records (email)")
        return int(self.connection.execute("SELECT COUNT(DISTINCT email) FROM records").fetchone()[0])

    def people(self) -> Iterator[Person]:
        """Every address with its records, in address order; one person in memory at a time."""
        self.connection.commit()
        self.connection.execute("CREATE INDEX IF NOT EXISTS records_email ON records (email)")
        cursor = self.connection.execute("SELECT email, kind, body FROM records ORDER BY email")
        person: Person | None = None
        for email, kind, body in cursor:
            if person is None or person.email != email:
                if person is not None:
                    yield person
                person = Person(email)
            if kind == "identity":
                person.identity = IdentityRecord(*json.loads(body))
            else:
                getattr(person, kind).append(Record.from_row(json.loads(body)))
        if person is not None:
            yield person

    def close(self) -> None:
        """Remove the file."""
        self.connection.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
