"""Shopify (the customer master): create the customer, or adopt the one that holds the email."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.errors import AmbiguousMatch, TransientError
from connectors.interfaces import ShopifyApi
from connectors.shopify import EmailTaken
from registrations import profiles
from registrations.steps.base import Outcome, Registrant, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors


class ShopifyCustomerStep(Step):
    """Create the Shopify customer, or adopt the one that already has this email."""

    system = "shopify"
    locks_email = True

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        customer_id = work.known.shopify_customer_id
        if customer_id is None:
            customer_id = create_or_adopt(connectors.shopify, work.registrant)
        return Outcome(customer_id, {"shopify_customer_id": customer_id})


def create_or_adopt(shopify: ShopifyApi, registrant: Registrant) -> str:
    """The id of the customer created for `registrant`, or of the one already holding the email."""
    try:
        return shopify.create_customer(**profiles.shopify_customer(registrant)).id
    except EmailTaken:
        # An earlier attempt whose answer was lost, or a customer who already shops online:
        # Shopify owns the profile, so we adopt it as it is.
        found = shopify.find_customers_by_email(registrant.email)
        if len(found) > 1:
            raise AmbiguousMatch(f"{len(found)} Shopify customers match", system="shopify") from None
        if not found:
            # Shopify's search index trails its writes by a moment.
            raise TransientError(
                "email taken but the customer is not searchable yet", system="shopify"
            ) from None
        return found[0].id
