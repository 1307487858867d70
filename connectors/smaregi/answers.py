"""Reading Smaregi's answers: problem-details errors (RFC 7807), summarised without personal data.

No decision is taken on an error's wording: how Smaregi words a taken customerCode (or any other
refusal) is documented nowhere we found, so a refused or unclear create is settled by looking the
code up (`customer_code=`), never by matching a message.
"""

from __future__ import annotations

import math
from typing import Any

import requests

from connectors.http import AnswerPolicy, json_object
from connectors.ratelimit import RateLimiter
from connectors.rollingwindow import RedisRollingWindow

SYSTEM = "smaregi"


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


class SmaregiPolicy(AnswerPolicy):
    """The POS API: problem-details errors, classified by status only."""

    def observe(self, response: requests.Response, limiter: RateLimiter) -> None:
        """Smaregi reports nothing of its budget, but an answer tells our window log that the call
        stops counting one window from now (`connectors.rollingwindow`); a token bucket learns nothing."""
        if isinstance(limiter, RedisRollingWindow):
            limiter.observe(available=math.inf)

    def detail(self, response: requests.Response) -> str:
        return summary(json_object(response))
