"""Smaregi (the member number and points): link the member holding the e-mail, or create one.

Smaregi has no e-mail search, so the person is looked up in the member directory
(`registrations.directory`), refreshed from Smaregi right before a create when it is older than
SMAREGI_DIRECTORY_MAX_AGE_SECONDS. A create uses a deterministic customerCode, and any unclear
create (timeout, 5xx, or any refusal: its wording is documented nowhere) is settled by looking that
code up: ours → adopt it; someone else's → the next salt; absent → retry or dead letter.

The directory lives in the worker's own database (the step is given it); its reads and writes are
short transactions of their own, never open during a vendor call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import ConfigError
from connectors.errors import AmbiguousMatch, ConnectorError, PermanentError, ThrottledError
from connectors.interfaces import SmaregiApi
from connectors.smaregi import SmaregiMember, member_code
from registrations import profiles
from registrations.confirmations import CARD
from registrations.directory import MemberDirectory, directory_email
from registrations.states import ConfirmationState, Ownership
from registrations.steps.base import Outcome, Registrant, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

CLAIM_NOTE = "the address already belongs to a member: nothing written unless its owner confirms"
CARD_WAIT_NOTE = "a card made at the till holds this address: waiting for its owner to say it is theirs"

# Different people whose emails hash to the same member code are astronomically rare; a few salts
# are plenty, and running out means something else is wrong.
MEMBER_CODE_SALTS = 3


@dataclass(frozen=True)
class Membership:
    """The member the registrant now is, and how (for the step's note; no personal data)."""

    member: SmaregiMember | None
    note: str | None = None
    # A card made at the till holds the address: its owner is asked first (its customer id).
    waiting_for: str | None = None


class SmaregiMemberStep(Step):
    """Link or create the Smaregi POS member and mirror the member number to Shopify."""

    system = "smaregi"
    locks_email = True

    @property
    def directory(self) -> MemberDirectory:
        """The member directory this step matches people in (over the worker's own database).

        Made per call, yet one per process and database in effect: the directories over one database
        share their refresh lock, the newest refresh seen and the rows written (`registrations.directory`),
        so the worker's threads pull at most once per SMAREGI_DIRECTORY_MAX_AGE_SECONDS between them."""
        return MemberDirectory(self.database)

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        known = work.known
        if known.smaregi_customer_id is not None:
            return Outcome(known.smaregi_customer_id)
        if work.ownership == Ownership.CLAIM:
            # The address belongs to someone else's registration: no card is made from what a
            # stranger typed; if its owner confirms, this step runs again (as a confirmed claim).
            return Outcome(None, note=CLAIM_NOTE)
        try:
            key = self.settings.member_code_secret
        except ConfigError as error:
            # An ops problem, not a retry loop: the dead letter says which setting is missing.
            raise PermanentError(str(error), system=self.system) from None
        membership = link_or_create(
            connectors.smaregi,
            self.directory,
            work.registrant,
            key=key,
            max_age_seconds=self.settings.smaregi_directory_max_age_seconds,
            card=work.card,
        )
        if membership.waiting_for is not None:
            return Outcome(None, waiting=True, note=CARD_WAIT_NOTE, request=(CARD, membership.waiting_for))
        member = membership.member
        assert member is not None
        if known.shopify_customer_id is not None:
            # Smaregi owns the number; Shopify shows it (app-owned metafield $app:membersync member_number).
            connectors.shopify.set_member_number(known.shopify_customer_id, member.customer_code)
        return Outcome(
            member.customer_id,
            {"smaregi_customer_id": member.customer_id, "smaregi_customer_code": member.customer_code},
            note=membership.note,
        )


def link_or_create(
    smaregi: SmaregiApi,
    directory: MemberDirectory,
    registrant: Registrant,
    *,
    key: bytes,
    max_age_seconds: float,
    card: tuple[str, str | None] | None = None,
) -> Membership:
    """The member this registrant is: our own member for the address (a lost answer), the card made
    at the till once its owner confirmed it, else a new member.

    A card made at the till with this address is never linked on the address alone (anyone can
    type an address): the registrant's owner is asked first, and the step waits; declined or
    expired, they get a member of their own.
    """
    decided = card[0] if card is not None else None
    if decided == ConfirmationState.CONFIRMED and card is not None and card[1]:
        member = smaregi.get_member(card[1])
        if member is not None:
            directory.record([member])
            return Membership(member, "linked the card made at the till, as its owner confirmed")
    if decided in {ConfirmationState.DECLINED, ConfirmationState.EXPIRED, ConfirmationState.CONFIRMED}:
        return create(smaregi, directory, registrant, key=key)
    members = _holders(smaregi, directory, registrant.email)
    # About to create: a card made at the till a moment ago must be known first.
    if not members and directory.refresh_if_stale(smaregi, max_age_seconds) is not None:
        members = _holders(smaregi, directory, registrant.email)
    ours = [member for member in members if _is_ours(member, registrant.email, key)]
    if ours:
        return Membership(ours[0], "adopted our own member found in the directory")
    if len(members) > 1:
        # Never guess which card is this person's: a person decides. Codes are not personal data.
        codes = ", ".join(member.customer_code for member in members)
        raise AmbiguousMatch(
            f"{len(members)} Smaregi members share this e-mail (customer codes {codes})", system="smaregi"
        )
    if members:
        return Membership(None, waiting_for=members[0].customer_id)
    return create(smaregi, directory, registrant, key=key)


def _is_ours(member: SmaregiMember, email: str, key: bytes) -> bool:
    """Whether `member` carries one of the codes we derive for `email` (we created it)."""
    return any(
        member.customer_code == member_code(email, key=key, salt=salt) for salt in range(MEMBER_CODE_SALTS)
    )


def _holders(smaregi: SmaregiApi, directory: MemberDirectory, email: str) -> list[SmaregiMember]:
    """The members the directory says hold `email`, confirmed by re-reading each from Smaregi."""
    entries = directory.members_with_email(email)
    return directory.confirm(smaregi, entries, email) if entries else []


def create(
    smaregi: SmaregiApi, directory: MemberDirectory, registrant: Registrant, *, key: bytes
) -> Membership:
    """A new member under our deterministic code; an unclear create is settled by the code alone."""
    fields = profiles.smaregi_member(registrant)
    for salt in range(MEMBER_CODE_SALTS):
        code = member_code(registrant.email, key=key, salt=salt)
        try:
            member = smaregi.create_member(customer_code=code, **fields)
        except ThrottledError:
            raise  # refused before anything was done (Smaregi's 429 or our own budget): just later
        except ConnectorError as error:
            # A timeout, a 5xx or any refusal: whether the member exists is read, never inferred.
            holder = smaregi.find_member_by_code(code)
            if holder is None:
                raise error from None  # transient → retried with the same code; permanent → dead letter
            directory.record([holder])
            if directory_email(holder.mail_address) == directory_email(registrant.email):
                return Membership(holder, "adopted our own member found by its code after an unclear create")
            continue  # the code is somebody else's: the next salt
        directory.record([member])
        return Membership(member, f"created with member code salt {salt}" if salt else None)
    raise PermanentError(
        f"no free member code for this person: {MEMBER_CODE_SALTS} codes are held by other members",
        system="smaregi",
    )
