"""Shopify (the customer master): create the customer, or adopt the one that holds the email.

Shopify keeps emails and phones unique per shop. A taken email means the person is already there
(an earlier attempt whose answer was lost, or someone who already shops online): adopt that customer.
A taken phone means someone else holds it, usually a household member: households share phones, so
the customer is created without it (Smaregi and HubSpot, which allow duplicates, keep it) and the
step says so in its note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.errors import AmbiguousMatch, TransientError
from connectors.interfaces import ShopifyApi
from connectors.shopify import EmailTaken, PhoneTaken, ShopifyCustomer
from registrations import profiles
from registrations.steps.base import Outcome, Registrant, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

# Step notes (shown on the status API): why the Shopify customer lacks the registration's phone.
PHONE_TAKEN_NOTE = "phone already held by another Shopify customer; created without it"
ADOPTED_OTHER_PHONE_NOTE = (
    "adopted the Shopify customer holding this email; its phone differs from the registration's "
    "and was left as Shopify has it"
)


class ShopifyCustomerStep(Step):
    """Create the Shopify customer, or adopt the one that already has this email."""

    system = "shopify"
    locks_email = True

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        customer_id = work.known.shopify_customer_id
        if customer_id is not None:
            return Outcome(customer_id, {"shopify_customer_id": customer_id})
        return create_or_adopt(connectors.shopify, work.registrant)


def create_or_adopt(shopify: ShopifyApi, registrant: Registrant) -> Outcome:
    """The customer created for `registrant` (without the phone if another holds it), or adopted."""
    profile = profiles.shopify_customer(registrant)
    try:
        try:
            customer, note = shopify.create_customer(**profile), None
        except PhoneTaken:
            # A taken email is checked first by Shopify and by us, so the email is free here; the
            # retry can still meet EmailTaken if another delivery created the customer meanwhile.
            customer, note = shopify.create_customer(**{**profile, "phone": None}), PHONE_TAKEN_NOTE
    except EmailTaken:
        customer = adopt(shopify, registrant)
        differs = registrant.phone is not None and customer.phone != registrant.phone
        note = ADOPTED_OTHER_PHONE_NOTE if differs else None
    return Outcome(customer.id, {"shopify_customer_id": customer.id}, note=note)


def adopt(shopify: ShopifyApi, registrant: Registrant) -> ShopifyCustomer:
    """The customer already holding the email, given the registration's address if it has none.

    Shopify owns the profile, so nothing it holds is overwritten. The address is the exception that
    fills a gap: it is written by its own call after the create (CustomerInput.addresses is
    deprecated), so an attempt that failed between the two calls leaves a customer without one.
    """
    found = shopify.find_customers_by_email(registrant.email)
    if len(found) > 1:
        raise AmbiguousMatch(f"{len(found)} Shopify customers match", system="shopify") from None
    if not found:
        # Taken, yet not found: the email changed hands in between; another try settles it.
        raise TransientError("email taken but no customer holds it", system="shopify") from None
    customer = found[0]
    if customer.address_id is None and (registrant.postal_code or registrant.address):
        shopify.add_address(customer.id, postal_code=registrant.postal_code, address=registrant.address)
    return customer
