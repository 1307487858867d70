"""Smaregi (the member number and points): link an existing member or create one with our code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.settings import ConfigError
from connectors.errors import AmbiguousMatch, PermanentError
from connectors.interfaces import SmaregiApi
from connectors.smaregi import MemberCodeTaken, SmaregiMember, member_code
from registrations import profiles
from registrations.steps.base import Outcome, Registrant, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

# Different people whose emails hash to the same member code are astronomically rare; a few salts
# are plenty, and running out means something else is wrong.
MEMBER_CODE_SALTS = 3


class SmaregiMemberStep(Step):
    """Link or create the Smaregi POS member and mirror the member number to Shopify."""

    system = "smaregi"
    locks_email = True

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        known = work.known
        if known.smaregi_customer_id is not None:
            return Outcome(known.smaregi_customer_id)
        try:
            key = self.settings.member_code_secret
        except ConfigError as error:
            # An ops problem, not a retry loop: the dead letter says which setting is missing.
            raise PermanentError(str(error), system=self.system) from None
        member = link_or_create(connectors.smaregi, work.registrant, key=key)
        if known.shopify_customer_id is not None:
            # Smaregi owns the number; Shopify shows it (metafield membersync.member_number).
            connectors.shopify.set_member_number(known.shopify_customer_id, member.customer_code)
        return Outcome(
            member.customer_id,
            {"smaregi_customer_id": member.customer_id, "smaregi_customer_code": member.customer_code},
        )


def link_or_create(smaregi: SmaregiApi, registrant: Registrant, *, key: bytes) -> SmaregiMember:
    """The member holding `registrant`'s email (a walk-in keeps their number), else a new one."""
    members = smaregi.find_members_by_email(registrant.email)
    if len(members) > 1:
        # Never guess which card is this person's: a person decides.
        raise AmbiguousMatch(f"{len(members)} Smaregi members share this email", system="smaregi")
    if members:
        return members[0]
    fields = profiles.smaregi_member(registrant)
    for salt in range(MEMBER_CODE_SALTS):
        code = member_code(registrant.email, key=key, salt=salt)
        try:
            return smaregi.create_member(customer_code=code, **fields)
        except MemberCodeTaken:
            holder = smaregi.find_member_by_code(code)
            if holder is not None and (holder.mail_address or "").lower() == registrant.email:
                return holder  # our own earlier create, whose answer was lost
    raise PermanentError("no free member code for this person", system="smaregi")
