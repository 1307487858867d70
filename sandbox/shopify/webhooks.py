"""Shopify's customer webhooks, sent by the sandbox shop the way Shopify sends them.

When a customer is created, changed or deleted through the Admin GraphQL API, the shop POSTs a JSON body in
REST snake_case (`id`, `admin_graphql_api_id`, `email`, `first_name`, `last_name`, `updated_at`, ...)
to the configured URL with Shopify's headers: X-Shopify-Topic, X-Shopify-Shop-Domain,
X-Shopify-API-Version, X-Shopify-Webhook-Id, X-Shopify-Event-Id, X-Shopify-Triggered-At and
X-Shopify-Hmac-Sha256 = base64(HMAC-SHA256(app client secret, raw body)).

As Shopify does, deliveries leave from a background thread (a mutation's answer never waits for
them), a failed delivery (no answer, or not 2xx) is retried with the original payload and the same
webhook id (Shopify: 8 times over 4 hours; here a shortened schedule), and now and then a delivery is
sent twice (`duplicate_rate`). Whether Shopify keeps the webhook id across retries is UNCONFIRMED;
the sandbox keeps it, which is what a receiver must de-duplicate on either way. The body of
customers_email_marketing_consent/update (`customer_id`, `email_address`, `email_marketing_consent`)
is UNCONFIRMED in detail.

Configured by `membersync sandbox` from SANDBOX_SHOPIFY_WEBHOOK_URL and SHOPIFY_WEBHOOK_SECRET
(sandbox/runner.py); unset, nothing is sent.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

SHOP_DOMAIN = "sandbox.myshopify.com"
API_VERSION = "2026-10"
# Shopify: 8 retries over 4 hours. The sandbox keeps the count and shortens the waits.
DEFAULT_RETRY_SECONDS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
DEFAULT_DUPLICATE_RATE = 0.02
# Shopify allows about 1 s to connect and 5 s in total.
CONNECT_TIMEOUT_SECONDS = 1.0
TOTAL_TIMEOUT_SECONDS = 5.0
KEPT_DELIVERIES = 1000

CUSTOMERS_CREATE = "customers/create"
CUSTOMERS_UPDATE = "customers/update"
CUSTOMERS_DELETE = "customers/delete"
CONSENT_UPDATE = "customers_email_marketing_consent/update"


def sign(secret: str, body: bytes) -> str:
    """X-Shopify-Hmac-Sha256 of `body`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def customer_payload(record: dict[str, Any]) -> dict[str, Any]:
    """A customer as a REST-shaped webhook body (snake_case, the numeric id and the global id)."""
    legacy_id = int(record["legacyResourceId"])
    default = (record.get("addresses") or [None])[0]
    consent = record.get("emailMarketingConsent") or {}
    return {
        "id": legacy_id,
        "email": record.get("email"),
        "created_at": record.get("createdAt"),
        "updated_at": record.get("updatedAt"),
        "first_name": record.get("firstName"),
        "last_name": record.get("lastName"),
        "state": str(record.get("state") or "").lower(),
        "note": record.get("note"),
        "verified_email": record.get("verifiedEmail"),
        "tags": ", ".join(record.get("tags") or []),
        "phone": record.get("phone"),
        "email_marketing_consent": _consent(consent) if consent else None,
        "default_address": _address(default, legacy_id) if default else None,
        "admin_graphql_api_id": f"gid://shopify/Customer/{legacy_id}",
    }


def deleted_payload(record: dict[str, Any]) -> dict[str, Any]:
    """customers/delete's body: the customer's ids and empty fields (it is gone)."""
    legacy_id = int(record["legacyResourceId"])
    return {
        "id": legacy_id,
        "phone": None,
        "addresses": [],
        "tax_exemptions": [],
        "email_marketing_consent": None,
        "sms_marketing_consent": None,
        "admin_graphql_api_id": f"gid://shopify/Customer/{legacy_id}",
    }


def consent_payload(record: dict[str, Any]) -> dict[str, Any]:
    """customers_email_marketing_consent/update's body (its exact shape is UNCONFIRMED)."""
    return {
        "customer_id": int(record["legacyResourceId"]),
        "email_address": record.get("email"),
        "email_marketing_consent": _consent(record.get("emailMarketingConsent") or {}),
    }


def _consent(consent: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": str(consent.get("marketingState") or "").lower(),
        "opt_in_level": str(consent.get("marketingOptInLevel") or "").lower() or None,
        "consent_updated_at": consent.get("consentUpdatedAt"),
    }


def _address(address: dict[str, Any], customer_id: int) -> dict[str, Any]:
    number = str(address.get("id", "")).split("?")[0].rpartition("/")[2]
    return {
        "id": int(number) if number.isdigit() else None,
        "customer_id": customer_id,
        "address1": address.get("address1"),
        "zip": address.get("zip"),
        "country_code": address.get("countryCodeV2"),
        "default": True,
    }


@dataclass(order=True)
class _Due:
    due: float
    order: int
    delivery: _Delivery = field(compare=False)


@dataclass
class _Delivery:
    topic: str
    body: bytes
    webhook_id: str
    event_id: str
    triggered_at: str
    attempt: int = 0


class WebhookSender:
    """Sends the shop's webhooks to one URL from a background thread, with retries and duplicates."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        duplicate_rate: float = DEFAULT_DUPLICATE_RATE,
        retry_seconds: Sequence[float] = DEFAULT_RETRY_SECONDS,
        shop_domain: str = SHOP_DOMAIN,
        api_version: str = API_VERSION,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= duplicate_rate <= 1:
            raise ValueError("duplicate_rate must be between 0 and 1")
        self.url = url
        self.secret = secret
        self.duplicate_rate = duplicate_rate
        self.retry_seconds = tuple(retry_seconds)
        self.shop_domain = shop_domain
        self.api_version = api_version
        self._rng = rng or random.Random()
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._http = requests.Session()
        # What was sent (topic, webhook id, attempt, answer): GET /_sandbox/webhooks.
        self.deliveries: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT_DELIVERIES)
        self._thread = threading.Thread(target=self._run, name="sandbox-shopify-webhooks", daemon=True)
        self._thread.start()

    # --- what the shop calls ------------------------------------------------------------------------

    def customer_changed(self, topic: str, record: dict[str, Any]) -> None:
        """Queue the webhook of `topic` for this customer record (as it is now)."""
        if topic == CONSENT_UPDATE:
            payload = consent_payload(record)
        elif topic == CUSTOMERS_DELETE:
            payload = deleted_payload(record)
        else:
            payload = customer_payload(record)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        delivery = _Delivery(
            topic=topic,
            body=body,
            webhook_id=str(uuid.uuid4()),
            event_id=str(uuid.uuid4()),
            triggered_at=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        )
        self._schedule(delivery, 0.0)
        if self._rng.random() < self.duplicate_rate:
            # The same delivery once more (same webhook id and body), as Shopify occasionally does.
            self._schedule(_Delivery(**{**delivery.__dict__, "attempt": 0}), 0.05)

    def clear(self) -> None:
        """Forget every delivery not sent yet and what was sent (the sandbox's reset)."""
        with self._wake:
            self._due.clear()
            self.deliveries.clear()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=TOTAL_TIMEOUT_SECONDS + 1)

    def state(self) -> dict[str, Any]:
        with self._wake:
            return {"url": self.url, "pending": len(self._due), "sent": list(self.deliveries)}

    # --- the thread -----------------------------------------------------------------------------

    def _schedule(self, delivery: _Delivery, delay: float) -> None:
        with self._wake:
            heapq.heappush(self._due, _Due(time.monotonic() + delay, next(self._order), delivery))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._due or self._due[0].due > time.monotonic()):
                    wait = self._due[0].due - time.monotonic() if self._due else None
                    self._wake.wait(wait)
                if self._stopped:
                    return
                delivery = heapq.heappop(self._due).delivery
            self._send(delivery)

    def _send(self, delivery: _Delivery) -> None:
        delivery.attempt += 1
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": delivery.event_id,
            "X-Shopify-Triggered-At": delivery.triggered_at,
            "X-Shopify-Hmac-Sha256": sign(self.secret, delivery.body),
        }
        try:
            response = self._http.post(
                self.url,
                data=delivery.body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, TOTAL_TIMEOUT_SECONDS),
            )
            status: int | None = response.status_code
        except requests.RequestException:
            status = None
        self.deliveries.append(
            {
                # The sandbox keeps what it sent, so a test can send one delivery again byte for byte.
                "headers": headers,
                "body": delivery.body.decode(),
                "topic": delivery.topic,
                "webhook_id": delivery.webhook_id,
                "event_id": delivery.event_id,
                "attempt": delivery.attempt,
                "status": status,
            }
        )
        if status is not None and 200 <= status < 300:
            return
        if delivery.attempt <= len(self.retry_seconds):
            # The original payload, the same webhook id: only the attempt changes.
            self._schedule(delivery, self.retry_seconds[delivery.attempt - 1])
