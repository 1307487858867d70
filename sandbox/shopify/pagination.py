"""Relay-style connections (edges, nodes, pageInfo) with Shopify-like opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any

from graphql import GraphQLError

# Shopify refuses pages larger than 250 items.
MAX_PAGE_SIZE = 250

SortKey = tuple[Any, int]


def encode_cursor(key: SortKey) -> str:
    """An opaque cursor for an item's sort position (base64 JSON, as Shopify's cursors look)."""
    value, item_id = key
    return base64.b64encode(json.dumps({"last_id": item_id, "last_value": value}).encode()).decode()


def decode_cursor(cursor: str) -> SortKey:
    """The sort position a cursor stands for; GraphQLError if it is not one of ours."""
    try:
        position = json.loads(base64.b64decode(cursor, validate=True))
        return position["last_value"], int(position["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}") from exc


def check_page_size(first: int | None, last: int | None) -> None:
    """Shopify's rules: exactly one of first/last, at most 250."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    if first is not None and last is not None:
        raise GraphQLError("providing both first and last is not supported")
    size = first if first is not None else last
    assert size is not None
    if size < 0:
        raise GraphQLError("first and last must not be negative")
    if size > MAX_PAGE_SIZE:
        raise GraphQLError(f"The maximum number of items per page is {MAX_PAGE_SIZE}")


def build_connection(
    page: Sequence[Any], key_of: Callable[[Any], SortKey], *, has_next: bool, has_previous: bool
) -> dict[str, Any]:
    """The connection object graphql-core resolves edges, nodes and pageInfo from."""
    cursors = [encode_cursor(key_of(item)) for item in page]
    return {
        "edges": [{"cursor": cursor, "node": item} for cursor, item in zip(cursors, page, strict=True)],
        "nodes": list(page),
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def slice_connection(
    ordered: Sequence[Any],
    key_of: Callable[[Any], SortKey],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    descending: bool = False,
) -> dict[str, Any]:
    """The Relay pagination algorithm over an already ordered list (ascending or descending keys)."""

    def beyond(key: SortKey, cursor: SortKey) -> bool:
        try:
            return key < cursor if descending else key > cursor
        except TypeError as exc:  # a cursor made under another sortKey
            raise GraphQLError("Invalid cursor for current pagination sort.") from exc

    start, end = 0, len(ordered)
    if after is not None:
        after_key = decode_cursor(after)
        start = next((index for index, item in enumerate(ordered) if beyond(key_of(item), after_key)), end)
    if before is not None:
        before_key = decode_cursor(before)
        end = next(
            (index for index in range(start, end) if not beyond(before_key, key_of(ordered[index]))), end
        )
    window = ordered[start:end]
    has_next, has_previous = end < len(ordered), start > 0
    if first is not None:
        has_next = has_next or len(window) > first
        window = window[:first]
    if last is not None:
        has_previous = has_previous or len(window) > last
        window = window[max(0, len(window) - last) :]
    return build_connection(window, key_of, has_next=has_next, has_previous=has_previous)
