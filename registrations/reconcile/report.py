"""What a run found and did: counts per outcome, example vendor ids, API calls, failed writes.

Stored on the run row (`reconciliation_runs.report`), printed by `membersync reconcile`, shown on the
console and exported as metrics. Vendor ids only: never a name, an address or a phone number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 5  # example ids kept per outcome
FAILURES = 50  # failed writes kept in full (all are counted)


@dataclass
class Report:
    """A run's report, built as it goes."""

    dry_run: bool = False
    systems: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    read: Counter[str] = field(default_factory=Counter)  # records read per system
    api_calls: Counter[str] = field(default_factory=Counter)  # requests made per system
    writes: Counter[str] = field(default_factory=Counter)  # writes done (or planned, in a dry run)
    failed_writes: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    people: int = 0
    seconds: float = 0.0

    def found(self, outcomes: Sequence[str], ids: dict[str, str]) -> None:
        """Count one person's outcomes, keeping the first few ids of each as examples."""
        self.people += 1
        for outcome in outcomes:
            self.outcomes[outcome] += 1
            kept = self.examples.setdefault(outcome, [])
            if len(kept) < EXAMPLES and ids:
                kept.append(dict(ids))

    def wrote(self, system: str, calls: int = 1) -> None:
        """One write done (planned, in a dry run) in `system`."""
        self.writes[system] += 1
        if not self.dry_run:
            self.api_calls[system] += calls

    def failed(self, system: str, action: str, subject: str, error: BaseException) -> None:
        """One write that failed: counted, and kept (vendor id and error class only) up to FAILURES."""
        self.failed_writes[system] += 1
        if len(self.failures) < FAILURES:
            self.failures.append(
                {"system": system, "action": action, "id": subject, "error": type(error).__name__}
            )

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return {
            "dry_run": self.dry_run,
            "systems": self.systems,
            "people": self.people,
            "outcomes": dict(sorted(self.outcomes.items())),
            "examples": dict(sorted(self.examples.items())),
            "read": dict(sorted(self.read.items())),
            "writes": dict(sorted(self.writes.items())),
            "failed_writes": dict(sorted(self.failed_writes.items())),
            "failures": self.failures,
            "api_calls": dict(sorted(self.api_calls.items())),
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }
