"""HubSpot marketing consent: the Communication Preferences API (v3), never a contact property.

Facts this follows, and where they come from:
- `hs_marketable_status` (marketing contact status) cannot be modified through the API (HubSpot
  knowledge base, "Manage marketing contacts settings for your integrations"): confirmed.
- Subscription status belongs to the email address, not to a contact, and can be set for an address
  no contact has yet (HubSpot's email subscription API reference): confirmed.
- `GET /communication-preferences/v3/definitions` → `{"subscriptionDefinitions": [{id, name,
  description, isActive, isDefault, isInternal, purpose, communicationMethod, ...}]}`;
  `GET /communication-preferences/v3/status/email/{emailAddress}` → `{"recipient",
  "subscriptionStatuses": [{id, name, status: SUBSCRIBED | NOT_SUBSCRIBED, sourceOfStatus:
  PORTAL_WIDE_STATUS | BRAND_WIDE_STATUS | SUBSCRIPTION_STATUS, legalBasis, legalBasisExplanation}]}`;
  `POST /communication-preferences/v3/subscribe` and `/unsubscribe` with `{"emailAddress",
  "subscriptionId", "legalBasis", "legalBasisExplanation"}` → one status object (developers.hubspot.com
  API reference, v3 "legacy" pages; the same shapes in HubSpot's generated clients): confirmed.
- Legal bases: CONSENT_WITH_NOTICE, LEGITIMATE_INTEREST_CLIENT, LEGITIMATE_INTEREST_OTHER,
  LEGITIMATE_INTEREST_PQL, NON_GDPR, PERFORMANCE_OF_CONTRACT, PROCESS_AND_STORE; required (with the
  explanation) on GDPR-enabled portals: confirmed.
- v3 subscribe "will not allow you to resubscribe contacts who have opted out" (HubSpot's guide):
  confirmed. How it refuses that, and whether subscribing an address already subscribed (or
  unsubscribing one already unsubscribed) is a 400, is UNCONFIRMED: the client never reads the
  wording, it reads the address's status back after any 400 and decides from that.
- `hs_email_optout` ("unsubscribed from all email") and the per-subscription `hs_email_optout_<id>`
  are read-only (their property definitions say readOnlyValue): UNCONFIRMED beyond that; we never
  write them, nor any other marketing-status property.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.errors import PermanentError
from connectors.hubspot.answers import SYSTEM

PREFERENCES = "/communication-preferences/v3"
LEGAL_BASES = frozenset(
    {
        "CONSENT_WITH_NOTICE",
        "LEGITIMATE_INTEREST_CLIENT",
        "LEGITIMATE_INTEREST_OTHER",
        "LEGITIMATE_INTEREST_PQL",
        "NON_GDPR",
        "PERFORMANCE_OF_CONTRACT",
        "PROCESS_AND_STORE",
    }
)
# Double opt-in: the owner of the address confirmed, having been shown what they agree to.
DEFAULT_LEGAL_BASIS = "CONSENT_WITH_NOTICE"
SUBSCRIBED = "SUBSCRIBED"
NOT_SUBSCRIBED = "NOT_SUBSCRIBED"

# Contact properties that carry a marketing status: HubSpot computes them or sets them only through
# the subscription calls, so a contact write never names one.
MARKETING_PROPERTIES = frozenset(
    {
        "hs_marketable_status",
        "hs_marketable_reason_id",
        "hs_marketable_reason_type",
        "hs_marketable_until_renewal",
        "hs_email_optout",
    }
)
_PER_SUBSCRIPTION_OPTOUT = re.compile(r"hs_email_optout_\d+")


class SubscriptionRefused(PermanentError):
    """HubSpot will not put the address in the state asked (e.g. v3 never resubscribes an opt-out)."""

    reason = "subscription_refused"


class NoSubscriptionType(PermanentError):
    """Which subscription type marketing consent goes to is not clear: set HUBSPOT_SUBSCRIPTION_ID."""

    reason = "no_subscription_type"


@dataclass(frozen=True)
class SubscriptionDefinition:
    """One subscription type of the portal (`GET /communication-preferences/v3/definitions`)."""

    id: str
    name: str
    active: bool
    internal: bool
    default: bool

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> SubscriptionDefinition:
        return cls(
            id=str(record.get("id", "")),
            name=str(record.get("name") or ""),
            active=bool(record.get("isActive", False)),
            internal=bool(record.get("isInternal", False)),
            default=bool(record.get("isDefault", False)),
        )


@dataclass(frozen=True)
class SubscriptionStatus:
    """An address's status for one subscription type, as HubSpot answered it."""

    subscription_id: str
    status: str  # SUBSCRIBED or NOT_SUBSCRIBED
    source_of_status: str | None = None  # PORTAL_WIDE_STATUS: opted out of all email
    legal_basis: str | None = None
    legal_basis_explanation: str | None = None

    @property
    def subscribed(self) -> bool:
        return self.status == SUBSCRIBED

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> SubscriptionStatus:
        return cls(
            subscription_id=str(record.get("id", "")),
            status=str(record.get("status") or NOT_SUBSCRIBED),
            source_of_status=record.get("sourceOfStatus"),
            legal_basis=record.get("legalBasis"),
            legal_basis_explanation=record.get("legalBasisExplanation"),
        )


def marketing_subscription(definitions: Iterable[SubscriptionDefinition]) -> str:
    """The id of the portal's one active, non-internal subscription type; NoSubscriptionType otherwise."""
    candidates = [definition for definition in definitions if definition.active and not definition.internal]
    if len(candidates) == 1:
        return candidates[0].id
    ids = ", ".join(definition.id for definition in candidates) or "none"
    raise NoSubscriptionType(
        f"{SYSTEM} subscription definitions: {len(candidates)} active subscription types ({ids}); "
        "set HUBSPOT_SUBSCRIPTION_ID to the one marketing consent belongs to",
        system=SYSTEM,
    )


def is_marketing_property(name: str) -> bool:
    """Whether a contact property carries a marketing status (never written by Membersync)."""
    return name in MARKETING_PROPERTIES or bool(_PER_SUBSCRIPTION_OPTOUT.fullmatch(name))


def refuse_marketing_properties(properties: Iterable[str]) -> None:
    """ValueError naming any marketing-status property: consent goes through subscribe/unsubscribe."""
    named = sorted(name for name in properties if is_marketing_property(name))
    if named:
        raise ValueError(
            f"HubSpot contact property {', '.join(named)} is a marketing status: HubSpot does not let the "
            "API set it; consent goes through HubSpotClient.subscribe / unsubscribe"
        )
