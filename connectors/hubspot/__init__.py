"""HubSpot CRM v3 connector: contacts mirrored from our members, upserted by email; marketing consent
through the Communication Preferences API."""

from connectors.hubspot.client import HubSpotClient, HubSpotContact
from connectors.hubspot.subscriptions import SubscriptionRefused, SubscriptionStatus

__all__ = ["HubSpotClient", "HubSpotContact", "SubscriptionRefused", "SubscriptionStatus"]
