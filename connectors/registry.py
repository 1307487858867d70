"""Every vendor client of one process, built from settings with the shared rate limits."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from connectors.hubspot import HubSpotClient
from connectors.mailer import Mailer
from connectors.shopify import ShopifyClient
from connectors.smaregi import SmaregiClient
from connectors.tokenbucket import limiters_from_settings


@dataclass
class Connectors:
    """The four systems a registration reaches."""

    shopify: ShopifyClient
    smaregi: SmaregiClient
    hubspot: HubSpotClient
    mailer: Mailer

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Connectors:
        """Clients for the configured vendors (the sandbox in embedded mode)."""
        limiters = limiters_from_settings(settings, client)
        return cls(
            shopify=ShopifyClient.from_settings(settings, limiter=limiters["shopify"]),
            smaregi=SmaregiClient.from_settings(settings, limiter=limiters["smaregi"]),
            hubspot=HubSpotClient.from_settings(settings, limiter=limiters["hubspot"]),
            mailer=Mailer.from_settings(settings),
        )
