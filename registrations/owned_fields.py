"""The ownership map: which system owns each fact about a person, and what a mirror must be told.

Shopify owns the profile (e-mail, names, phone, postal code, address, marketing consent); Smaregi owns
the member number, rank and points; HubSpot owns nothing and mirrors both. Every path that moves a
fact after registration uses these pure functions: the Shopify webhook (profile → Smaregi, HubSpot),
the Smaregi webhook and transactions (member facts → Shopify metafields, HubSpot properties) and the
nightly reconciliation (both). So "what drifted" and "what to write" mean the same everywhere, and a
write of ours that comes back as a webhook finds nothing to change: no loops.

Two rules hold for every mirror write:
- An owner's empty value is never pushed: a clerk's phone number on the card is not erased because
  the online profile has none (we cannot tell "cleared on purpose" from "never given").
- Marketing consent is not here: only the owner's confirmation raises it (registrations.confirmations);
  reconciliation and webhooks never do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from config.email_address import canonical_email
from connectors.hubspot.properties import HUBSPOT_FACT_PROPERTIES
from connectors.shopify.documents import MEMBER_FACTS_NAMESPACE

SHOPIFY: Final = "shopify"
SMAREGI: Final = "smaregi"

# fact -> the system that owns it. HubSpot is absent on purpose: it owns nothing.
OWNER: Mapping[str, str] = {
    "email": SHOPIFY,
    "first_name": SHOPIFY,
    "last_name": SHOPIFY,
    "phone": SHOPIFY,
    "postal_code": SHOPIFY,
    "address": SHOPIFY,
    "marketing_consent": SHOPIFY,
    "member_number": SMAREGI,
    "rank": SMAREGI,
    "points": SMAREGI,
}

# Where the member facts live on the mirrors. Shopify: the app-owned namespace, which other apps and
# the merchant cannot edit (`$app:membersync`, stored by Shopify as app--<app id>--membersync), with
# metafield definitions (points number_integer). HubSpot: custom contact properties created through
# the Properties API (points a number).
SHOPIFY_APP_NAMESPACE: Final = MEMBER_FACTS_NAMESPACE
SHOPIFY_FACT_KEYS: Mapping[str, str] = {"member_number": "member_number", "points": "points", "rank": "rank"}
SHOPIFY_FACT_TYPES: Mapping[str, str] = {
    "member_number": "single_line_text_field",
    "points": "number_integer",
    "rank": "single_line_text_field",
}
# Profile fact -> HubSpot standard contact property / Smaregi update_member keyword.
HUBSPOT_PROFILE_PROPERTIES: Mapping[str, str] = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "postal_code": "zip",
    "address": "address",
}
SMAREGI_PROFILE_FIELDS: Mapping[str, str] = {
    "email": "mail_address",
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone_number",
    "postal_code": "post_code",
    "address": "address",
}


@dataclass(frozen=True)
class Profile:
    """The facts Shopify owns (but consent), as any system holds them; None = the system has none."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    postal_code: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class MemberFacts:
    """The facts Smaregi owns, as any system holds them; None = the system has none."""

    member_number: str | None = None
    points: int | None = None
    rank: str | None = None


# The field names, once: reconciliation compares every person of a shop with these.
_PROFILE_NAMES = tuple(item.name for item in fields(Profile))
_FACT_NAMES = tuple(item.name for item in fields(MemberFacts))


def _same(name: str, owner: str, mirror: str | None) -> bool:
    if name == "email":
        return mirror is not None and canonical_email(owner) == canonical_email(mirror)
    return owner.strip() == (mirror or "").strip()


def profile_drift(owner: Profile, mirror: Profile) -> dict[str, str]:
    """Profile facts whose owner value differs from the mirror's: fact name -> the owner's value.

    An empty owner value is never a drift (see the module's docstring); e-mail compares canonically.
    """
    drift: dict[str, str] = {}
    for name in _PROFILE_NAMES:
        value = getattr(owner, name)
        if value is None or not str(value).strip():
            continue
        if not _same(name, str(value), getattr(mirror, name)):
            drift[name] = str(value)
    return drift


def fact_drift(owner: MemberFacts, mirror: MemberFacts) -> dict[str, str]:
    """Member facts whose Smaregi value differs from the mirror's: fact name -> the value as text."""
    drift: dict[str, str] = {}
    for name in _FACT_NAMES:
        value = getattr(owner, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        current = getattr(mirror, name)
        if current is None or str(current).strip() != str(value).strip():
            drift[name] = str(value)
    return drift


def smaregi_update(drift: Mapping[str, str]) -> dict[str, str]:
    """Keyword arguments of SmaregiClient.update_member for a profile drift."""
    return {
        SMAREGI_PROFILE_FIELDS[name]: value for name, value in drift.items() if name in SMAREGI_PROFILE_FIELDS
    }


def hubspot_update(profile_changes: Mapping[str, str], fact_changes: Mapping[str, str]) -> dict[str, str]:
    """HubSpot contact properties for a profile drift and a member-fact drift."""
    properties = {HUBSPOT_PROFILE_PROPERTIES[name]: value for name, value in profile_changes.items()}
    properties.update({HUBSPOT_FACT_PROPERTIES[name]: value for name, value in fact_changes.items()})
    return properties


def hubspot_profile(properties: Mapping[str, str | None]) -> Profile:
    """The profile a HubSpot contact holds."""
    return Profile(
        **{name: properties.get(prop) or None for name, prop in HUBSPOT_PROFILE_PROPERTIES.items()}
    )


def hubspot_facts(properties: Mapping[str, str | None]) -> MemberFacts:
    """The member facts a HubSpot contact holds (points as an integer when it is one)."""
    points = properties.get(HUBSPOT_FACT_PROPERTIES["points"])
    return MemberFacts(
        member_number=properties.get(HUBSPOT_FACT_PROPERTIES["member_number"]) or None,
        points=_integer(points),
        rank=properties.get(HUBSPOT_FACT_PROPERTIES["rank"]) or None,
    )


def _integer(value: str | None) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        return int(float(str(value)))
    except ValueError:
        return None
