"""HubSpot CRM contacts connector (date-versioned API, HUBSPOT_API_VERSION): contacts mirrored from our
members, upserted by email, with the member facts in Membersync's custom properties; marketing consent
through the Communication Preferences API."""

from connectors.hubspot.answers import ValidationRuleRefused
from connectors.hubspot.client import HubSpotClient, HubSpotContact
from connectors.hubspot.subscriptions import SubscriptionRefused, SubscriptionStatus

__all__ = [
    "HubSpotClient",
    "HubSpotContact",
    "SubscriptionRefused",
    "SubscriptionStatus",
    "ValidationRuleRefused",
]
