"""Links from an external id to the record in its vendor's own admin, for the console's pages.

- Shopify: https://admin.shopify.com/store/{store}/customers/{numeric id}, where {store} is
  SHOPIFY_SHOP without ".myshopify.com" (the handle Shopify's admin addresses a store by); the id
  may be stored as a gid (gid://shopify/Customer/N) or as its number.
- HubSpot: https://app.hubspot.com/contacts/{portal id}/record/0-1/{contact id} (0-1 is HubSpot's
  object type id of contacts); only when HUBSPOT_PORTAL_ID is set, since the id alone does not say
  which account it is in.
- Smaregi: no link. Smaregi documents no address of a member's page in its console, and a guessed one
  would send staff to the wrong place.

The templates open them in a new tab with rel="noopener noreferrer": the console's address (with a
registration id in it) is never sent to a vendor as a Referer.
"""

from __future__ import annotations

import re

from config.settings import Settings

SHOPIFY_CUSTOMER = "https://admin.shopify.com/store/{store}/customers/{id}"
HUBSPOT_CONTACT = "https://app.hubspot.com/contacts/{portal}/record/0-1/{id}"

_SHOPIFY_ID = re.compile(r"(?:gid://shopify/Customer/)?([0-9]{1,20})")
_STORE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_NUMBER = re.compile(r"[0-9]{1,20}")


def shopify_store(settings: Settings) -> str | None:
    """The store's handle in Shopify's admin addresses ("my-shop" of my-shop.myshopify.com)."""
    handle = settings.shopify_shop.strip().lower().removesuffix(".myshopify.com")
    return handle if _STORE.fullmatch(handle) else None


def vendor_admin_url(system: str, external_id: str | None, settings: Settings) -> str | None:
    """The vendor's admin page of `external_id` in `system`, or None when there is none to link."""
    if not external_id:
        return None
    if system == "shopify":
        match, store = _SHOPIFY_ID.fullmatch(external_id), shopify_store(settings)
        if match is None or store is None:
            return None
        return SHOPIFY_CUSTOMER.format(store=store, id=match.group(1))
    if system == "hubspot":
        portal = settings.hubspot_portal_id
        if portal is None or not _NUMBER.fullmatch(external_id):
            return None
        return HUBSPOT_CONTACT.format(portal=portal, id=external_id)
    return None
