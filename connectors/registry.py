"""Every vendor client of one process, built from the system registry with the shared rate limits."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

import redis

from config.settings import Settings
from config.systems import SYSTEMS
from connectors.interfaces import HubSpotApi, MailSender, ShopifyApi, SmaregiApi
from connectors.tokenbucket import client_limiters


def resolve(reference: str) -> Any:
    """The object a registry reference ("package.module:Attribute") names."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class Connectors:
    """The client of each registered system, by system name (`connectors["smaregi"]`)."""

    def __init__(self, clients: Mapping[str, Any]) -> None:
        self.clients = dict(clients)

    def __getitem__(self, system: str) -> Any:
        return self.clients[system]

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> Connectors:
        """Clients for the configured vendors (the sandbox in embedded mode), as the registry names them."""
        # Each client gets its buckets as keyword arguments: `limiter`, plus `write_limiter` for a
        # vendor that counts writes apart (see `client_limiters`).
        limiters = client_limiters(settings, client)
        clients = {}
        for system in SYSTEMS:
            if system.connector is None:
                continue  # a step that uses the other systems' clients
            factory = resolve(system.connector)
            clients[system.name] = factory.from_settings(settings, **limiters.get(system.name, {}))
        return cls(clients)

    # Typed views of the four systems the steps use.
    @property
    def shopify(self) -> ShopifyApi:
        return cast(ShopifyApi, self.clients["shopify"])

    @property
    def smaregi(self) -> SmaregiApi:
        return cast(SmaregiApi, self.clients["smaregi"])

    @property
    def hubspot(self) -> HubSpotApi:
        return cast(HubSpotApi, self.clients["hubspot"])

    @property
    def mailer(self) -> MailSender:
        return cast(MailSender, self.clients["email"])
