"""The welcome email, carrying the member number when Smaregi has given one, and the member-number
email for those whose welcome went out before it.

The email step runs once in the chain. When the Smaregi step succeeds only later (a replay, a
backfill), the ledger reopens this step; it then finds its own earlier success (the welcome's
Message-ID, kept as the step's external id) and sends the member number instead of a second welcome.
Each email has its own deterministic Message-ID, and `member_number_mailed` (the registration's
`member_number_mailed_at`) says the number has arrived, so a redelivery never sends another.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING

from config.settings import ConfigError
from connectors.errors import PermanentError
from connectors.mailer import (
    MemberNumberMessage,
    WelcomeMessage,
    member_number_message_id,
    welcome_message_id,
)
from connectors.mailer.client import NoticeMessage, notice_message_id
from registrations import confirmations
from registrations.models import utcnow
from registrations.states import Ownership
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

FOLLOW_UP_NOTE = "member number sent in a follow-up email"
WELCOMED_BEFORE_NOTE = "the address had its one welcome already: none sent"
NOTICE_NOTE = "the address already belongs to a member: its owner was sent a notice"
NOTICE_LIMIT_NOTE = "the address already belongs to a member: a notice went out within a day, none sent"
# At most one "already a member" notice a day per address, however often it is typed.
NOTICE_INTERVAL = timedelta(days=1)


class WelcomeEmailStep(Step):
    """Send the welcome email (once ever per address), the "already a member" notice to the owner of
    an address someone registered again, or the member number that the welcome could not carry."""

    system = "email"
    locks_email = True  # the address's welcome and notice limits are read and set one at a time

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        try:
            self.settings.public_base_url  # noqa: B018 - the links need it: fail before any mail
        except ConfigError as error:
            raise PermanentError(str(error), system=self.system) from None
        if work.previous_external_id is not None:
            return self._member_number(work, connectors, welcome_id=work.previous_external_id)
        if work.ownership == Ownership.CLAIM:
            return self._notice(work, connectors)
        if work.known.welcomed_at is not None:
            return Outcome(None, note=WELCOMED_BEFORE_NOTE)
        return self._welcome(work, connectors)

    def _welcome(self, work: Work, connectors: Connectors) -> Outcome:
        registrant = work.registrant
        marketing = work.requests.get(confirmations.MARKETING)
        card = work.requests.get(confirmations.CARD)
        message = WelcomeMessage(
            to=registrant.email,
            first_name=registrant.first_name,
            last_name=registrant.last_name,
            locale=registrant.locale or "ja",
            member_number=work.known.smaregi_customer_code,
            message_id=welcome_message_id(work.registration_id, domain=self._domain()),
            confirm_marketing_url=self._link(marketing, confirmations.CONFIRM),
            card_url=self._link(card, confirmations.CONFIRM),
            unsubscribe_url=self._link(marketing, confirmations.UNSUBSCRIBE),
            confirm_days=self.settings.confirmation_days,
        )
        connectors.email.send_welcome(message)
        return Outcome(
            message.message_id, member_number_mailed=message.member_number is not None, welcomed=True
        )

    def _notice(self, work: Work, connectors: Connectors) -> Outcome:
        """The owner hears, at most once a day, that their address was typed; nothing personal in it."""
        last = work.known.notified_at
        if last is not None and utcnow() - last < NOTICE_INTERVAL:
            return Outcome(None, note=NOTICE_LIMIT_NOTE)
        message = NoticeMessage(
            to=work.registrant.email,
            locale=work.registrant.locale or "ja",
            message_id=notice_message_id(work.registration_id, domain=self._domain()),
            confirm_url=self._link(work.requests.get(confirmations.PROFILE), confirmations.CONFIRM),
            confirm_days=self.settings.confirmation_days,
        )
        connectors.email.send_notice(message)
        return Outcome(message.message_id, note=NOTICE_NOTE, notified=True)

    def _link(self, confirmation_id: str | None, action: str) -> str | None:
        return confirmations.link(self.settings, confirmation_id, action) if confirmation_id else None

    def _member_number(self, work: Work, connectors: Connectors, *, welcome_id: str) -> Outcome:
        """The welcome went out already: send the number if it exists and has not been mailed."""
        number = work.known.smaregi_customer_code
        if work.member_number_mailed or not number:
            # Nothing to send (already mailed, or still no number); the step stays the welcome's.
            return Outcome(welcome_id)
        registrant = work.registrant
        message = MemberNumberMessage(
            to=registrant.email,
            first_name=registrant.first_name,
            last_name=registrant.last_name,
            locale=registrant.locale or "ja",
            member_number=number,
            message_id=member_number_message_id(work.registration_id, domain=self._domain()),
        )
        connectors.email.send_member_number(message)
        # The external id stays the welcome's: it is what tells a later run the welcome went out.
        return Outcome(welcome_id, note=FOLLOW_UP_NOTE, member_number_mailed=True)

    def _domain(self) -> str:
        return parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or "membersync.local"
