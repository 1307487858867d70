"""Shopify's search syntax for `customers(query:)`, the part our connector and reconciler use.

Supported: `field:value`, `field:"quoted value"`, comparisons `field:>v` `:>=` `:<` `:<=`, implicit and
explicit AND, OR between terms (no parentheses), negation with `-` or NOT, `*` as a trailing wildcard,
and bare words (matched against name and email). Fields: email, first_name, last_name, phone, id,
state, tag, tag_not, updated_at, customer_date (creation). Shopify ignores a filter on a field it does
not know and reports a warning under `extensions.search`; so do we (the exact warning shape is
UNCONFIRMED).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.shopify.customers import normalise_email, normalise_phone

_TERM = re.compile(
    r"""(?P<negated>-)?
        (?:(?P<field>[A-Za-z_]+):(?P<comparator><=|>=|<|>)?)?
        (?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s"']+))""",
    re.VERBOSE,
)

KNOWN_FIELDS = {
    "email",
    "first_name",
    "last_name",
    "phone",
    "id",
    "state",
    "tag",
    "tag_not",
    "updated_at",
    "customer_date",
}


@dataclass(frozen=True)
class Term:
    """One `field:value` (field None for a bare word)."""

    field: str | None
    value: str
    comparator: str = ""
    negated: bool = False


@dataclass
class SearchQuery:
    """A parsed query: OR of AND-groups, plus warnings about fields we ignored."""

    groups: list[list[Term]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def exact_email(self) -> str | None:
        """The one email every match must have, when the query pins it (so the email index can answer)."""
        if len(self.groups) != 1:
            return None
        for term in self.groups[0]:
            if term.field == "email" and not term.negated and not term.comparator and "*" not in term.value:
                return term.value
        return None

    def matches(self, customer: dict[str, Any]) -> bool:
        """Whether a customer record satisfies the query (an empty query matches everyone)."""
        if not self.groups:
            return True
        return any(all(_term_matches(term, customer) for term in group) for group in self.groups)


def parse_search(query: str | None) -> SearchQuery:
    """Parse a customers search query; never raises (Shopify answers odd syntax with fewer matches)."""
    parsed = SearchQuery()
    group: list[Term] = []
    negate_next = False
    for match in _TERM.finditer(query or ""):
        value = next(part for part in (match["double"], match["single"], match["bare"]) if part is not None)
        if match["field"] is None and value in {"AND", "OR", "NOT"}:
            if value == "OR" and group:
                parsed.groups.append(group)
                group = []
            negate_next = value == "NOT"
            continue
        name = match["field"].lower() if match["field"] else None
        if name is not None and name not in KNOWN_FIELDS:
            parsed.warnings.append({"field": name, "message": "Invalid search field for this query."})
            continue
        group.append(Term(name, value, match["comparator"] or "", bool(match["negated"]) or negate_next))
        negate_next = False
    if group:
        parsed.groups.append(group)
    return parsed


def _term_matches(term: Term, customer: dict[str, Any]) -> bool:
    return _positive_match(term, customer) != term.negated


def _text_matches(pattern: str, text: str | None) -> bool:
    if text is None:
        return False
    pattern, text = pattern.lower(), text.lower()
    if pattern.endswith("*"):
        return text.startswith(pattern[:-1])
    return text == pattern


def _positive_match(term: Term, customer: dict[str, Any]) -> bool:
    matchers: dict[str | None, Callable[[], bool]] = {
        None: lambda: any(
            term.value.lower().rstrip("*") in (customer.get(name) or "").lower()
            for name in ("email", "firstName", "lastName")
        ),
        "email": lambda: _text_matches(normalise_email(term.value), customer.get("email")),
        "first_name": lambda: _text_matches(term.value, customer.get("firstName")),
        "last_name": lambda: _text_matches(term.value, customer.get("lastName")),
        "phone": lambda: (
            customer.get("phone") is not None and customer.get("phone") == normalise_phone(term.value)
        ),
        "state": lambda: customer["state"] == term.value.upper(),
        "tag": lambda: term.value.lower() in (tag.lower() for tag in customer["tags"]),
        "tag_not": lambda: term.value.lower() not in (tag.lower() for tag in customer["tags"]),
        "id": lambda: _compare(int(customer["legacyResourceId"]), term.comparator, _as_int(term.value)),
        "updated_at": lambda: _compare_time(customer["updatedAt"], term),
        "customer_date": lambda: _compare_time(customer["createdAt"], term),
    }
    return matchers[term.field]()


def _as_int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _compare(actual: Any, comparator: str, expected: Any) -> bool:
    if expected is None:
        return False
    return {
        "": actual == expected,
        ">": actual > expected,
        ">=": actual >= expected,
        "<": actual < expected,
        "<=": actual <= expected,
    }[comparator]


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _compare_time(stored: str, term: Term) -> bool:
    actual, expected = _parse_time(stored), _parse_time(term.value)
    if actual is None or expected is None:
        return False
    if not term.comparator and len(term.value) == 10:
        return actual.date() == expected.date()  # updated_at:2025-01-31 means that whole day
    return _compare(actual, term.comparator, expected)
