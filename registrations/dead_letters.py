"""Writing dead letters: one open row per registration and system, updated when it fails again."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.observability import scrub_text
from registrations.models import DeadLetter, utcnow


def record_dead_letter(
    session: Session,
    *,
    registration_id: str,
    system: str,
    task_name: str,
    error: BaseException,
    reason: str,
    attempts: int,
) -> DeadLetter:
    """Open (or refresh) the dead letter for this registration's step; args are ids only."""
    letter = session.scalar(
        select(DeadLetter).where(
            DeadLetter.registration_id == registration_id,
            DeadLetter.system == system,
            DeadLetter.status == "open",
        )
    )
    message = scrub_text(f"{reason}: {error}")[:2000]
    if letter is None:
        letter = DeadLetter(
            registration_id=registration_id,
            system=system,
            task_name=task_name,
            args={"registration_id": registration_id},
            error_class=type(error).__name__,
            message=message,
            attempts=attempts,
        )
        session.add(letter)
    else:
        letter.error_class = type(error).__name__
        letter.message = message
        letter.attempts = attempts
        letter.last_failed_at = utcnow()
    return letter
