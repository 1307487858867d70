"""The welcome email, carrying the member number when Smaregi has given one."""

from __future__ import annotations

from email.utils import parseaddr
from typing import TYPE_CHECKING

from connectors.mailer import WelcomeMessage, welcome_message_id
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors


class WelcomeEmailStep(Step):
    """Send the welcome email with a deterministic Message-ID per registration."""

    system = "email"

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        registrant = work.registrant
        domain = parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or "membersync.local"
        message = WelcomeMessage(
            to=registrant.email,
            first_name=registrant.first_name,
            last_name=registrant.last_name,
            locale=registrant.locale or "ja",
            member_number=work.known.smaregi_customer_code,
            message_id=welcome_message_id(work.registration_id, domain=domain),
        )
        connectors.mailer.send_welcome(message)
        return Outcome(message.message_id)
