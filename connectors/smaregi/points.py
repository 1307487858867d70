"""Smaregi points as Membersync reads them: the answer of a movement, and point transactions.

Facts from Smaregi's reference pages: `POST /pos/customers/{id}/point/add` is relative (string
values, a negative one subtracts, a subtraction below zero is refused), has no idempotency key, and
answers `{customerId, point, mile, pointExpireDate, updDateTime, transactionHeadIds}`. Every movement
is a transaction (取引区分 transactionHeadDivision 6 ポイント加算, 7 ポイント減算, 8 ポイント失効), listed
by `GET /pos/transactions` with a period filter of at most 31 days.

UNCONFIRMED: which field of a transaction carries the points it moved. We read `point` (the amount,
unsigned: the division says the direction) and treat a transaction without a readable amount as a
possible match (see `registrations.points`), so that not knowing never makes us send twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.smaregi.members import parse_int, parse_time

# 取引区分 (transactionHeadDivision) of point movements.
POINTS_ADDED = "6"
POINTS_SUBTRACTED = "7"
POINTS_EXPIRED = "8"
POINT_DIVISIONS = frozenset({POINTS_ADDED, POINTS_SUBTRACTED, POINTS_EXPIRED})
# PATCH /pos/customers/point/bulk takes at most this many members per request, and a callbackUrl of
# at most 511 characters matching this pattern (official).
MAX_BULK_POINTS = 100
MAX_CALLBACK_URL = 511
CALLBACK_URL = re.compile(r"https?://\S+")
# The largest balance a member can hold (official: point <= 999999999).
MAX_POINT = 999_999_999


def movement_division(points: int) -> str:
    """The 取引区分 a movement of `points` is recorded under: 6 for an addition, 7 for a subtraction."""
    if points == 0:
        raise ValueError("a point movement moves at least one point")
    return POINTS_ADDED if points > 0 else POINTS_SUBTRACTED


@dataclass(frozen=True)
class PointBalance:
    """An absolute balance to set through the asynchronous bulk (one `customerPoints` entry)."""

    customer_id: str
    point: int
    expire_date: date | None = None  # pointExpireDate; None leaves it as it is

    def __post_init__(self) -> None:
        if not self.customer_id.isdigit():
            raise ValueError("customer_id must be a Smaregi customerId (digits)")
        if not 0 <= self.point <= MAX_POINT:
            raise ValueError(f"point must be 0 to {MAX_POINT}")

    def as_api(self) -> dict[str, str]:
        """The entry as Smaregi takes it: every value a string."""
        entry = {"customerId": self.customer_id, "point": str(self.point)}
        if self.expire_date is not None:
            entry["pointExpireDate"] = self.expire_date.isoformat()
        return entry


@dataclass(frozen=True)
class PointMovementResult:
    """Smaregi's answer to one point/add: the balance after it and the transactions it made."""

    customer_id: str
    point: int | None  # the balance after the movement
    transaction_head_ids: tuple[str, ...]
    updated_at: datetime | None = None
    point_expire_date: str | None = None

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> PointMovementResult:
        """The movement from the answer's JSON object."""
        ids = record.get("transactionHeadIds") or []
        return cls(
            customer_id=str(record["customerId"]),
            point=parse_int(_text(record, "point")),
            transaction_head_ids=tuple(str(item) for item in ids) if isinstance(ids, list) else (),
            updated_at=parse_time(_text(record, "updDateTime")),
            point_expire_date=_text(record, "pointExpireDate") or None,
        )


@dataclass(frozen=True)
class PointTransaction:
    """One transaction of a member that moved points (division 6, 7 or 8)."""

    transaction_head_id: str
    division: str
    customer_id: str | None
    point: int | None  # the points it moved, unsigned (UNCONFIRMED field; None when unreadable)
    transacted_at: datetime | None  # transactionDateTime: when Smaregi received it

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> PointTransaction:
        """The transaction from one object of GET /pos/transactions."""
        amount = parse_int(_text(record, "point"))
        return cls(
            transaction_head_id=str(record["transactionHeadId"]),
            division=str(record.get("transactionHeadDivision") or ""),
            customer_id=_text(record, "customerId"),
            point=abs(amount) if amount is not None else None,
            transacted_at=parse_time(_text(record, "transactionDateTime")),
        )


def _text(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    return None if value is None else str(value)
