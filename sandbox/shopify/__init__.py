"""Shopify Admin GraphQL emulator (customer subset of the 2026-10 schema), served by `create_app()`.

Modules: schema (hand-written SDL), customers (store and validation), metafields, search (query
syntax), pagination (connections), cost (query cost and leaky bucket), bulk (bulk operations and
JSONL), resolvers, execution (one GraphQL request end to end), app (Flask, auth, versions, controls).
"""

from sandbox.shopify.app import DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSIONS, create_app

__all__ = ["DEFAULT_ACCESS_TOKEN", "DEFAULT_API_VERSIONS", "create_app"]
