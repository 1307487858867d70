"""Shopify Admin GraphQL connector: the customer master.

`documents` holds every GraphQL document the connector sends; tests validate each one against
Shopify's published schema and against the sandbox emulator's. `client.ShopifyClient` sends them.
"""

from connectors.shopify.client import ConsentRefused, EmailTaken, PhoneTaken, ShopifyClient
from connectors.shopify.mapping import ShopifyCustomer

__all__ = ["ConsentRefused", "EmailTaken", "PhoneTaken", "ShopifyClient", "ShopifyCustomer"]
