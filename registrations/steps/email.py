"""The welcome email, carrying the member number when Smaregi has given one, and the member-number
email for those whose welcome went out before it.

The email step runs once in the chain. When the Smaregi step succeeds only later (a replay, a
backfill), the ledger reopens this step; it then finds its own earlier success (the welcome's
Message-ID, kept as the step's external id) and sends the member number instead of a second welcome.
Each email has its own deterministic Message-ID, and `member_number_mailed` (the registration's
`member_number_mailed_at`) says the number has arrived, so a redelivery never sends another.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import TYPE_CHECKING

from connectors.mailer import (
    MemberNumberMessage,
    WelcomeMessage,
    member_number_message_id,
    welcome_message_id,
)
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

FOLLOW_UP_NOTE = "member number sent in a follow-up email"


class WelcomeEmailStep(Step):
    """Send the welcome email, or the member number that the welcome could not carry yet."""

    system = "email"

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        if work.previous_external_id is None:
            return self._welcome(work, connectors)
        return self._member_number(work, connectors, welcome_id=work.previous_external_id)

    def _welcome(self, work: Work, connectors: Connectors) -> Outcome:
        registrant = work.registrant
        message = WelcomeMessage(
            to=registrant.email,
            first_name=registrant.first_name,
            last_name=registrant.last_name,
            locale=registrant.locale or "ja",
            member_number=work.known.smaregi_customer_code,
            message_id=welcome_message_id(work.registration_id, domain=self._domain()),
        )
        connectors.mailer.send_welcome(message)
        return Outcome(message.message_id, member_number_mailed=message.member_number is not None)

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
        connectors.mailer.send_member_number(message)
        # The external id stays the welcome's: it is what tells a later run the welcome went out.
        return Outcome(welcome_id, note=FOLLOW_UP_NOTE, member_number_mailed=True)

    def _domain(self) -> str:
        return parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or "membersync.local"
