"""Every vendor client of one process, by plain import, with the shared rate limits.

`config.systems` is the bottom layer and cannot import the clients, so the registry names each system
and `Connectors` gives it its client: one typed attribute per system, under the system's name. The
consent system has no client of its own: its step uses the three vendors' clients.
`tests/unit/test_wiring.py` checks that the attributes cover exactly the registry's systems that have
a client, and the real clients and the fakes against the Protocols of `connectors.interfaces`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from connectors.hubspot import HubSpotClient
from connectors.interfaces import HubSpotApi, MailSender, ShopifyApi, SmaregiApi
from connectors.mailer import Mailer
from connectors.shopify import ShopifyClient
from connectors.smaregi import SmaregiClient
from connectors.tokenbucket import client_limiters

# The registered systems whose step uses the other systems' clients instead of one of its own.
WITHOUT_CLIENT = frozenset({"consent"})


@dataclass(frozen=True)
class Connectors:
    """The client of each registered system (the in-process fakes in unit tests)."""

    shopify: ShopifyApi
    smaregi: SmaregiApi
    hubspot: HubSpotApi
    # The `email` system's client: the SMTP mailer (`connectors.mailer`).
    email: MailSender

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Connectors:
        """Clients for the configured vendors (the sandbox in embedded mode).

        Each client gets its buckets as keyword arguments: `limiter`, plus `write_limiter` for a
        vendor that counts writes apart (see `client_limiters`). Assigning each real client to its
        Protocol-typed attribute is what lets mypy check the client against the Protocol.
        """
        limiters = client_limiters(settings, client)
        return cls(
            shopify=ShopifyClient.from_settings(settings, **limiters.get("shopify", {})),
            smaregi=SmaregiClient.from_settings(settings, **limiters.get("smaregi", {})),
            hubspot=HubSpotClient.from_settings(settings, **limiters.get("hubspot", {})),
            email=Mailer.from_settings(settings),
        )
