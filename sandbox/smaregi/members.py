"""Smaregi member (会員) field rules: what POST and PATCH /pos/customers accept."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# Full-width katakana (including ヴ, the middle dot and the long-vowel mark ー) and spaces.
_KATAKANA = re.compile(r"[\u30a0-\u30ff\u3000 ]*")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_INTEGER = re.compile(r"-?[0-9]+")


def _is_date(value: str) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value) is not None


@dataclass(frozen=True)
class FieldRule:
    """One member field: its length limit and what its (string) value must look like."""

    max_length: int
    required: bool = False
    check: Callable[[str], bool] | None = None
    expectation: str = ""


# Smaregi's rules: required fields, customerCode ≤20 printable ASCII, names ≤85, postCode ≤10, address
# ≤85, phoneNumber ≤20, the sex and mailReceiveFlag codes, birthDate format. The other limits are
# UNCONFIRMED: generous guesses.
MEMBER_FIELDS: Mapping[str, FieldRule] = {
    "customerCode": FieldRule(
        20, True, lambda v: _PRINTABLE_ASCII.fullmatch(v) is not None, "printable ASCII characters"
    ),
    "customerNo": FieldRule(12),
    "lastName": FieldRule(85, True),
    "firstName": FieldRule(85, True),
    "lastKana": FieldRule(85, check=lambda v: _KATAKANA.fullmatch(v) is not None, expectation="katakana"),
    "firstKana": FieldRule(85, check=lambda v: _KATAKANA.fullmatch(v) is not None, expectation="katakana"),
    "postCode": FieldRule(10),
    "address": FieldRule(85),
    "phoneNumber": FieldRule(
        20, check=lambda v: _PRINTABLE_ASCII.fullmatch(v) is not None, expectation="ASCII characters"
    ),
    "mobileNumber": FieldRule(20),
    "faxNumber": FieldRule(20),
    "mailAddress": FieldRule(255),
    "mailAddress2": FieldRule(255),
    "mailAddress3": FieldRule(255),
    "companyName": FieldRule(85),
    "departmentName": FieldRule(85),
    "sex": FieldRule(1, check=lambda v: v in {"0", "1", "2"}, expectation='"0", "1" or "2"'),
    "birthDate": FieldRule(10, check=_is_date, expectation="a date as YYYY-MM-DD"),
    "mailReceiveFlag": FieldRule(1, check=lambda v: v in {"0", "1"}, expectation='"0" or "1"'),
    "note": FieldRule(1000),
    "note2": FieldRule(1000),
    "rank": FieldRule(20),
    "staffRank": FieldRule(10),
    "status": FieldRule(1),
    "storeId": FieldRule(10, check=lambda v: v.isdigit(), expectation="a store id (digits)"),
    "entryDate": FieldRule(10, check=_is_date, expectation="a date as YYYY-MM-DD"),
}

InvalidParams = list[dict[str, str]]


def invalid_member_fields(body: Mapping[str, Any], *, creating: bool) -> InvalidParams:
    """Every reason the body is not an acceptable member (empty when it is), one entry per field."""
    problems: InvalidParams = []
    for name, value in body.items():
        rule = MEMBER_FIELDS.get(name)
        if rule is None:
            problems.append({"name": name, "reason": "is not a member field that can be written"})
        elif not isinstance(value, str):
            problems.append({"name": name, "reason": "must be a string"})
        elif rule.required and not value:
            problems.append({"name": name, "reason": "must not be empty"})
        elif len(value) > rule.max_length:
            problems.append({"name": name, "reason": f"must be at most {rule.max_length} characters"})
        elif value and rule.check is not None and not rule.check(value):
            problems.append({"name": name, "reason": f"must be {rule.expectation}"})
    if creating:
        for name, rule in MEMBER_FIELDS.items():
            if rule.required and name not in body:
                problems.append({"name": name, "reason": "is required"})
    return problems


def parse_point(value: Any, *, allow_negative: bool) -> int | None:
    """The integer in a point body's string value, or None when it is not one."""
    if not isinstance(value, str) or _INTEGER.fullmatch(value) is None:
        return None
    point = int(value)
    if point < 0 and not allow_negative:
        return None
    return point
