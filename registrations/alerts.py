"""Batched alerts for new dead letters: one digest email to OPS_ALERT_EMAIL, plus a Sentry event.

A burst of failures (a vendor down for an hour) becomes one message per run, not one per
registration. The digest carries ids, systems and reasons only: no personal data.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import sentry_sdk
from sqlalchemy import select

from config.settings import Settings
from registrations.database import Database
from registrations.models import DeadLetter, utcnow

log = logging.getLogger(__name__)

ALERT_BATCH = 200


def digest(settings: Settings, letters: list[DeadLetter]) -> EmailMessage:
    """The digest email for `letters` (ids, systems, reasons, attempts)."""
    message = EmailMessage()
    message["Subject"] = f"[Membersync] {len(letters)} new dead letter(s)"
    message["From"] = settings.mail_from
    message["To"] = settings.ops_alert_email or ""
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "membersync.local"
    message["Message-ID"] = make_msgid("dead-letters", domain=domain)
    lines = [
        f"{len(letters)} registration step(s) could not be synced and wait for ops.",
        "Replay with `membersync dlq replay ID` (or --all), or from the ops console.",
        "",
    ]
    lines += [
        f"#{letter.id}  {letter.system:<8} registration {letter.registration_id}  "
        f"{letter.error_class} after {letter.attempts} attempt(s): {letter.message[:200]}"
        for letter in letters
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def alert_new_dead_letters(settings: Settings, database: Database) -> int:
    """Tell ops about dead letters not yet alerted; returns how many were in the digest."""
    from connectors.mailer import Mailer

    with database.session() as session:
        letters = list(
            session.scalars(
                select(DeadLetter)
                .where(DeadLetter.alerted_at.is_(None), DeadLetter.status == "open")
                .order_by(DeadLetter.id)
                .limit(ALERT_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not letters:
            return 0
        sentry_sdk.capture_message(f"{len(letters)} new dead letter(s)", level="error")
        if settings.ops_alert_email:
            Mailer.from_settings(settings).send(digest(settings, letters))
        else:
            log.warning("%d new dead letter(s); OPS_ALERT_EMAIL is not set", len(letters))
        now = utcnow()
        for letter in letters:
            letter.alerted_at = now
        return len(letters)
