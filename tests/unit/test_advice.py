"""Every reason a dead letter can be written for has its own plain-language advice."""

from __future__ import annotations

import connectors.registry  # noqa: F401  (imports every client, and so every error class)
from connectors.errors import PermanentError
from registrations.advice import ADVICE, GENERAL, advice

# Written by the step task itself (tasks/base.py), not by an error class.
TASK_REASONS = {"retries_exhausted", "worker_lost", "permanent"}
# Errors of the reconciliation's bulk export: they end a run, never a step, so no dead letter.
NOT_DEAD_LETTERS = {"bulk_export_failed", "bulk_export_busy"}


def _reasons(cls: type[PermanentError]) -> set[str]:
    found = {cls.reason}
    for sub in cls.__subclasses__():
        found |= _reasons(sub)
    return found


def test_every_reason_has_its_own_advice() -> None:
    reasons = (_reasons(PermanentError) | TASK_REASONS) - NOT_DEAD_LETTERS
    advised = {reason for _, reason in ADVICE}
    assert reasons - advised == set()


def test_a_vendor_specific_line_wins_and_an_unknown_reason_still_gets_advice() -> None:
    assert "entryDate" in advice("smaregi", "permanent")
    assert advice("shopify", "worker_lost") == advice(None, "worker_lost")
    assert advice("shopify", "something_new") == GENERAL
