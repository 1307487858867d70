"""The Smaregi member directory: who is a member, by e-mail, as far as matching needs it.

Smaregi documents no search by e-mail (members can be filtered by code, member number, id range and
update time only), so Membersync keeps its own index: per member its customerId, customerCode,
normalised e-mail and updDateTime, nothing else. It is fed by

    a full load        every member, page by page (never the whole list in memory); rows of members
                       that no longer exist are removed only once the load has completed, and only
                       after Smaregi confirms each is gone (a page that shifted under a deletion
                       must not cost a member its row)
    an incremental     members changed since the watermark (minus an overlap), newest first, so a
    pull               change during the pull shifts pages forward (read twice) instead of skipping
                       one; Smaregi allows a 31-day range at most, so an older watermark means a
                       full load
    on demand          before a create, when the last pull is older than a bound
    the webhook        `pos:customers`: the ids it names are re-read through the API
    our own writes     a member we create is recorded at once

Every read and write here is its own short transaction; no transaction is open while Smaregi is
called.

The directories of one process over one database share a state (`_Shared`, keyed by the engine): one
on-demand refresh at a time, the newest refresh this process has seen (a pipeline step asks before
every create; a fresh one is not read from the database again), and the rows this process wrote
lately (an incremental pull re-reads the last OVERLAP of changes every time; rows it already holds
in that same state are not written again).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, case, delete, or_, select
from sqlalchemy.orm import Session

from config.email_address import canonical_email
from connectors.errors import ThrottledError
from connectors.interfaces import SmaregiApi
from connectors.smaregi import MAX_PAGE_SIZE, SmaregiMember
from registrations.database import Database, dialect_insert
from registrations.models import DirectoryMember, SyncCursor, utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

CURSOR = "smaregi_directory"
PAGE_SIZE = MAX_PAGE_SIZE
NEWEST_FIRST = "updDateTime:desc"
# Each pull re-reads this much before the newest change it has seen: updDateTime has whole seconds,
# and a change committed late on Smaregi's side may carry a time a little before one already seen.
OVERLAP = timedelta(seconds=60)
# Smaregi refuses an update-time range over 31 days; a day less leaves room for clocks and the overlap.
INCREMENTAL_RANGE = timedelta(days=30)
# A background pull that is throttled waits this long in total before it gives up (the next run
# starts over from the watermark); a pipeline step never waits (its task is re-scheduled).
PATIENCE_SECONDS = 120.0
# More members than this with one e-mail are reported as they are, without re-reading each.
CONFIRM_AT_MOST = 5
EMAIL_MAX = 254
# The rows a process remembers having written (`_Written`): enough for every change within the
# overlap at a few hundred changes a second; beyond it the oldest are just written again.
WRITTEN_AT_MOST = 50_000


@dataclass(frozen=True)
class DirectoryEntry:
    """One member as the directory knows it (no names, no phones)."""

    customer_id: str
    customer_code: str
    email: str | None


@dataclass
class SyncReport:
    """What one directory sync did (JSON for the CLI and the task result; no personal data)."""

    kind: str  # "full", "incremental" or "fresh" (nothing to do)
    pages: int = 0
    members: int = 0
    removed: int = 0
    watermark: str | None = None
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return asdict(self)


def directory_email(email: str | None) -> str | None:
    """An e-mail as the directory stores and matches it: canonical (`canonical_email`, the intake's
    rule), or None when there is none or it does not fit the column (checked after canonicalising:
    lower-casing can lengthen an address a till typed)."""
    if not email:
        return None
    text = canonical_email(email)
    return text if text and len(text) <= EMAIL_MAX else None


# A member's state as Smaregi gave it, as far as a directory row takes it: (customerCode, mailAddress
# before canonicalising, updDateTime). Equal states make equal rows.
RowState = tuple[str, str | None, datetime | None]


class _Written:
    """The rows this process wrote lately and in which state: customer_id -> (state, written at).

    Used only to spare the incremental pull's re-reads of the overlap, never to decide what exists.
    Entries are noted before their write commits (a write that fails drops them again) and dropped
    after a `forget` commits, so an entry here never outlives its row in this process. Another
    process may remove a row (Smaregi said 404; a member gone is never listed again, but a lagging
    answer could be wrong), so an entry is trusted for OVERLAP at most: a row taken away behind our
    back and listed again comes back within that, as it would from the next pull without this.
    """

    def __init__(self, at_most: int = WRITTEN_AT_MOST) -> None:
        self._at_most = at_most
        self._entries: OrderedDict[str, tuple[RowState, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def changed(self, states: dict[str, RowState], now: datetime) -> dict[str, RowState]:
        """`states` but those this process wrote in the same state within the last OVERLAP."""
        oldest = now - OVERLAP
        with self._lock:
            entries = self._entries
            return {
                key: state
                for key, state in states.items()
                if (entry := entries.get(key)) is None or entry[0] != state or not oldest <= entry[1] <= now
            }

    def note(self, states: dict[str, RowState], now: datetime) -> None:
        with self._lock:
            for customer_id, state in states.items():
                self._entries[customer_id] = (state, now)
                self._entries.move_to_end(customer_id)
            while len(self._entries) > self._at_most:
                self._entries.popitem(last=False)

    def drop(self, customer_ids: Iterable[str]) -> None:
        with self._lock:
            for customer_id in customer_ids:
                self._entries.pop(customer_id, None)


@dataclass
class _Shared:
    """What the directories of one process over one database share (`_shared`)."""

    refreshing: threading.Lock = field(default_factory=threading.Lock)
    # The cursor's newest refreshed_at this process read or wrote, once a full load had completed. The
    # cursor only moves forward (another process's pull makes it fresher), so this is a lower bound.
    refreshed_at: datetime | None = None
    written: _Written = field(default_factory=_Written)

    def saw_refresh(self, refreshed_at: datetime | None) -> None:
        if refreshed_at is not None and (self.refreshed_at is None or refreshed_at > self.refreshed_at):
            self.refreshed_at = refreshed_at


_SHARED: weakref.WeakKeyDictionary[Engine, _Shared] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _start_afresh_after_fork() -> None:
    # A forked child (a prefork pool's) is a process of its own: it must not inherit a lock some
    # thread of its parent held at the fork, nor its parent's memory of writes.
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()


os.register_at_fork(after_in_child=_start_afresh_after_fork)


def _shared(engine: Engine) -> _Shared:
    """The state shared by this process's directories over `engine` (a pipeline step makes a directory
    per call; a refresh lock or memory per instance would be shared by nobody)."""
    with _SHARED_LOCK:
        shared = _SHARED.get(engine)
        if shared is None:
            shared = _SHARED[engine] = _Shared()
        return shared


class MemberDirectory:
    """The directory over one database; thread-safe, one refresh at a time per process and database."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self._clock = clock
        self._sleep = sleep
        self._shared = _shared(database.engine)

    # --- reading ------------------------------------------------------------------------------

    def members_with_email(self, email: str) -> list[DirectoryEntry]:
        """The members whose normalised e-mail is `email`'s, oldest customerId first."""
        wanted = directory_email(email)
        if wanted is None:
            return []
        columns = (DirectoryMember.customer_id, DirectoryMember.customer_code, DirectoryMember.email)
        # Core on a connection of its own: the ORM's session and unit of work add nothing to a read.
        with self.database.engine.connect() as connection:
            rows = connection.execute(select(*columns).where(DirectoryMember.email == wanted))
            entries = [DirectoryEntry(*row) for row in rows]
        return sorted(entries, key=lambda entry: (len(entry.customer_id), entry.customer_id))

    def cursor(self) -> SyncCursor | None:
        """The directory's sync cursor (watermark, last refresh, last full load), detached."""
        with self.database.session() as session:
            return session.get(SyncCursor, CURSOR)

    def age_seconds(self) -> float | None:
        """Seconds since the last pull began; None when the directory was never loaded."""
        cursor = self.cursor()
        if cursor is None or cursor.full_sync_at is None or cursor.refreshed_at is None:
            return None
        self._shared.saw_refresh(cursor.refreshed_at)
        return (self._clock() - cursor.refreshed_at).total_seconds()

    # --- writing ------------------------------------------------------------------------------

    def record(self, members: Iterable[SmaregiMember], *, unless_written: bool = False) -> int:
        """Upsert `members` in one short transaction; an older state never replaces a newer one.

        `unless_written` (the incremental pull): members this process wrote in the same state within
        OVERLAP are left out (their seen_at stays; only the full load, which never leaves any out,
        reads it). Returns the number of members given (distinct), written or not.
        """
        now = self._clock()
        given: dict[str, RowState] = {}
        for member in members:
            key = member.customer_id[:32]
            state = (member.customer_code[:20], member.mail_address, member.updated_at)
            known = given.get(key)
            if known is None or _newer(state[2], known[2]):
                given[key] = state
        written = self._shared.written
        states = written.changed(given, now) if unless_written else given
        if states:
            rows: list[dict[str, Any]] = [
                dict(
                    customer_id=key,
                    customer_code=code,
                    email=directory_email(mail),
                    upd_date_time=at,
                    seen_at=now,
                )
                for key, (code, mail, at) in states.items()
            ]
            written.note(states, now)  # before the commit: a forget committed meanwhile drops it after
            try:
                # Core, not a session: a session's ORM bulk-insert path cost a create as much as its
                # vendor call. One statement, executed for many rows (not a 500-row VALUES clause
                # compiled anew for every page: a full load of 100,000 members spent most of its time
                # compiling those).
                with self.database.engine.begin() as connection:
                    connection.execute(_upsert(connection.dialect.name), rows)
            except BaseException:
                written.drop(states)
                raise
        return len(given)

    def forget(self, customer_ids: Iterable[str]) -> int:
        """Remove the rows of members Smaregi no longer has."""
        ids = list(customer_ids)
        if not ids:
            return 0
        with self.database.engine.begin() as connection:
            result = connection.execute(delete(DirectoryMember).where(DirectoryMember.customer_id.in_(ids)))
            removed = int(result.rowcount or 0)
        self._shared.written.drop(ids)  # after the commit: a write noted meanwhile may be the one removed
        return removed

    # --- what the pipeline step asks -----------------------------------------------------------

    def refresh_if_stale(self, smaregi: SmaregiApi, max_age_seconds: float) -> SyncReport | None:
        """Pull now if the last pull began more than `max_age_seconds` ago (a step never waits)."""
        if self._fresh(max_age_seconds):
            return None
        with self._shared.refreshing:
            if self._fresh(max_age_seconds):  # another thread may have pulled while this one waited
                return None
            return self.pull(smaregi, patient=False)

    def confirm(
        self, smaregi: SmaregiApi, entries: Sequence[DirectoryEntry], email: str
    ) -> list[SmaregiMember]:
        """Re-read `entries` by id: the members that still exist and still hold `email`.

        The directory is an index, Smaregi the truth: a row left by a deleted member or an e-mail
        changed at the till is corrected here rather than linked. Above CONFIRM_AT_MOST entries they
        are taken as they are (a conflict for a person either way).
        """
        if len(entries) > CONFIRM_AT_MOST:
            return [SmaregiMember(e.customer_id, e.customer_code, e.email, None, None) for e in entries]
        wanted = directory_email(email)
        holding: list[SmaregiMember] = []
        for entry in entries:
            member = smaregi.get_member(entry.customer_id)
            if member is None:
                self.forget([entry.customer_id])
                continue
            self.record([member])
            if directory_email(member.mail_address) == wanted:
                holding.append(member)
        return holding

    # --- pulls ---------------------------------------------------------------------------------

    def pull(
        self, smaregi: SmaregiApi, *, patient: bool = True, progress: Callable[[int], None] | None = None
    ) -> SyncReport:
        """An incremental pull from the watermark (minus the overlap), or a full load when needed.

        `progress` is told the number of members read so far after every page (the CLI's counter).
        """
        cursor = self.cursor()
        started = self._clock()
        if cursor is None or cursor.full_sync_at is None or cursor.watermark is None:
            return self.full_load(smaregi, patient=patient, reason="never loaded", progress=progress)
        since = cursor.watermark - OVERLAP
        if started - since > INCREMENTAL_RANGE:
            return self.full_load(
                smaregi, patient=patient, reason="watermark older than 30 days", progress=progress
            )
        report = SyncReport("incremental")
        newest: datetime | None = None
        page = 1
        while True:
            members = self._patiently(
                lambda: smaregi.list_members(
                    page=page,  # noqa: B023 - called at once, within this iteration
                    limit=PAGE_SIZE,
                    updated_from=since,
                    sort=NEWEST_FIRST,
                ),
                patient,
            )
            self.record(members, unless_written=True)
            report.pages += 1
            report.members += len(members)
            if progress is not None:
                progress(report.members)
            newest = _latest(newest, members)
            if len(members) < PAGE_SIZE:
                break
            page += 1
        watermark = self._advance(started, newest, full=False)
        report.watermark = watermark.isoformat() if watermark else None
        report.seconds = round((self._clock() - started).total_seconds(), 3)
        return report

    def full_load(
        self,
        smaregi: SmaregiApi,
        *,
        patient: bool = True,
        reason: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> SyncReport:
        """Every member, page by page (upserted page by page); then the rows of members gone."""
        started = self._clock()
        report = SyncReport("full", reasons=[reason] if reason else [])
        newest: datetime | None = None
        page = 1
        while True:
            # No filter and no sort: Smaregi's own order. A deletion meanwhile can shift a member past
            # a page boundary; the removal below re-reads each unseen row before dropping it.
            members = self._patiently(
                lambda: smaregi.list_members(page=page, limit=PAGE_SIZE),  # noqa: B023 - called at once
                patient,
            )
            self.record(members)
            report.pages += 1
            report.members += len(members)
            if progress is not None:
                progress(report.members)
            newest = _latest(newest, members)
            if len(members) < PAGE_SIZE:
                break
            page += 1
        watermark = self._advance(started, newest, full=True)
        report.watermark = watermark.isoformat() if watermark else None
        report.removed = self._remove_unseen(smaregi, started, patient)
        report.seconds = round((self._clock() - started).total_seconds(), 3)
        return report

    def reread(
        self, smaregi: SmaregiApi, customer_ids: Iterable[str], *, patient: bool = True
    ) -> dict[str, int]:
        """Re-read members by id (the webhook names them): update the rows of those there, drop the rest."""
        counts = {"updated": 0, "removed": 0}
        for customer_id in dict.fromkeys(customer_ids):
            member = self._patiently(lambda: smaregi.get_member(customer_id), patient)  # noqa: B023
            if member is None:
                counts["removed"] += self.forget([customer_id])
            else:
                counts["updated"] += self.record([member])
        return counts

    # --- internals -----------------------------------------------------------------------------

    def _fresh(self, max_age_seconds: float) -> bool:
        """Whether the last pull began at most `max_age_seconds` ago; the cursor is read only when the
        newest refresh this process knows of is older than that."""
        known = self._shared.refreshed_at
        if known is not None and (self._clock() - known).total_seconds() <= max_age_seconds:
            return True
        age = self.age_seconds()
        return age is not None and age <= max_age_seconds

    def _remove_unseen(self, smaregi: SmaregiApi, started: datetime, patient: bool) -> int:
        """Drop rows the full load did not see, once Smaregi confirms each member is gone."""
        removed = 0
        after = ""  # keyset paging: every unseen row is looked at once, whatever happens to it
        while True:
            with self.database.session() as session:
                ids = list(
                    session.scalars(
                        select(DirectoryMember.customer_id)
                        .where(DirectoryMember.seen_at < started, DirectoryMember.customer_id > after)
                        .order_by(DirectoryMember.customer_id)
                        .limit(PAGE_SIZE)
                    )
                )
            if not ids:
                return removed
            removed += self.reread(smaregi, ids, patient=patient)["removed"]
            after = ids[-1]

    def _advance(self, started: datetime, newest: datetime | None, *, full: bool) -> datetime | None:
        """Move the cursor on after a completed pull; the watermark never goes back."""
        if full:
            # A long load misses changes to pages it already read: the next pull starts from when
            # this one began, not from the newest change it happened to see.
            newest = min(newest, started) if newest is not None else started
        with self.database.session() as session:
            _ensure_cursor(session)
            cursor = session.get(SyncCursor, CURSOR, with_for_update=True)
            assert cursor is not None
            if newest is not None and (cursor.watermark is None or newest > cursor.watermark):
                cursor.watermark = newest
            if cursor.refreshed_at is None or started > cursor.refreshed_at:
                cursor.refreshed_at = started
            if full and (cursor.full_sync_at is None or started > cursor.full_sync_at):
                cursor.full_sync_at = started
            watermark, refreshed_at, loaded = cursor.watermark, cursor.refreshed_at, cursor.full_sync_at
        if loaded is not None:
            self._shared.saw_refresh(refreshed_at)  # committed
        return watermark

    def _patiently(self, call: Callable[[], T], patient: bool) -> T:
        """`call()`, waiting out throttling (ours or Smaregi's) up to PATIENCE_SECONDS when `patient`."""
        waited = 0.0
        while True:
            try:
                return call()
            except ThrottledError as error:
                wait = max(error.retry_after or 0.0, 0.05)
                if not patient or waited + wait > PATIENCE_SECONDS:
                    raise
                self._sleep(wait)
                waited += wait


def _newer(candidate: datetime | None, current: datetime | None) -> bool:
    return candidate is None or current is None or candidate >= current


def _latest(newest: datetime | None, members: Iterable[SmaregiMember]) -> datetime | None:
    for member in members:
        if member.updated_at is not None and (newest is None or member.updated_at > newest):
            newest = member.updated_at
    return newest


_UPSERTS: dict[str, Any] = {}


def _upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT: a row's fields change only for a state at least as new as the stored one.

    Built once per dialect (a statement is immutable; building it, and its cache key, costs on every page)."""
    if dialect not in _UPSERTS:
        _UPSERTS[dialect] = _build_upsert(dialect)
    return _UPSERTS[dialect]


def _build_upsert(dialect: str) -> Any:
    statement = dialect_insert(dialect)(DirectoryMember.__table__)
    excluded = statement.excluded
    table = DirectoryMember.__table__.c
    newer = or_(
        table.upd_date_time.is_(None),
        excluded.upd_date_time.is_(None),
        excluded.upd_date_time >= table.upd_date_time,
    )
    changes = {
        name: case((newer, getattr(excluded, name)), else_=getattr(table, name))
        for name in ("customer_code", "email", "upd_date_time")
    }
    return statement.on_conflict_do_update(
        index_elements=[table.customer_id], set_={**changes, "seen_at": excluded.seen_at}
    )


def _ensure_cursor(session: Session) -> None:
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(insert(SyncCursor).values(name=CURSOR).on_conflict_do_nothing())
