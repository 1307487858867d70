"""What the ops console reads from a request (ids, page numbers, typed text), checked so that no value
a person or a crafted link sends can reach the database as something it cannot hold.

A dead letter's number is a database integer (PostgreSQL `integer`: at most 2³¹ − 1) and a page number
becomes an OFFSET: a thirty-digit number, a superscript "²" (a digit to Python's isdigit, not to
int()) or a page past the end of any table is answered as "nothing there", never a 500.
"""

from __future__ import annotations

import re

from flask import abort, request

from app.text import character_problem, text_problem
from registrations.ops_queries import PAGE_SIZE

# The largest value of the `integer` columns that number dead letters (PostgreSQL's and SQLite's).
MAX_RECORD_NUMBER = 2**31 - 1
# The last page whose OFFSET still fits an integer: beyond it there cannot be rows.
MAX_PAGE = MAX_RECORD_NUMBER // PAGE_SIZE
_ASCII_NUMBER = re.compile(r"[0-9]{1,10}")
_DIGITS = re.compile(r"[0-9]+")


def record_number(raw: str | None) -> int | None:
    """`raw` as a dead-letter number when it is one that can exist, else None."""
    text = (raw or "").strip()
    if not _ASCII_NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if 0 < number <= MAX_RECORD_NUMBER else None


def page_number() -> int:
    """The `page` query parameter (1 when absent or not a number); 404 past the last possible page."""
    raw = request.args.get("page", "").strip()
    if not _DIGITS.fullmatch(raw):
        return 1
    # Compared as text first: int() of thousands of digits is refused by Python itself.
    if len(raw.lstrip("0")) > len(str(MAX_PAGE)) or int(raw) > MAX_PAGE:
        abort(404)
    return max(1, int(raw))


def field_problem(label: str, value: str) -> str | None:
    """A message naming the field `label` when `value` holds a character no text field accepts."""
    problem = text_problem(value)
    if problem is None:
        return None
    return f"{label}: {problem[0].lower()}{problem[1:]}"


def shown_as_typed(value: str) -> str:
    """`value` with each refused character written as its code point (U+202E shows as "\\u202e"):
    for what the console must keep although a stranger typed it (a refused sign-in's username)."""
    if text_problem(value) is None:
        return value
    return "".join(f"\\u{ord(ch):04x}" if character_problem(ch) else ch for ch in value)
