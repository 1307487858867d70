"""HubSpot CRM v3 connector: contacts mirrored from our members, upserted by email."""

from connectors.hubspot.client import HubSpotClient, HubSpotContact

__all__ = ["HubSpotClient", "HubSpotContact"]
