"""HubSpot (a mirror that owns nothing): upsert the contact by email."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registrations import profiles
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors


class HubSpotContactStep(Step):
    """Upsert the HubSpot contact by email."""

    system = "hubspot"
    locks_email = True  # the identity row is shared with the other steps of this person

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        contact = connectors.hubspot.upsert_contact(
            email=work.registrant.email, properties=profiles.hubspot_properties(work.registrant)
        )
        return Outcome(contact.id, {"hubspot_contact_id": contact.id})
