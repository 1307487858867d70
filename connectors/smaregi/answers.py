"""Reading Smaregi's answers: problem-details errors (RFC 7807) and the taken customerCode."""

from __future__ import annotations

import re
from typing import Any

import requests

from connectors.errors import ConflictError, ConnectorError
from connectors.http import AnswerPolicy, Call, json_object
from connectors.ratelimit import RateLimiter

SYSTEM = "smaregi"
# How Smaregi says a customerCode is taken is UNCONFIRMED (its reference only gives the problem-details
# shape of errors): the emulator answers 400 with invalid-params [{name: customerCode, reason: "... is
# already used"}]; English and Japanese wordings are both accepted. Kept here, in one place.
_CODE_TAKEN = re.compile(r"already|duplicat|unique|taken|既に|重複|使用済|使用されて", re.IGNORECASE)


class MemberCodeTaken(ConflictError):
    """Smaregi already has a member with this customerCode: look it up by code before anything else."""

    def __init__(self, message: str, *, customer_code: str, status: int | None = None) -> None:
        super().__init__(message, system=SYSTEM, status=status)
        self.customer_code = customer_code


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


class SmaregiPolicy(AnswerPolicy):
    """The POS API: problem-details errors, and MemberCodeTaken when a customerCode we sent is in use."""

    def detail(self, response: requests.Response) -> str:
        return summary(json_object(response))

    def error(self, response: requests.Response, call: Call, limiter: RateLimiter) -> ConnectorError:
        sent = call.json if isinstance(call.json, dict) else {}
        code = sent.get("customerCode")
        if code and code_taken(response.status_code, json_object(response)):
            return MemberCodeTaken(
                f"{self.where(call)}: customerCode {code} is already used",
                customer_code=str(code),
                status=response.status_code,
            )
        return super().error(response, call, limiter)
