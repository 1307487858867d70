"""HubSpot (a mirror that owns nothing): upsert the contact by email, with the member number.

The member number is Smaregi's fact; the Smaregi step ran before this one, so the contact gets it
now rather than waiting for the member's next change (whose webhook can arrive before the contact
exists) or for the nightly reconciliation.

A registration of an address that already belongs to a member mirrors nothing it typed: the
contact keeps what the owner gave until the owner confirms (then this step runs again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.hubspot.properties import HUBSPOT_FACT_PROPERTIES
from registrations import profiles
from registrations.states import Ownership
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

CLAIM_NOTE = "the address already belongs to a member: nothing written unless its owner confirms"


class HubSpotContactStep(Step):
    """Upsert the HubSpot contact by email."""

    system = "hubspot"
    locks_email = True  # the identity row is shared with the other steps of this person

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        if work.ownership == Ownership.CLAIM:
            # Nothing mirrored from what a stranger typed; a confirmed claim runs this step again.
            return Outcome(work.known.hubspot_contact_id, note=CLAIM_NOTE)
        properties = profiles.hubspot_properties(work.registrant)
        if work.known.smaregi_customer_code:
            properties[HUBSPOT_FACT_PROPERTIES["member_number"]] = work.known.smaregi_customer_code
        contact = connectors.hubspot.upsert_contact(email=work.registrant.email, properties=properties)
        return Outcome(contact.id, {"hubspot_contact_id": contact.id})
