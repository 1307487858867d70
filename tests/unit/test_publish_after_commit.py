"""Publish after commit, the one mechanism: a database bound to a publisher publishes the outbox rows
each transaction wrote once it has committed, never those of a transaction that rolled back, and a
publish that fails leaves the row to the relay without failing the transaction's caller."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import registrations.outbox as outbox
from registrations.database import Database
from registrations.models import Base, OutboxMessage, Registration, SyncStep
from registrations.outbox import publish_after_commit, published_ids

EMAIL = "hanako@example.com"


class Boom(Exception):
    """The block of a transaction failed after writing its rows."""


class Broker:
    """A publisher that records (registration id, systems), and checks each row is committed."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sent: list[str] = []
        self.error: Exception | None = None

    def __call__(self, registration_id: str, systems: Sequence[str]) -> None:
        if self.error is not None:
            raise self.error
        # Another connection sees the registration: its transaction has committed.
        with Session(self.database.engine) as other:
            assert other.get(Registration, registration_id) is not None
        self.sent.append(registration_id)


def make_database(path: Path, **engine_kwargs: object) -> Database:
    database = Database(f"sqlite:///{path}", **engine_kwargs)
    Base.metadata.create_all(database.engine)
    return database


@pytest.fixture()
def database(tmp_path: Path) -> Iterator[Database]:
    made = make_database(tmp_path / "outbox.db")
    yield made
    made.dispose()


def write(session: Session, rows: int = 1) -> tuple[str, list[int]]:
    """A registration with a pending step and `rows` outbox rows for it, flushed (ids assigned)."""
    registration = Registration(request_fingerprint="f", email=EMAIL, first_name="花子", last_name="山田")
    registration.steps = [SyncStep(system="shopify")]
    session.add(registration)
    session.flush()
    messages = [OutboxMessage(registration_id=registration.id) for _ in range(rows)]
    session.add_all(messages)
    session.flush()
    return registration.id, [message.id for message in messages]


def outbox_rows(database: Database) -> list[OutboxMessage]:
    with database.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_committed_transaction_publishes_its_rows_once_after_the_commit(database: Database) -> None:
    broker = Broker(database)
    publishing = publish_after_commit(database, broker)
    with publishing.session() as session:
        registration_id, ids = write(session)
        assert broker.sent == []  # nothing goes out before the commit
    assert broker.sent == [registration_id]
    assert published_ids(database, ids) == ids
    [row] = outbox_rows(database)
    assert row.publish_attempts == 1 and row.last_error is None


def test_a_rolled_back_transaction_publishes_nothing(database: Database) -> None:
    broker = Broker(database)
    publishing = publish_after_commit(database, broker)
    with pytest.raises(Boom), publishing.session() as session:
        write(session)  # flushed: the rows had ids
        raise Boom
    assert broker.sent == [] and outbox_rows(database) == []
    # The next transaction of the same sessions publishes only its own row.
    with publishing.session() as session:
        registration_id, _ids = write(session)
    assert broker.sent == [registration_id]


def test_a_database_without_a_publisher_leaves_its_rows_to_the_relay(database: Database) -> None:
    broker = Broker(database)
    publish_after_commit(database, broker)  # binds a copy: `database` itself is unchanged
    with database.session() as session:
        _registration_id, ids = write(session)
    assert broker.sent == [] and published_ids(database, ids) == []


def test_a_broker_that_is_down_leaves_the_row_to_the_relay_and_logs_no_personal_data(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Broker(database)
    broker.error = ConnectionError(f"broker down while sending {EMAIL}")
    publishing = publish_after_commit(database, broker)
    with caplog.at_level(logging.DEBUG), publishing.session() as session:
        _registration_id, ids = write(session)
    # The caller carries on (its transaction has committed); the row waits for the relay.
    [row] = outbox_rows(database)
    assert (row.published_at, row.publish_attempts) == (None, 1)
    assert row.last_error is not None and row.last_error.startswith("ConnectionError")
    assert any(str(ids[0]) in record.getMessage() for record in caplog.records)
    assert all(EMAIL not in record.getMessage() for record in caplog.records)

    broker.error = None
    assert outbox.relay(broker, database, older_than_seconds=0) == 1
    assert published_ids(database, ids) == ids


def test_a_database_error_while_publishing_is_logged_and_left_to_the_relay(
    database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def database_gone(*_args: object) -> int:
        raise OperationalError("UPDATE outbox ...", {"email": EMAIL}, Exception("database is locked"))

    monkeypatch.setattr(outbox, "publish", database_gone)
    publishing = publish_after_commit(database, Broker(database))
    with caplog.at_level(logging.WARNING), publishing.session() as session:
        _registration_id, ids = write(session)
    assert published_ids(database, ids) == []
    [record] = [r for r in caplog.records if r.name == "registrations.outbox"]
    assert "OperationalError" in record.getMessage() and "relay" in record.getMessage()
    assert EMAIL not in record.getMessage()


def test_the_publish_runs_with_the_transactions_connection_back_in_the_pool(tmp_path: Path) -> None:
    # One connection in all: a publish that opened its sessions while the committed one still held
    # its connection would wait for a second one and time out.
    database = make_database(tmp_path / "one.db", pool_size=1, max_overflow=0, pool_timeout=2)
    sent: list[str] = []
    publishing = publish_after_commit(
        database, lambda registration_id, _systems: sent.append(registration_id)
    )
    try:
        with publishing.session() as session:
            registration_id, ids = write(session)
        assert sent == [registration_id] and published_ids(database, ids) == ids
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def shared_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as folder:
        made = make_database(Path(folder) / "property.db")
        yield made
        made.dispose()


@hsettings(max_examples=60, deadline=None)
@given(
    transactions=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.booleans()), min_size=1, max_size=6
    )
)
def test_only_committed_rows_are_ever_published_and_each_once(
    shared_database: Database, transactions: list[tuple[int, bool]]
) -> None:
    sent: list[str] = []
    publishing = publish_after_commit(
        shared_database, lambda registration_id, _systems: sent.append(registration_id)
    )
    committed: list[str] = []
    with shared_database.session() as session:
        before = session.scalar(select(func.count()).select_from(OutboxMessage))
    for rows, commits in transactions:
        try:
            with publishing.session() as session:
                registration_id, _ids = write(session, rows)
                if not commits:
                    raise Boom
        except Boom:
            continue
        committed += [registration_id] * rows
    # Every row of a committed transaction went out once; nothing of a rolled-back one exists or went out.
    assert sorted(sent) == sorted(committed)
    with shared_database.session() as session:
        after = session.scalar(select(func.count()).select_from(OutboxMessage))
    assert (after or 0) - (before or 0) == len(committed)
