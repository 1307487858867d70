"""Sync health over a time range, from the database alone: per vendor the last successful call, how
many steps succeeded and were dead-lettered (the error rate), the dead letters per reason with what
to do about them, and the dead letters over time for the chart.

"Last successful call" is the newest step that succeeded in that system, or the newest vendor change
(webhook delivery) applied from it; both are our own records of a vendor answering yes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registrations.advice import advice
from registrations.dead_letters import REASON_PREFIX_CHARS, REASON_SAMPLE, dead_letter_reason
from registrations.models import Change, DeadLetter, SyncStep, utcnow
from registrations.states import ChangeState, StepState


@dataclass(frozen=True)
class TimeRange:
    """A range the page offers: its length and the width of one bar of the chart."""

    name: str
    length: timedelta
    bucket: timedelta
    bucket_label: str

    @property
    def buckets(self) -> int:
        return int(self.length / self.bucket)


RANGES = {
    "1h": TimeRange("1h", timedelta(hours=1), timedelta(minutes=5), "5 minutes"),
    "24h": TimeRange("24h", timedelta(hours=24), timedelta(hours=1), "hour"),
    "7d": TimeRange("7d", timedelta(days=7), timedelta(hours=6), "6 hours"),
}
DEFAULT_RANGE = "24h"


@dataclass(frozen=True)
class ReasonCount:
    """Dead letters of one reason in the range, and what to do about them."""

    reason: str
    count: int
    advice: str


@dataclass
class VendorHealth:
    """One system over the range."""

    system: str
    last_success: datetime | None = None
    succeeded: int = 0
    dead_letters: int = 0
    reasons: list[ReasonCount] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        """Dead-lettered steps as a share of the steps that ended in the range; None when none did."""
        ended = self.succeeded + self.dead_letters
        return self.dead_letters / ended if ended else None


@dataclass(frozen=True)
class SyncHealth:
    """Every system's health over `range`, and the dead letters per bar of the chart (oldest first)."""

    range: TimeRange
    since: datetime
    vendors: dict[str, VendorHealth]
    # One Counter per bar: dead letters by system.
    bars: list[Counter[str]]


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive values; every time we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def sync_health(
    session: Session,
    systems: tuple[str, ...],
    range_name: str = DEFAULT_RANGE,
    *,
    now: datetime | None = None,
) -> SyncHealth:
    """The health of `systems` over the range `range_name` (one of RANGES) ending `now`."""
    chosen = RANGES.get(range_name, RANGES[DEFAULT_RANGE])
    end = now or utcnow()
    since = end - chosen.length
    vendors = {system: VendorHealth(system) for system in systems}

    last_steps = session.execute(
        select(SyncStep.system, func.max(SyncStep.updated_at))
        .where(SyncStep.state == StepState.SUCCEEDED)
        .group_by(SyncStep.system)
    )
    last_changes = session.execute(
        select(Change.source, func.max(Change.finished_at))
        .where(Change.state == ChangeState.APPLIED)
        .group_by(Change.source)
    )
    for system, moment in [*last_steps, *last_changes]:
        if system in vendors and isinstance(moment, datetime):
            current = vendors[system].last_success
            vendors[system].last_success = max(_aware(moment), current) if current else _aware(moment)

    succeeded = session.execute(
        select(SyncStep.system, func.count())
        .where(SyncStep.state == StepState.SUCCEEDED, SyncStep.updated_at >= since)
        .group_by(SyncStep.system)
    )
    for system, count in succeeded:
        if system in vendors:
            vendors[system].succeeded = count

    letters = session.execute(
        select(
            DeadLetter.system,
            func.substr(DeadLetter.message, 1, REASON_PREFIX_CHARS),
            DeadLetter.last_failed_at,
        )
        .where(DeadLetter.last_failed_at >= since)
        .order_by(DeadLetter.last_failed_at.desc())
        .limit(REASON_SAMPLE)
    ).all()
    bars: list[Counter[str]] = [Counter() for _ in range(chosen.buckets)]
    reasons: dict[str, Counter[str]] = {system: Counter() for system in vendors}
    for letter_system, prefix, failed_at in letters:
        if letter_system not in vendors:
            continue
        vendors[letter_system].dead_letters += 1
        reasons[letter_system][dead_letter_reason(str(prefix))] += 1
        index = int((_aware(cast(datetime, failed_at)) - since) / chosen.bucket)
        bars[min(max(index, 0), chosen.buckets - 1)][letter_system] += 1
    for system, counted in reasons.items():
        vendors[system].reasons = [
            ReasonCount(reason, count, advice(system, reason)) for reason, count in counted.most_common()
        ]
    return SyncHealth(chosen, since, vendors, bars)
