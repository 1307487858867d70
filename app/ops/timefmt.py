"""Times in the ops console: in the shop's time zone (SHOP_TIMEZONE, default Asia/Tokyo), always with
the zone's abbreviation and UTC offset, so nobody reads a Tokyo time as UTC or the reverse.

Every time is stored in UTC (registrations.models.DateTime); this is the one place that turns one
into what a person reads. The templates use it as the `ops_time` filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

NO_TIME = "—"


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def shop_time(moment: datetime | None, zone_name: str) -> str:
    """`moment` in `zone_name` as "2026-12-07 03:42:28 JST (UTC+09:00)"; "—" for None.

    A naive value is taken as UTC (what SQLite gives back without the column type's help).
    """
    if moment is None:
        return NO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(_zone(zone_name))
    offset = local.strftime("%z")  # "+0900"
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} (UTC{offset[:3]}:{offset[3:]})"
