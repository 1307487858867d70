"""Reading Smaregi's answers: member lists, one member, and problem-details errors."""

from __future__ import annotations

import re
from typing import Any

import requests

from connectors.errors import TransientError

# How Smaregi says a customerCode is taken is UNCONFIRMED (APIS.md only gives the problem-details
# shape): the emulator answers 400 with invalid-params [{name: customerCode, reason: "... is already
# used"}]; English and Japanese wordings are both accepted. Kept here, in one place.
_CODE_TAKEN = re.compile(r"already|duplicat|unique|taken|既に|重複|使用済|使用されて", re.IGNORECASE)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def problem(response: requests.Response) -> dict[str, Any]:
    """The problem-details body of an error answer (`type`, `title`, `detail`, `status`, ...), or {}."""
    body = _json(response)
    return body if isinstance(body, dict) else {}


def invalid_params(problem: dict[str, Any]) -> list[dict[str, Any]]:
    """The `invalid-params` entries ({name, reason}) of a problem, when it has them."""
    entries = problem.get("invalid-params")
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def summary(problem: dict[str, Any]) -> str:
    """A problem for an error message: its title and field names, never `detail` or reasons.

    Smaregi's wording may echo what we sent (a mail address); messages carry no personal data.
    """
    names = ", ".join(str(entry.get("name")) for entry in invalid_params(problem))
    title = str(problem.get("title") or "no problem details")
    return f"{title} (invalid: {names})" if names else title


def code_taken(status: int, problem: dict[str, Any]) -> bool:
    """Whether a failed create/update says the customerCode is in use (the wording is UNCONFIRMED)."""
    if status == 409:
        return True  # the code is the only unique field we send
    if status not in (400, 422):
        return False
    for entry in invalid_params(problem):
        if entry.get("name") == "customerCode" and _CODE_TAKEN.search(str(entry.get("reason", ""))):
            return True
    detail = str(problem.get("detail", ""))
    return "customerCode" in detail and _CODE_TAKEN.search(detail) is not None


def member_records(response: requests.Response) -> list[dict[str, Any]]:
    """The customer objects of a list answer (a JSON array)."""
    body = _json(response)
    if not isinstance(body, list) or not all(isinstance(record, dict) for record in body):
        # A 200 that is not our JSON comes from a proxy or a maintenance page: try again later.
        raise TransientError("smaregi: a member list answer is not a JSON array", system="smaregi")
    return body


def member_record(response: requests.Response) -> dict[str, Any]:
    """The customer object of a single-member answer."""
    body = _json(response)
    if not isinstance(body, dict) or "customerId" not in body:
        raise TransientError("smaregi: a member answer has no customerId", system="smaregi")
    return body
