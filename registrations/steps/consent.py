"""Marketing consent (double opt-in): tell every system what the address's owner decided.

Nothing is subscribed until the owner confirms through the link in the welcome mail; then Shopify
SUBSCRIBED / CONFIRMED_OPT_IN with the confirmation time (customerEmailMarketingConsentUpdate),
Smaregi's mailReceiveFlag 1, HubSpot's subscription with a legal basis. A withdrawal (the
unsubscribe link) sets UNSUBSCRIBED, flag 0 and unsubscribed. Each call sets a state, so a retry or
a redelivery repeats it harmlessly. With nothing decided the step does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registrations.confirmations import CONFIRMED
from registrations.steps.base import Outcome, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

# The legal basis HubSpot records with the subscription: the owner opted in, having seen the text
# whose version our consent record keeps.
LEGAL_BASIS = "CONSENT_WITH_NOTICE"
SUBSCRIBED_EXPLANATION = "Confirmed by the address's owner through a double opt-in link (Membersync)"
WITHDRAWN_EXPLANATION = "Withdrawn by the address's owner through an unsubscribe link (Membersync)"


class ConsentStep(Step):
    """Propagate the owner's confirmed (or withdrawn) marketing consent to every system."""

    system = "consent"
    locks_email = True  # one person's consent changes one at a time

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        if work.marketing is None:
            return Outcome(None, note="no marketing consent decided: nothing sent")
        decision, at = work.marketing
        subscribed = decision == CONFIRMED
        enabled = self.settings.enabled_systems()
        known = work.known
        if known.shopify_customer_id is not None:
            if subscribed:
                connectors.shopify.update_marketing_consent(
                    known.shopify_customer_id,
                    "SUBSCRIBED",
                    opt_in_level="CONFIRMED_OPT_IN",
                    consent_updated_at=at,
                )
            else:
                connectors.shopify.update_marketing_consent(
                    known.shopify_customer_id, "UNSUBSCRIBED", consent_updated_at=at
                )
        if enabled["smaregi"] and known.smaregi_customer_id is not None:
            connectors.smaregi.set_mail_receive_flag(known.smaregi_customer_id, subscribed)
        if enabled["hubspot"]:
            email = work.registrant.email
            if subscribed:
                connectors.hubspot.subscribe(
                    email, legal_basis=LEGAL_BASIS, explanation=SUBSCRIBED_EXPLANATION
                )
            else:
                connectors.hubspot.unsubscribe(email, explanation=WITHDRAWN_EXPLANATION)
        return Outcome(decision, note=f"marketing consent {decision} {at.isoformat(timespec='seconds')}")
