"""Shopify Admin GraphQL connector: the customer master.

`documents` holds every GraphQL document the connector sends; tests validate each one against
Shopify's published schema and against the sandbox emulator's.
"""
