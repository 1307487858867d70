"""Every vendor client of one process, built from the system registry with the shared rate limits."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, cast

import redis

from config.settings import Settings
from config.systems import SYSTEMS
from connectors.interfaces import HubSpotApi, MailSender, ShopifyApi, SmaregiApi
from connectors.tokenbucket import limiters_from_settings


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
        limiters = limiters_from_settings(settings, client)
        clients = {}
        for system in SYSTEMS:
            factory = resolve(system.connector)
            if system.name in limiters:
                clients[system.name] = factory.from_settings(settings, limiter=limiters[system.name])
            else:
                clients[system.name] = factory.from_settings(settings)
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
