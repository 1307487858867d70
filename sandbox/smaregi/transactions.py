"""Point transactions (取引) as Smaregi records them, and GET /pos/transactions over them.

Every point movement is a transaction with its own transactionHeadId (取引区分 transactionHeadDivision
6 ポイント加算, 7 ポイント減算, 8 ポイント失効), the member's customerId and customerCode, the points moved
(`point`, unsigned: the division says the direction; which field Smaregi uses is UNCONFIRMED) and
`transactionDateTime` (when Smaregi received it). Sales at the till are transactions too; the emulator
only makes the point ones.

The list takes what Smaregi's reference page documents: `page`, `limit`, `sort` (transactionHeadId,
transactionDateTime, transactionHeadDivision, customerId, each `:desc` optional),
`transaction_head_id-from` / `-to` and the period `transaction_date_time-from` / `-to` (required here:
the page requires one period filter, at most 31 days). `customer_code` and `transaction_head_division`
are named by a third party only. Other parameters are ignored, as for members.
"""

from __future__ import annotations

import datetime
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.common import Record
from sandbox.smaregi.listing import JST, MAX_PAGE_SIZE, MAX_RANGE, ListingError, one_page, parse_time

POINTS_ADDED, POINTS_SUBTRACTED, POINTS_EXPIRED = "6", "7", "8"
DEFAULT_PAGE_SIZE = 100
_SORT_KEYS: dict[str, Any] = {
    "transactionHeadId": lambda t: int(t["transactionHeadId"]),
    "transactionDateTime": lambda t: parse_time(t["transactionDateTime"]),
    "transactionHeadDivision": lambda t: t["transactionHeadDivision"],
    "customerId": lambda t: int(t["customerId"]),
}


class TransactionLog:
    """Every transaction of the contract, in the order Smaregi received them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._ids = itertools.count(1)

    def record(self, member: Record, division: str, point: int) -> Record:
        """A new transaction of `member` moving `point` (unsigned) under `division`."""
        with self._lock:
            transaction = {
                "transactionHeadId": str(next(self._ids)),
                "transactionDateTime": datetime.datetime.now(JST).isoformat(timespec="seconds"),
                "transactionHeadDivision": division,
                "cancelDivision": "0",
                "customerId": member["customerId"],
                "customerCode": member.get("customerCode"),
                "point": str(point),
            }
            self._records.append(transaction)
            return dict(transaction)

    def all(self) -> list[Record]:
        with self._lock:
            return [dict(record) for record in self._records]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._ids = itertools.count(1)


@dataclass(frozen=True)
class TransactionQuery:
    """A parsed GET /pos/transactions query."""

    page: int
    limit: int
    received_from: datetime.datetime
    received_to: datetime.datetime | None
    id_from: int | None = None
    id_to: int | None = None
    customer_code: str | None = None
    division: str | None = None
    sort: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def parse(cls, args: Mapping[str, str], now: datetime.datetime) -> TransactionQuery:
        """The query of `args`; a missing period or a bad known parameter raises ListingError."""
        received_from = _time(args, "transaction_date_time-from")
        received_to = _time(args, "transaction_date_time-to")
        if received_from is None:
            raise ListingError("transaction_date_time-from", "is required (a period of 31 days at most)")
        if (received_to or now) - received_from > MAX_RANGE:
            raise ListingError("transaction_date_time-from", "and -to may span 31 days at most")
        limit = _int(args, "limit", DEFAULT_PAGE_SIZE)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ListingError("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        page = _int(args, "page", 1)
        if page < 1:
            raise ListingError("page", "must be a positive integer")
        id_from = _int(args, "transaction_head_id-from", None)
        id_to = _int(args, "transaction_head_id-to", None)
        return cls(
            page=page,
            limit=limit,
            received_from=received_from,
            received_to=received_to,
            id_from=id_from,
            id_to=id_to,
            customer_code=args.get("customer_code"),
            division=args.get("transaction_head_division"),
            sort=_sort(args.get("sort")),
        )

    def select(self, transactions: list[Record]) -> list[Record]:
        """The transactions on this query's page."""
        chosen = [transaction for transaction in transactions if self._matches(transaction)]
        return one_page(chosen, self.sort, _SORT_KEYS, self.page, self.limit)

    def _matches(self, transaction: Record) -> bool:
        received = parse_time(transaction["transactionDateTime"])
        number = int(transaction["transactionHeadId"])
        return (
            received is not None
            and received >= self.received_from
            and (self.received_to is None or received <= self.received_to)
            and (self.id_from is None or number >= self.id_from)
            and (self.id_to is None or number <= self.id_to)
            and (self.customer_code is None or transaction.get("customerCode") == self.customer_code)
            and (self.division is None or transaction["transactionHeadDivision"] == self.division)
        )


def _time(args: Mapping[str, str], name: str) -> datetime.datetime | None:
    text = args.get(name)
    if text is None:
        return None
    parsed = parse_time(text)
    if parsed is None or "T" not in text:
        raise ListingError(name, "must be an ISO 8601 date-time such as 2026-11-29T10:00:00+09:00")
    return parsed


def _int(args: Mapping[str, str], name: str, default: int | None) -> Any:
    text = args.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise ListingError(name, "must be a whole number")
    return int(text)


def _sort(text: str | None) -> tuple[tuple[str, bool], ...]:
    if not text:
        return ()
    keys = []
    for part in text.split(","):
        name, _, direction = part.strip().partition(":")
        if name not in _SORT_KEYS or direction not in ("", "asc", "desc"):
            raise ListingError("sort", f"must be field[:asc|desc] of {', '.join(_SORT_KEYS)}")
        keys.append((name, direction == "desc"))
    return tuple(keys)
