"""Which Admin API version answered: Shopify serves a retired or unknown version with another one.

A request for a version Shopify no longer supports is not refused: the oldest supported version
answers it, and every answer's `X-Shopify-API-Version` header names the version that served it
(https://shopify.dev/docs/api/usage/versioning). So a forgotten SHOPIFY_API_VERSION keeps working
until a field it relies on is gone; this makes the drift visible: a warning (once per process per
pair) and a counter for every such answer.
"""

from __future__ import annotations

import logging
import re
import threading

import requests
from prometheus_client import Counter

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Shopify-API-Version"
_REQUESTED = re.compile(r"/admin/api/([^/]+)/graphql\.json$")

VERSION_MISMATCH = Counter(
    "membersync_shopify_api_version_mismatch_total",
    "Shopify answers served by another Admin API version than the one requested.",
    ["requested", "served"],
)

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def requested_version(url: str | None) -> str | None:
    """The version in an Admin GraphQL URL (/admin/api/{version}/graphql.json), None for other URLs."""
    match = _REQUESTED.search((url or "").split("?")[0])
    return match.group(1) if match else None


def check_served_version(response: requests.Response) -> str | None:
    """Count (and warn once about) an answer served by another version; the served version, if said."""
    served = response.headers.get(VERSION_HEADER)
    requested = requested_version(response.request.url if response.request is not None else response.url)
    if not served or requested is None or served == requested:
        return served
    VERSION_MISMATCH.labels(requested=requested, served=served).inc()
    with _warned_lock:
        first = (requested, served) not in _warned
        _warned.add((requested, served))
    if first:
        log.warning(
            "Shopify served Admin API version %s for a request to %s (a retired or unknown version); "
            "set SHOPIFY_API_VERSION to a supported one",
            served,
            requested,
        )
    return served
