"""The Smaregi member directory and the Smaregi step against FakeSmaregi, on a SQLite file.

The fake has no e-mail search (as Smaregi): every match goes through the directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.errors import AmbiguousMatch, PermanentError, TransientError
from connectors.fakes import FakeSmaregi
from connectors.smaregi import member_code
from registrations.database import Database
from registrations.directory import CURSOR, INCREMENTAL_RANGE, OVERLAP, PAGE_SIZE, MemberDirectory
from registrations.models import Base, DirectoryMember, SyncCursor
from registrations.steps.base import Registrant
from registrations.steps.smaregi import link_or_create

EMAIL = "hanako@example.com"
KEY = b"unit-test-member-code-key"
HANAKO = Registrant(email=EMAIL, first_name="花子", last_name="山田")


class Clock:
    """Our clock and the fake Smaregi's, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'directory.db'}")
    Base.metadata.create_all(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def smaregi(clock: Clock) -> FakeSmaregi:
    return FakeSmaregi(clock=clock)


@pytest.fixture
def directory(database: Database, clock: Clock) -> MemberDirectory:
    return MemberDirectory(database, clock=clock, sleep=lambda _seconds: None)


def rows(database: Database) -> dict[str, tuple[str, str | None]]:
    with database.session() as session:
        return {row.customer_id: (row.customer_code, row.email) for row in session.query(DirectoryMember)}


def settle(smaregi: FakeSmaregi, directory: MemberDirectory, registrant: Registrant = HANAKO) -> object:
    return link_or_create(smaregi, directory, registrant, key=KEY, max_age_seconds=1.0)


# --- the directory ------------------------------------------------------------------------------------


def test_a_full_load_pages_through_every_member_with_no_filter(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database
) -> None:
    for number in range(PAGE_SIZE + 3):
        smaregi.add_member(f"C{number}", f"Person{number}@Example.com")

    report = directory.full_load(smaregi)

    assert (report.kind, report.pages, report.members) == ("full", 2, PAGE_SIZE + 3)
    lists = [arguments for name, arguments in smaregi.calls if name == "list_members"]
    assert [(a["page"], a["limit"], a["updated_from"], a["sort"]) for a in lists] == [
        (1, PAGE_SIZE, None, None),
        (2, PAGE_SIZE, None, None),
    ]
    assert len(rows(database)) == PAGE_SIZE + 3
    assert rows(database)["1"] == ("C0", "person0@example.com")  # normalised
    assert [entry.customer_code for entry in directory.members_with_email(" PERSON7@example.com")] == ["C7"]


def test_a_full_load_removes_only_members_smaregi_confirms_gone(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database, clock: Clock
) -> None:
    for number in range(3):
        smaregi.add_member(f"C{number}", f"p{number}@example.com")
    directory.full_load(smaregi)
    smaregi.delete_member("2")
    clock.advance(10)
    # A page shifted by a deletion can skip a member: it must be re-read, not dropped.
    real_list = smaregi.list_members

    def list_skipping_member_1(**arguments: object) -> object:
        return [member for member in real_list(**arguments) if member.customer_id != "1"]  # type: ignore[attr-defined]

    smaregi.list_members = list_skipping_member_1  # type: ignore[method-assign]
    report = directory.full_load(smaregi)

    assert report.removed == 1
    assert set(rows(database)) == {"1", "3"}
    assert [name for name, arguments in smaregi.calls if name == "get_member"] == ["get_member", "get_member"]


def test_an_incremental_pull_reads_changes_since_the_watermark_minus_the_overlap_newest_first(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database, clock: Clock
) -> None:
    smaregi.add_member("OLD", "old@example.com")
    directory.full_load(smaregi)
    clock.advance(30)
    smaregi.add_member("NEW", "new@example.com")
    clock.advance(30)
    smaregi.calls.clear()

    report = directory.pull(smaregi)

    assert report.kind == "incremental" and report.members == 2  # the overlap re-reads "OLD" too
    [(_, arguments)] = smaregi.calls
    full_load_began = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    assert arguments["updated_from"] == full_load_began - OVERLAP
    assert arguments["sort"] == "updDateTime:desc"
    assert {code for code, _ in rows(database).values()} == {"OLD", "NEW"}
    cursor = directory.cursor()
    assert cursor is not None and cursor.watermark == full_load_began + timedelta(seconds=30)


def test_a_watermark_beyond_the_31_day_range_falls_back_to_a_full_load(
    smaregi: FakeSmaregi, directory: MemberDirectory, clock: Clock
) -> None:
    smaregi.add_member("A", "a@example.com")
    directory.full_load(smaregi)
    clock.advance(INCREMENTAL_RANGE.total_seconds())
    report = directory.pull(smaregi)
    assert report.kind == "full" and report.reasons == ["watermark older than 30 days"]


def test_an_older_state_never_replaces_a_newer_one(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database, clock: Clock
) -> None:
    member = smaregi.add_member("A", "new@example.com")
    directory.record([member])
    stale = type(member)(
        member.customer_id, "A", "old@example.com", None, None, None, member.updated_at - timedelta(seconds=5)
    )  # type: ignore[operator]
    directory.record([stale])
    assert rows(database)[member.customer_id] == ("A", "new@example.com")


def test_a_throttled_background_pull_waits_and_goes_on(
    smaregi: FakeSmaregi, database: Database, clock: Clock
) -> None:
    from connectors.errors import ThrottledError

    waits: list[float] = []
    directory = MemberDirectory(database, clock=clock, sleep=waits.append)
    smaregi.fail_next("list_members", ThrottledError("429", system="smaregi", retry_after=2.0))
    assert directory.full_load(smaregi).pages == 1
    assert waits == [2.0]
    smaregi.fail_next("list_members", ThrottledError("429", system="smaregi", retry_after=2.0))
    with pytest.raises(ThrottledError):
        directory.pull(smaregi, patient=False)  # a step never sleeps in a worker


def test_reread_updates_what_exists_and_forgets_what_does_not(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database
) -> None:
    kept = smaregi.add_member("K", "k@example.com")
    gone = smaregi.add_member("G", "g@example.com")
    directory.record([kept, gone])
    smaregi.delete_member(gone.customer_id)
    smaregi.members[kept.customer_id] = type(kept)(kept.customer_id, "K", "K2@example.com", None, None)
    assert directory.reread(smaregi, [kept.customer_id, gone.customer_id, "999"]) == {
        "updated": 1,
        "removed": 1,
    }
    assert rows(database) == {kept.customer_id: ("K", "k2@example.com")}


# --- the step -----------------------------------------------------------------------------------------


def test_a_walk_in_made_at_the_till_a_moment_ago_is_linked_and_keeps_their_code(
    smaregi: FakeSmaregi, directory: MemberDirectory, clock: Clock
) -> None:
    directory.full_load(smaregi)  # loaded before the walk-in existed
    clock.advance(2)
    walk_in = smaregi.add_member("STORE-1", "Hanako@Example.com")
    clock.advance(2)

    membership = settle(smaregi, directory)

    # Found, but never linked on the address alone: the step waits for its owner to say it is theirs.
    assert membership.member is None and membership.waiting_for == walk_in.customer_id
    assert smaregi.count("create_member") == 0 and len(smaregi.members) == 1


def test_a_fresh_directory_is_not_pulled_again_before_a_create(
    smaregi: FakeSmaregi, directory: MemberDirectory
) -> None:
    directory.full_load(smaregi)
    smaregi.calls.clear()
    settle(smaregi, directory)
    assert [name for name, _ in smaregi.calls] == ["create_member"]
    assert [entry.customer_code for entry in directory.members_with_email(EMAIL)] == [
        member_code(EMAIL, key=KEY)
    ]  # our own write is in the directory at once


def test_two_members_with_the_email_are_a_dead_letter_naming_both_codes(
    smaregi: FakeSmaregi, directory: MemberDirectory
) -> None:
    smaregi.add_member("STORE-1", EMAIL)
    smaregi.add_member("STORE-2", EMAIL.upper())
    with pytest.raises(AmbiguousMatch) as ambiguous:
        settle(smaregi, directory)
    assert ambiguous.value.reason == "ambiguous_match"
    assert "STORE-1" in str(ambiguous.value) and "STORE-2" in str(ambiguous.value)
    assert EMAIL not in str(ambiguous.value).lower()
    assert smaregi.count("create_member") == 0


def test_a_stale_row_is_corrected_from_smaregi_not_linked(
    smaregi: FakeSmaregi, directory: MemberDirectory
) -> None:
    gone = smaregi.add_member("STORE-1", EMAIL)
    directory.full_load(smaregi)
    smaregi.delete_member(gone.customer_id)
    membership = settle(smaregi, directory)
    assert membership.member.customer_code == member_code(EMAIL, key=KEY)  # type: ignore[attr-defined]


def test_a_lost_create_answer_is_adopted_by_its_code(
    smaregi: FakeSmaregi, directory: MemberDirectory
) -> None:
    directory.full_load(smaregi)
    smaregi.lose_next_answer("create_member")
    membership = settle(smaregi, directory)
    assert len(smaregi.members) == 1 and smaregi.count("create_member") == 1
    assert membership.member.customer_code == member_code(EMAIL, key=KEY)  # type: ignore[attr-defined]
    assert membership.note and "unclear create" in membership.note  # type: ignore[attr-defined]


def test_a_refused_create_whose_code_is_someone_elses_takes_the_next_salt(
    smaregi: FakeSmaregi, directory: MemberDirectory
) -> None:
    smaregi.add_member(member_code(EMAIL, key=KEY), "someone.else@example.com")
    membership = settle(smaregi, directory)
    assert membership.member.customer_code == member_code(EMAIL, key=KEY, salt=1)  # type: ignore[attr-defined]
    assert smaregi.count("find_member_by_code") == 1


@pytest.mark.parametrize(
    "error", [TransientError("HTTP 503", system="smaregi"), PermanentError("HTTP 400", system="smaregi")]
)
def test_a_failed_create_whose_code_is_absent_is_raised_as_it_is(
    smaregi: FakeSmaregi, directory: MemberDirectory, error: Exception
) -> None:
    smaregi.fail_next("create_member", error)
    with pytest.raises(type(error)):
        settle(smaregi, directory)
    assert smaregi.members == {} and smaregi.count("find_member_by_code") == 1


def test_the_cursor_records_the_last_full_load(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database
) -> None:
    directory.full_load(smaregi)
    with database.session() as session:
        cursor = session.get(SyncCursor, CURSOR)
        assert cursor is not None and cursor.full_sync_at == cursor.refreshed_at


# --- what a process remembers (the on-demand refresh runs before every create) --------------------------


def seen_at(database: Database) -> dict[str, datetime]:
    with database.session() as session:
        return {row.customer_id: row.seen_at for row in session.query(DirectoryMember)}


def test_an_incremental_pull_writes_only_what_changed_since_this_process_wrote_it(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database, clock: Clock
) -> None:
    kept = smaregi.add_member("K", "k@example.com")
    edited = smaregi.add_member("E", "e@example.com")
    directory.full_load(smaregi)
    loaded = seen_at(database)
    clock.advance(5)
    # Edited within the same second of Smaregi's clock: only the state tells the two apart.
    smaregi.members[edited.customer_id] = replace(edited, mail_address="E2@example.com")
    fresh = smaregi.add_member("N", "n@example.com")

    report = directory.pull(smaregi)

    assert report.members == 3  # the overlap re-read all three ...
    after = seen_at(database)
    assert after[kept.customer_id] == loaded[kept.customer_id]  # ... the unchanged one was not written
    assert after[edited.customer_id] == clock.now and after[fresh.customer_id] == clock.now
    assert rows(database)[edited.customer_id] == ("E", "e2@example.com")


def test_a_row_removed_behind_this_process_comes_back_from_the_pull(
    smaregi: FakeSmaregi, directory: MemberDirectory, database: Database, clock: Clock
) -> None:
    member = smaregi.add_member("A", "a@example.com")
    directory.full_load(smaregi)

    directory.forget([member.customer_id])  # this process: the next pull writes it again at once
    directory.pull(smaregi)
    assert member.customer_id in rows(database)

    with database.session() as session:  # another process (a lagging 404): remembered for OVERLAP at most
        session.query(DirectoryMember).delete()
    clock.advance(OVERLAP.total_seconds() + 1)
    directory.pull(smaregi)
    assert rows(database) == {member.customer_id: ("A", "a@example.com")}


def test_a_refresh_this_process_knows_is_fresh_reads_no_cursor(
    smaregi: FakeSmaregi, database: Database, clock: Clock
) -> None:
    from sqlalchemy import event

    MemberDirectory(database, clock=clock).full_load(smaregi)
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    clock.advance(0.5)

    # A new directory over the same database (the step makes one per call) shares what was seen.
    assert MemberDirectory(database, clock=clock).refresh_if_stale(smaregi, 1.0) is None
    assert statements == []

    clock.advance(1)
    report = MemberDirectory(database, clock=clock).refresh_if_stale(smaregi, 1.0)
    assert report is not None and report.kind == "incremental"


def test_a_refresh_by_another_process_is_read_from_the_cursor(
    smaregi: FakeSmaregi, database: Database, clock: Clock
) -> None:
    directory = MemberDirectory(database, clock=clock)
    directory.full_load(smaregi)
    clock.advance(5)
    with database.session() as session:  # another worker pulled a moment ago
        cursor = session.get(SyncCursor, CURSOR)
        assert cursor is not None
        cursor.refreshed_at = clock.now
    smaregi.calls.clear()
    assert directory.refresh_if_stale(smaregi, 1.0) is None
    assert smaregi.calls == []


def test_threads_each_with_a_directory_of_their_own_pull_once_between_them(
    smaregi: FakeSmaregi, database: Database, clock: Clock
) -> None:
    import threading
    import time

    MemberDirectory(database, clock=clock).full_load(smaregi)
    clock.advance(5)
    smaregi.calls.clear()
    real_list = smaregi.list_members

    def slow_list(**arguments: object) -> object:
        time.sleep(0.05)  # the other threads arrive while this pull runs
        return real_list(**arguments)  # type: ignore[arg-type]

    smaregi.list_members = slow_list  # type: ignore[assignment]
    start = threading.Barrier(8)

    def step() -> None:
        start.wait()
        MemberDirectory(database, clock=clock).refresh_if_stale(smaregi, 1.0)  # as the step: one per call

    threads = [threading.Thread(target=step) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert smaregi.count("list_members") == 1
