"""Engine and sessions for SQLite (embedded, WAL) and PostgreSQL, and `db upgrade` via Alembic.

A session also notes the outbox rows its transaction writes, so that a database bound to a publisher
(`registrations.outbox.publish_after_commit`) hands them over once the transaction has committed:
the unit of work behind "publish after commit", in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from registrations.models import OutboxMessage

MIGRATIONS = Path(__file__).parent / "migrations"

# `Session.info` key: the ids of the outbox rows the session's transaction has written so far.
OUTBOX_WRITTEN = "membersync.outbox_written"

# `Session.info` key: the chains their writer already knows, outbox id -> (registration id, systems),
# so that publishing them after the commit reads nothing back (`note_chain`).
OUTBOX_CHAINS = "membersync.outbox_chains"

# A chain its writer knows: the registration's id and the systems still to run, in order.
KnownChain = tuple[str, tuple[str, ...]]

# Given the outbox ids a transaction wrote and the chains of those its writer stated, after its commit
# (registrations.outbox publishes them).
AfterCommit = Callable[[list[int], Mapping[int, KnownChain]], None]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web process read while a worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def dialect_insert(dialect: str) -> Any:
    """The INSERT constructor of `dialect` (PostgreSQL's or SQLite's), for INSERT … ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite files get their folder created and WAL switched on."""
    # A failed statement's error text leaves out its parameters: an INSERT's are a registrant's
    # name and address, and the error is logged (found by the chaos run's database drop).
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _note_outbox_rows(session: Session, _flush_context: Any) -> None:
    # after_flush: `session.new` still lists what this flush inserted, and their ids are assigned now.
    written = [row.id for row in session.new if isinstance(row, OutboxMessage)]
    if written:
        session.info.setdefault(OUTBOX_WRITTEN, []).extend(written)


def _forget_outbox_rows(session: Session) -> None:
    # Rolled back: those rows do not exist, so nothing of them may be published.
    session.info.pop(OUTBOX_WRITTEN, None)
    session.info.pop(OUTBOX_CHAINS, None)


def note_chain(session: Session, outbox_id: int, registration_id: str, systems: Sequence[str]) -> None:
    """State the chain an outbox row (flushed in this session's transaction) stands for, so that the
    publish after the commit sends it from these ids without reading the row and the steps back.

    Only for a writer that knows the steps' states as committed (the intake, which made them). A
    row inserted without the unit of work (a Core INSERT) is noted as written here too."""
    written = session.info.setdefault(OUTBOX_WRITTEN, [])
    if outbox_id not in written:
        written.append(outbox_id)
    session.info.setdefault(OUTBOX_CHAINS, {})[outbox_id] = (registration_id, tuple(systems))


class Database:
    """One engine and its session factory; `after_commit` (unset: nothing) is told which outbox rows
    each committed transaction wrote."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The configured database, its pool sized from DATABASE_POOL_SIZE / DATABASE_MAX_OVERFLOW."""
        if make_url(settings.database_url).get_backend_name() == "sqlite":
            return cls(settings.database_url)
        return cls(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.sessions, "after_flush", _note_outbox_rows)
        event.listen(self.sessions, "after_rollback", _forget_outbox_rows)
        self.after_commit: AfterCommit | None = None

    def with_after_commit(self, after_commit: AfterCommit) -> Database:
        """This database (the same engine and sessions) whose committed transactions hand the outbox
        ids they wrote to `after_commit`. The original is unchanged: one database may serve a web app and
        workers on different brokers (tests do), each publishing to its own."""
        bound = copy.copy(self)
        bound.after_commit = after_commit
        return bound

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error.

        After the commit (not in SQLAlchemy's after_commit event, where the connection is still
        checked out: a publish opening sessions of its own would then hold one connection while
        waiting for a second), the outbox rows it wrote go to `after_commit`. An error in the block
        rolls back and skips that.
        """
        with self.sessions() as session:
            with session.begin():
                yield session
            written = session.info.pop(OUTBOX_WRITTEN, [])
            known = session.info.pop(OUTBOX_CHAINS, {})
        if written and self.after_commit is not None:
            self.after_commit(written, known)

    def upgrade(self, revision: str = "head") -> None:
        """Run Alembic migrations up to `revision`."""
        command.upgrade(alembic_config(self.url), revision)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> AlembicConfig:
    """Alembic configured in code, so no alembic.ini has to travel with the package."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
