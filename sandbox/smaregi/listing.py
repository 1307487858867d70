"""GET /pos/customers: the filters, sort and paging Smaregi documents, and nothing else.

Filters that third-party documentation lists (no official page lists an e-mail, name or phone
filter): `customer_code` (exact), `customer_no` (exact), `customer_id-from` / `customer_id-to`,
`upd_date_time-from` / `upd_date_time-to` (ISO 8601 with an offset; a range of at most 31 days).
Any other query parameter is ignored, as APIs commonly ignore filters they do not know: a client
that sends `mail_address=` gets every member back, not the ones with that address. Paging is by
`page` and `limit` (1-1000, default 100) with no Link header: a short page is the last.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.common import Record

JST = datetime.timezone(datetime.timedelta(hours=9), "JST")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_RANGE = datetime.timedelta(days=31)
SORTABLE = {"customerId": lambda m: int(m["customerId"]), "customerCode": lambda m: m["customerCode"] or ""}


class ListingError(ValueError):
    """A query the API refuses (400): `name` is the parameter."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Listing:
    """A parsed list query."""

    page: int
    limit: int
    customer_code: str | None = None
    customer_no: str | None = None
    id_from: int | None = None
    id_to: int | None = None
    updated_from: datetime.datetime | None = None
    updated_to: datetime.datetime | None = None
    sort: tuple[tuple[str, bool], ...] = ()  # (field, descending)

    @classmethod
    def parse(cls, args: Mapping[str, str], now: datetime.datetime) -> Listing:
        """The query of `args`; unknown parameters are ignored, bad known ones raise ListingError."""
        limit = _positive_int(args, "limit", DEFAULT_PAGE_SIZE)
        if limit > MAX_PAGE_SIZE:
            raise ListingError("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        updated_from = _time(args, "upd_date_time-from")
        updated_to = _time(args, "upd_date_time-to")
        if updated_to is not None and updated_from is None:
            raise ListingError("upd_date_time-from", "is required with upd_date_time-to (31 days at most)")
        # Without an end, the range ends now.
        if updated_from is not None and (updated_to or now) - updated_from > MAX_RANGE:
            raise ListingError("upd_date_time-from", "and upd_date_time-to may span 31 days at most")
        return cls(
            page=_positive_int(args, "page", 1),
            limit=limit,
            customer_code=args.get("customer_code"),
            customer_no=args.get("customer_no"),
            id_from=_optional_int(args, "customer_id-from"),
            id_to=_optional_int(args, "customer_id-to"),
            updated_from=updated_from,
            updated_to=updated_to,
            sort=_sort(args.get("sort")),
        )

    @property
    def filtered(self) -> bool:
        """Whether any filter or sort applies (else the page is a plain slice of every member)."""
        return any(
            value is not None
            for value in (
                self.customer_code,
                self.customer_no,
                self.id_from,
                self.id_to,
                self.updated_from,
                self.updated_to,
            )
        ) or bool(self.sort)

    def select(self, members: Iterable[Record]) -> list[Record]:
        """The members on this query's page."""
        return one_page(
            [member for member in members if self._matches(member)],
            self.sort,
            _SORT_KEYS,
            self.page,
            self.limit,
        )

    def _matches(self, member: Record) -> bool:
        if self.customer_code is not None and member.get("customerCode") != self.customer_code:
            return False
        if self.customer_no is not None and member.get("customerNo") != self.customer_no:
            return False
        number = int(member["customerId"])
        if (self.id_from is not None and number < self.id_from) or (
            self.id_to is not None and number > self.id_to
        ):
            return False
        if self.updated_from is not None or self.updated_to is not None:
            updated = parse_time(member.get("updDateTime"))
            if updated is None:
                return False
            if self.updated_from is not None and updated < self.updated_from:
                return False
            if self.updated_to is not None and updated > self.updated_to:
                return False
        return True


def one_page(
    chosen: list[Record],
    sort: Iterable[tuple[str, bool]],
    keys: Mapping[str, Any],
    page: int,
    limit: int,
) -> list[Record]:
    """Page `page` (from 1) of `limit` records of `chosen`, sorted by each (field, descending) of
    `sort` in turn, as every Smaregi list endpoint pages (page numbers, no cursor)."""
    for name, descending in reversed(list(sort)):
        chosen.sort(key=keys[name], reverse=descending)
    start = (page - 1) * limit
    return chosen[start : start + limit]


def parse_time(value: Any) -> datetime.datetime | None:
    """An ISO 8601 time (Japan time when it has no offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


_SORT_KEYS: dict[str, Any] = {
    **SORTABLE,
    "updDateTime": lambda m: parse_time(m.get("updDateTime")) or datetime.datetime.min.replace(tzinfo=JST),
}


def _positive_int(args: Mapping[str, str], name: str, default: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ListingError(name, "must be a positive integer")
    return int(text)


def _optional_int(args: Mapping[str, str], name: str) -> int | None:
    text = args.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise ListingError(name, "must be a customer id (digits)")
    return int(text)


def _time(args: Mapping[str, str], name: str) -> datetime.datetime | None:
    text = args.get(name)
    if text is None:
        return None
    parsed = parse_time(text)
    if parsed is None or "T" not in text:
        raise ListingError(name, "must be an ISO 8601 date-time such as 2026-11-29T10:00:00+09:00")
    return parsed


def _sort(text: str | None) -> tuple[tuple[str, bool], ...]:
    """`sort=updDateTime:desc,customerId` → ((updDateTime, True), (customerId, False))."""
    if not text:
        return ()
    keys = []
    for part in text.split(","):
        name, _, direction = part.strip().partition(":")
        if name not in _SORT_KEYS or direction not in ("", "asc", "desc"):
            raise ListingError("sort", "must be field[:asc|desc] of customerId, customerCode, updDateTime")
        keys.append((name, direction == "desc"))
    return tuple(keys)
