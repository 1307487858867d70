"""What the ops console reads: counts, sync-time percentiles, finders, pages (the audit trail's; the
dead letters are read through `registrations.dead_letters`).

Read-only queries that work the same on SQLite and PostgreSQL; anything a portable SQL expression
cannot say (percentiles) is computed in Python over a bounded query.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from config.email_address import canonical_email
from registrations.models import (
    DeadLetter,
    OpsAuditEntry,
    ReconciliationRun,
    Registration,
    utcnow,
)
from registrations.states import ReconciliationStatus, RegistrationStatus

# Every percentile of the overview is computed over at most this many synced registrations (the
# newest): enough for a stable p99, bounded in memory whatever the day's volume.
SYNC_TIME_SAMPLE = 20_000
PAGE_SIZE = 50


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def registrations_by_status(session: Session) -> dict[str, int]:
    """How many registrations are in each status (every status listed, zero included)."""
    counts = dict.fromkeys((status.value for status in RegistrationStatus), 0)
    for status, count in session.execute(
        select(Registration.status, func.count()).group_by(Registration.status)
    ):
        counts[status] = count
    return counts


@dataclass(frozen=True)
class SyncTimes:
    """Seconds from acceptance to synced over a window: how many, and p50 / p90 / p99."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None


def time_to_synced(session: Session, *, window: timedelta = timedelta(hours=24)) -> SyncTimes:
    """Percentiles of created_at → updated_at of the registrations that became synced in `window`."""
    since = utcnow() - window
    rows = session.execute(
        select(Registration.created_at, Registration.updated_at)
        .where(Registration.status == RegistrationStatus.SYNCED, Registration.updated_at >= since)
        .order_by(Registration.updated_at.desc())
        .limit(SYNC_TIME_SAMPLE)
    )
    seconds = sorted(max(0.0, (updated - created).total_seconds()) for created, updated in rows)
    return SyncTimes(
        count=len(seconds),
        p50=percentile(seconds, 0.50),
        p90=percentile(seconds, 0.90),
        p99=percentile(seconds, 0.99),
    )


def last_reconciliation_run(session: Session) -> ReconciliationRun | None:
    """The most recently started reconciliation run, if there was one."""
    return session.scalar(select(ReconciliationRun).order_by(ReconciliationRun.started_at.desc()).limit(1))


def last_reconciliation_report(session: Session) -> ReconciliationRun | None:
    """The most recent reconciliation run that ended having done its work (a skipped one did none)."""
    return session.scalar(
        select(ReconciliationRun)
        .where(
            ReconciliationRun.status != ReconciliationStatus.SKIPPED,
            ReconciliationRun.finished_at.is_not(None),
        )
        .order_by(ReconciliationRun.started_at.desc())
        .limit(1)
    )


def registration_with_steps(session: Session, registration_id: str) -> Registration | None:
    """One registration with its steps loaded; None for an unknown or malformed id."""
    try:
        key = str(uuid.UUID(registration_id.strip()))
    except ValueError:
        return None
    return session.scalar(
        select(Registration).where(Registration.id == key).options(selectinload(Registration.steps))
    )


def registrations_by_email(session: Session, address: str, *, limit: int = PAGE_SIZE) -> list[Registration]:
    """The registrations made with `address` (canonical, as the intake stores it), newest first."""
    return list(
        session.scalars(
            select(Registration)
            .where(Registration.email == canonical_email(address))
            .order_by(Registration.created_at.desc())
            .limit(limit)
        )
    )


def dead_letters_of(session: Session, registration_id: str) -> list[DeadLetter]:
    """Every dead letter of one registration, newest first."""
    return list(
        session.scalars(
            select(DeadLetter)
            .where(DeadLetter.registration_id == registration_id)
            .order_by(DeadLetter.id.desc())
        )
    )


@dataclass(frozen=True)
class Page:
    """One page of a newest-first list, and whether there is a next one."""

    rows: list[Any]
    number: int
    has_next: bool


def audit_page(session: Session, *, number: int = 1) -> Page:
    """One page of the ops audit trail, newest first."""
    query = select(OpsAuditEntry).order_by(OpsAuditEntry.at.desc(), OpsAuditEntry.id.desc())
    return page_of(session, query, number)


def page_of(session: Session, query: Any, number: int) -> Page:
    """Page `number` (from 1) of the ordered `query`, PAGE_SIZE rows."""
    number = max(1, number)
    rows = list(session.scalars(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return Page(rows=rows[:PAGE_SIZE], number=number, has_next=len(rows) > PAGE_SIZE)
