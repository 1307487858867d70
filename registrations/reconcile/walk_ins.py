"""A walk-in: a card made at the till holds the address of a Shopify customer. Only the address's owner
may say the card is theirs (anyone can type an address at a till), so it is never linked on the
address alone: when the address belongs to a registration, its owner is asked once, ever, with the
card confirmation the pipeline uses (`registrations.confirmations`, kind card); their "yes" reopens
the registration's Smaregi step, which links the card and mails the member number. Without a
registration there is nobody we may ask: the report names the walk-in for ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select

from config.settings import Settings
from connectors.errors import ConnectorError
from connectors.mailer import CardQuestionMessage, card_question_message_id, sender_domain
from registrations import confirmations
from registrations.database import Database
from registrations.models import Confirmation, Registration
from registrations.states import Ownership


@dataclass(frozen=True)
class Question:
    """The question to mail: to whom, in which language, and the confirmation it decides."""

    registration_id: str
    confirmation_id: str
    to: str
    locale: str


def owner_registration(database: Database, email: str) -> str | None:
    """The id of the registration that made the address's person (the first owner), if any."""
    with database.session() as session:
        return session.scalar(
            select(Registration.id)
            .where(Registration.email == email, Registration.ownership == Ownership.OWNER)
            .order_by(Registration.created_at)
            .limit(1)
        )


def already_asked(database: Database, registration_id: str, card_id: str) -> bool:
    """Whether this card was ever asked about for the registration, or a card question is open."""
    with database.session() as session:
        found = session.scalar(
            select(Confirmation.id)
            .where(
                Confirmation.registration_id == registration_id,
                Confirmation.kind == confirmations.CARD,
                or_(Confirmation.subject == card_id, Confirmation.state == confirmations.REQUESTED),
            )
            .limit(1)
        )
    return found is not None


def ask(
    database: Database,
    settings: Settings,
    mailer: Any,
    registration_id: str,
    card_id: str,
    *,
    check_fence: Callable[[], None],
) -> None:
    """Record the card question and mail it; a mail that fails takes its record back (the next run
    asks again)."""
    with database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        confirmation = confirmations.request(
            session, registration, confirmations.CARD, settings=settings, subject=card_id
        )
        question = Question(registration.id, confirmation.id, registration.email, registration.locale)
    check_fence()
    message = CardQuestionMessage(
        to=question.to,
        locale=question.locale,
        message_id=card_question_message_id(
            question.registration_id, domain=sender_domain(settings.mail_from)
        ),
        confirm_url=confirmations.link(settings, question.confirmation_id, confirmations.CONFIRM),
        confirm_days=settings.confirmation_days,
    )
    try:
        mailer.send_card_question(message)
    except ConnectorError:
        with database.session() as session:
            session.execute(delete(Confirmation).where(Confirmation.id == question.confirmation_id))
        raise
