"""Batched alerts for new dead letters: one digest email to OPS_ALERT_EMAIL, plus a Sentry event; and
the report of steps past their retry budget.

A burst of failures (a vendor down for an hour) becomes one message per run, not one per
registration. The new dead letters come from `registrations.dead_letters.DeadLetters`; each mail is
an ops alert rendered and sent by the mailer connector. They carry ids, systems and reasons only: no
personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import sentry_sdk
from sqlalchemy import select

from config.settings import Settings
from connectors.mailer import Mailer, OpsAlertMessage
from registrations.database import Database
from registrations.dead_letters import DeadLetters
from registrations.models import DeadLetter, SyncStep, utcnow
from registrations.states import StepState

log = logging.getLogger(__name__)

ALERT_BATCH = 200


def digest(to: str, letters: Sequence[DeadLetter]) -> OpsAlertMessage:
    """The digest for `letters` (ids, systems, reasons, attempts)."""
    return OpsAlertMessage(
        to=to,
        subject=f"[Membersync] {len(letters)} new dead letter(s)",
        summary=(
            f"{len(letters)} registration step(s) could not be synced and wait for ops.",
            "Replay with `membersync dlq replay ID` (or --all), or from the ops console.",
        ),
        lines=tuple(
            f"#{letter.id}  {letter.system:<8} {_subject(letter)}  "
            f"{letter.error_class} after {letter.attempts} attempt(s): {letter.message[:200]}"
            for letter in letters
        ),
        kind="dead-letters",
    )


def _subject(letter: DeadLetter) -> str:
    """What a dead letter is about: a registration's step, or a vendor change (webhook delivery)."""
    if letter.registration_id:
        return f"registration {letter.registration_id}"
    return f"change {letter.change_id}"


def alert_new_dead_letters(settings: Settings, database: Database) -> int:
    """Tell ops about dead letters not yet alerted; returns how many were in the digest."""

    def tell(letters: Sequence[DeadLetter]) -> None:
        sentry_sdk.capture_message(f"{len(letters)} new dead letter(s)", level="error")
        if settings.ops_alert_email:
            Mailer.from_settings(settings).send_ops_alert(digest(settings.ops_alert_email, letters))
        else:
            log.warning("%d new dead letter(s); OPS_ALERT_EMAIL is not set", len(letters))

    return DeadLetters(database).alert_new(tell, limit=ALERT_BATCH)


@dataclass(frozen=True)
class OverBudget:
    """A step still unfinished after its retry budget ran out (nothing dead-lettered it yet)."""

    step_id: int
    registration_id: str
    system: str
    state: str
    seconds: float


def steps_over_budget(settings: Settings, database: Database) -> list[OverBudget]:
    """Pending or running steps whose first attempt is older than their system's retry budget.

    A step normally ends dead-lettered when its budget runs out; one that does not has lost its
    message or its worker more than once, and a person should look at it.
    """
    now = utcnow()
    found: list[OverBudget] = []
    with database.session() as session:
        for system, policy in settings.retry_policies.items():
            started_before = now - timedelta(seconds=policy.budget_seconds)
            rows = session.execute(
                select(SyncStep.id, SyncStep.registration_id, SyncStep.state, SyncStep.first_attempt_at)
                .where(
                    SyncStep.system == system,
                    SyncStep.state.in_((StepState.PENDING, StepState.RUNNING)),
                    SyncStep.first_attempt_at.is_not(None),
                    SyncStep.first_attempt_at < started_before,
                )
                .order_by(SyncStep.id)
                .limit(ALERT_BATCH)
            )
            found += [
                OverBudget(
                    row.id,
                    row.registration_id,
                    system,
                    row.state,
                    (now - row.first_attempt_at).total_seconds(),
                )
                for row in rows
            ]
    return found


def report_steps_over_budget(
    settings: Settings, database: Database, first_time: Callable[[OverBudget], bool]
) -> list[OverBudget]:
    """Tell ops (log, Sentry, and OPS_ALERT_EMAIL) of each step over budget, once: `first_time`
    says whether a step was already reported (a shared memory, such as a Redis key per step)."""
    news = [step for step in steps_over_budget(settings, database) if first_time(step)]
    if not news:
        return []
    lines = [
        f"step {step.system} of registration {step.registration_id} is still {step.state} "
        f"{step.seconds / 3600:.1f} h after its first attempt"
        for step in news
    ]
    for line in lines:
        log.warning("%s (past its retry budget)", line)
    sentry_sdk.capture_message(f"{len(news)} step(s) past their retry budget", level="warning")
    if settings.ops_alert_email:
        alert = OpsAlertMessage(
            to=settings.ops_alert_email,
            subject=f"[Membersync] {len(news)} step(s) past their retry budget",
            summary=(
                "These steps ran past their retry budget without finishing; their chain was probably lost.",
                "Check the worker, then re-run with `membersync dlq replay REGISTRATION_ID`.",
            ),
            lines=tuple(lines),
            kind="over-budget",
        )
        Mailer.from_settings(settings).send_ops_alert(alert)
    return news
