"""What each system receives of a registration (the profile that Shopify owns, mirrored elsewhere).

One function per system, so the field mapping lives in one place and every step and the backfill
send the same shape. Marketing consent is double opt-in: a registration asks for it, only the owner's
confirmation gives it. So at create Shopify gets PENDING for a registrant who asked (nothing for one
who did not), Smaregi mailReceiveFlag "0", HubSpot no marketing property at all; the confirmation
steps set the consent later (Shopify customerEmailMarketingConsentUpdate, Smaregi's flag, HubSpot's
subscription with a legal basis).
"""

from __future__ import annotations

from typing import Any

from registrations.steps.base import Registrant

# Smaregi's sex codes: "0" unknown, "1" male, "2" female.
SMAREGI_SEX = {"male": "1", "female": "2", "unspecified": "0"}


def shopify_customer(registration: Registrant) -> dict[str, Any]:
    """Keyword arguments of ShopifyClient.create_customer."""
    return {
        "email": registration.email,
        "first_name": registration.first_name,
        "last_name": registration.last_name,
        "phone": registration.phone,
        "locale": registration.locale,
        # A request (PENDING), never a subscription: see the module's docstring.
        "accepts_marketing": bool(registration.accepts_marketing),
        "postal_code": registration.postal_code,
        "address": registration.address,
    }


def smaregi_member(registration: Registrant) -> dict[str, Any]:
    """Keyword arguments of SmaregiClient.create_member (without the customer code)."""
    return {
        "last_name": registration.last_name,
        "first_name": registration.first_name,
        "mail_address": registration.email,
        "last_kana": registration.last_name_kana,
        "first_kana": registration.first_name_kana,
        "phone_number": registration.phone,
        "post_code": registration.postal_code,
        "address": registration.address,
        "sex": SMAREGI_SEX.get(registration.gender) if registration.gender else None,
        "birth_date": registration.birth_date.isoformat() if registration.birth_date else None,
        # "0" until the owner confirms through the mailed link, whatever the form's checkbox said.
        "mail_receive_flag": False,
    }


def hubspot_properties(registration: Registrant) -> dict[str, str]:
    """HubSpot contact properties (standard ones only: a portal needs no custom property set up).

    Never a marketing status (hs_marketable_status and the like cannot be set through the API; the
    connector refuses them): consent goes through HubSpotClient.subscribe after confirmation.
    """
    properties = {
        "email": registration.email,
        "firstname": registration.first_name,
        "lastname": registration.last_name,
        "phone": registration.phone,
        "zip": registration.postal_code,
        "address": registration.address,
        "hs_language": registration.locale,
    }
    return {name: value for name, value in properties.items() if value}
