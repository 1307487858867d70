"""Each enabled vendor's credentials and scopes, proven by one cheap read: the runner shared by
`membersync check` (cli/check.py), the console's sync health and `/readyz` (app/vendor_checks.py).

Each client's `check()` makes the read; this module only runs them and words the outcome. A reason
names the error and what the connector says about it: connector messages carry no secrets and no
personal data by design, and any other error is named by its class alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.errors import ConnectorError
from connectors.registry import WITHOUT_CLIENT, Connectors

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    """One system's verdict: ok, failed or skipped, and why (empty when ok)."""

    status: str
    reason: str = ""


def _reason(error: Exception) -> str:
    if isinstance(error, ConnectorError):
        return f"{type(error).__name__}: {str(error)[:200]}"
    # Not a connector's answer (the rate limiter's Redis, a bug): its class only, never its text.
    return f"{type(error).__name__} before the vendor answered"


def check_one(check: Callable[[], None]) -> Outcome:
    """Run one client's check(); ok, or failed with the reason."""
    try:
        check()
    except Exception as error:  # every failure is a verdict on this system, not a crash of the command
        return Outcome(FAILED, _reason(error))
    return Outcome(OK)


def check_all(connectors: Connectors, enabled: Mapping[str, bool]) -> dict[str, Outcome]:
    """Every system with a client, in the registry's order: checked when enabled, else skipped."""
    outcomes: dict[str, Outcome] = {}
    for name, on in enabled.items():
        if name in WITHOUT_CLIENT:
            continue
        if not on:
            outcomes[name] = Outcome(SKIPPED, "switched off")
            continue
        outcomes[name] = check_one(getattr(connectors, name).check)
    return outcomes


def summary(outcomes: Mapping[str, Outcome]) -> dict[str, object]:
    """The last line's JSON: each system's status, and ok when none failed."""
    return {
        "check": {name: outcome.status for name, outcome in outcomes.items()},
        "ok": all(outcome.status != FAILED for outcome in outcomes.values()),
    }
