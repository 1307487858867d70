"""The nightly reconciliation's place in Celery: beat at the configured local time, the bulk queue."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config.celery import BULK_QUEUE, celery_config

# remaining_estimate ends a moment before the minute (it counts from a `now` read a moment later).
SECOND = timedelta(seconds=1)


def test_beat_starts_it_at_the_local_time_of_the_configured_zone(make_settings: Any) -> None:
    config = celery_config(make_settings(RECONCILE_AT="03:30", RECONCILE_TIMEZONE="Asia/Tokyo"))
    entry = config["beat_schedule"]["reconciliation"]
    assert entry["task"] == "membersync.reconcile"
    schedule = entry["schedule"]
    tokyo = ZoneInfo("Asia/Tokyo")
    now = datetime.now(UTC)  # beat's own clock
    following = (now + schedule.remaining_estimate(now) + SECOND).astimezone(tokyo)
    assert following.strftime("%H:%M") == "03:30"  # 18:30 UTC, not 03:30 UTC
    stored = pickle.loads(pickle.dumps(schedule))  # beat's schedule file keeps it, zone included
    assert (now + stored.remaining_estimate(now) + SECOND).astimezone(tokyo).strftime("%H:%M") == "03:30"


def test_it_runs_on_the_bulk_queue(make_settings: Any) -> None:
    assert celery_config(make_settings())["task_routes"]["membersync.reconcile"] == {"queue": BULK_QUEUE}
