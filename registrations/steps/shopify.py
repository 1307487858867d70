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
from registrations.confirmations import PROFILE
from registrations.states import Ownership
from registrations.steps.base import Outcome, Registrant, Step, Work

if TYPE_CHECKING:
    from connectors.registry import Connectors

# Step notes (for ops; the public status API shows states only).
PHONE_TAKEN_NOTE = "phone already held by another Shopify customer; created without it"
ADOPTED_OTHER_PHONE_NOTE = (
    "adopted the Shopify customer holding this email; its phone differs from the registration's "
    "and was left as Shopify has it"
)
CLAIM_NOTE = "the address already belongs to a customer: nothing written; its owner is asked to confirm"
APPLIED_NOTE = "applied the details the address's owner confirmed"


class ShopifyCustomerStep(Step):
    """Create the Shopify customer; an address that already belongs to one is only claimed."""

    system = "shopify"
    locks_email = True

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        customer_id = work.known.shopify_customer_id
        if work.ownership == Ownership.CONFIRMED:
            return apply_confirmed(connectors.shopify, work.registrant, customer_id)
        if customer_id is not None:
            return known_customer(
                connectors.shopify, work.registrant, customer_id, registration_id=work.registration_id
            )
        return create_or_adopt(connectors.shopify, work.registrant, registration_id=work.registration_id)


def known_customer(
    shopify: ShopifyApi, registrant: Registrant, customer_id: str, *, registration_id: str
) -> Outcome:
    """The address already has a customer on record: ours, or someone else's (a claim).

    Usually an earlier registration made this person, and this one writes nothing until its owner
    confirms (the profile confirmation, asked in the "already a member" notice). But the customer
    can be this registration's own: our create went through, its answer was lost (a timeout after
    the commit, a worker killed before the record), and meanwhile another registration of the same
    address met the taken email and recorded the customer as a claim. Claiming it here too would
    leave the address with no owner at all: every registration `synced` as a claim, and no member,
    contact or welcome. Only the mark our create wrote (`membersync.registration`) tells the two
    apart, so it is read, never guessed: ours → finish our own work as its owner.
    """
    found = shopify.find_customers_by_email(registrant.email)
    if len(found) == 1 and found[0].registration_id == registration_id:
        return finish_own(shopify, registrant, found[0])
    return Outcome(
        customer_id,
        {"shopify_customer_id": customer_id},
        note=CLAIM_NOTE,
        ownership=Ownership.CLAIM,
        request=(PROFILE, None),
    )


def create_or_adopt(shopify: ShopifyApi, registrant: Registrant, *, registration_id: str) -> Outcome:
    """The customer created for `registrant` (without the phone if another holds it), or, when the
    address is taken, the customer holding it: ours (a lost answer) or someone else's (a claim)."""
    profile = profiles.shopify_customer(registrant)
    try:
        try:
            customer = shopify.create_customer(**profile, registration_id=registration_id)
            note = None
        except PhoneTaken:
            # A taken email is checked first by Shopify and by us, so the email is free here; the
            # retry can still meet EmailTaken if another delivery created the customer meanwhile.
            customer = shopify.create_customer(**{**profile, "phone": None}, registration_id=registration_id)
            note = PHONE_TAKEN_NOTE
    except EmailTaken:
        return adopt(shopify, registrant, registration_id=registration_id)
    return Outcome(customer.id, {"shopify_customer_id": customer.id}, note=note, ownership=Ownership.OWNER)


def adopt(shopify: ShopifyApi, registrant: Registrant, *, registration_id: str) -> Outcome:
    """The customer already holding the email.

    Ours (it carries this registration's mark: our create went through but its answer was lost) →
    finish our own work: the address, written by its own call after the create, may be missing.
    Anyone else's → a claim: nothing is written, not even a field it lacks (an empty address filled
    by a stranger would become the owner's shipping address); its owner is asked to confirm.
    """
    found = shopify.find_customers_by_email(registrant.email)
    if len(found) > 1:
        raise AmbiguousMatch(f"{len(found)} Shopify customers match", system="shopify") from None
    if not found:
        # Taken, yet not found: the email changed hands in between; another try settles it.
        raise TransientError("email taken but no customer holds it", system="shopify") from None
    customer = found[0]
    if customer.registration_id != registration_id:
        learned = {"shopify_customer_id": customer.id}
        return Outcome(
            customer.id, learned, note=CLAIM_NOTE, ownership=Ownership.CLAIM, request=(PROFILE, None)
        )
    return finish_own(shopify, registrant, customer)


def finish_own(shopify: ShopifyApi, registrant: Registrant, customer: ShopifyCustomer) -> Outcome:
    """Our own customer (it carries this registration's mark): add the address our create's own call
    may not have made, and own the address."""
    if customer.address_id is None and (registrant.postal_code or registrant.address):
        shopify.add_address(customer.id, postal_code=registrant.postal_code, address=registrant.address)
    differs = registrant.phone is not None and customer.phone != registrant.phone
    return Outcome(
        customer.id,
        {"shopify_customer_id": customer.id},
        note=ADOPTED_OTHER_PHONE_NOTE if differs else None,
        ownership=Ownership.OWNER,
    )


def apply_confirmed(shopify: ShopifyApi, registrant: Registrant, customer_id: str | None) -> Outcome:
    """The owner confirmed what this registration typed: write it onto their customer.

    Only the fields typed are written (an empty field never clears what the owner has), and never
    the e-mail address, which is what identifies them. Consent follows its own step.
    """
    if customer_id is None:
        found = shopify.find_customers_by_email(registrant.email)
        if len(found) != 1:
            raise TransientError("the confirmed customer is not found by its address", system="shopify")
        customer_id = found[0].id
    typed = {
        name: value
        for name, value in profiles.shopify_customer(registrant).items()
        if name in APPLIED_FIELDS and value
    }
    if typed:
        shopify.update_customer(customer_id, **typed)
    return Outcome(
        customer_id, {"shopify_customer_id": customer_id}, note=APPLIED_NOTE, ownership=Ownership.CONFIRMED
    )


# What a confirmed claim may change on the customer: the profile, not the address's identity.
APPLIED_FIELDS = frozenset({"first_name", "last_name", "phone", "locale", "postal_code", "address"})
