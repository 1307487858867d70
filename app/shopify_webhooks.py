"""`POST /webhooks/shopify`: Shopify's customer webhooks, verified, recorded once and queued.

Shopify signs each delivery: `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(app client secret, raw
body)). It is checked in constant time, over the bytes as received, against SHOPIFY_WEBHOOK_SECRET and,
during a rotation of the client secret, SHOPIFY_WEBHOOK_SECRET_PREVIOUS (Shopify may sign with the
older one for a while). A missing, wrong or tampered signature is a 401; without a configured secret
nobody can be authenticated and every delivery is refused (403).

Topics handled: customers/create, customers/update, customers/delete, customers/merge and
customers_email_marketing_consent/update; any other topic is answered 200 and ignored. From the body
only the customer's global id (`admin_graphql_api_id`) and its `updated_at` are read: the change is
recorded with ids and times (`registrations.changes`: de-duplicated on X-Shopify-Webhook-Id, a
delivery older than one already seen for the customer dropped as stale), and its task re-reads the
customer through the Admin API. Nothing else of the body is kept, queued or logged.

The answer is 200 as soon as the change is durable (Shopify allows 5 s and retries failures with the
original payload); the task is queued after the commit, and a change the broker did not take is
queued by the sweep. The endpoint has its own limit, not the public per-IP one
(`app.limits.webhook_limit`), keyed by the shop the delivery names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from flask import Response, request

from app.errors import error_response
from app.limits import webhook_limit
from app.services import services
from app.webhooks import blueprint
from config.observability import scrub_text
from registrations.changes import DUPLICATE, STALE_DELIVERY, Changes, Delivery
from registrations.owned_fields import SHOPIFY
from registrations.propagation import HANDLED_TOPICS
from tasks.changes import queue_change

log = logging.getLogger(__name__)

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
# A base64 SHA-256 is 44 characters; anything much longer is not a signature (not compared).
MAX_SIGNATURE_LENGTH = 128
MAX_WEBHOOK_ID_LENGTH = 128
_CUSTOMER_GID = re.compile(r"^gid://shopify/Customer/[0-9]{1,20}$")


def _shop() -> str:
    return request.headers.get(SHOP_HEADER, "")


_limit = webhook_limit("shopify-webhook", _shop)


def signature(secret: str, body: bytes) -> str:
    """What Shopify sends in X-Shopify-Hmac-Sha256 for `body` signed with `secret`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def signed_by_one_of(secrets: list[str], body: bytes, given: str) -> bool:
    """Constant-time check of `given` against each secret's signature of the raw `body`."""
    if not given or len(given) > MAX_SIGNATURE_LENGTH:
        return False
    try:
        presented = given.encode("ascii")
    except UnicodeEncodeError:
        return False
    matched = False
    for secret in secrets:  # every secret is compared, so timing does not tell which one matched
        matched |= hmac.compare_digest(presented, signature(secret, body).encode())
    return matched


@blueprint.post("/shopify")
@_limit
def shopify_customers() -> tuple[Response, int]:
    """Verify, record once, queue; 200 with an empty body."""
    settings = services().settings
    secrets = [
        secret.value
        for secret in (settings.shopify_webhook_secret, settings.shopify_webhook_secret_previous)
        if secret.value
    ]
    if not settings.shopify_webhook_secret.value:
        return error_response(403, {HMAC_HEADER: ["SHOPIFY_WEBHOOK_SECRET is not configured."]})
    body = request.get_data(cache=False)
    if not signed_by_one_of(secrets, body, request.headers.get(HMAC_HEADER, "")):
        return error_response(401, {HMAC_HEADER: ["Missing or wrong signature of the body."]})
    topic = request.headers.get(TOPIC_HEADER, "")
    if topic not in HANDLED_TOPICS:
        return Response(status=200), 200  # subscribed elsewhere or new: not ours to act on
    if _shop() != settings.shopify_shop:
        # Signed with our app's secret for another shop that installed it: not this service's data.
        log.warning("shopify webhook for another shop ignored")
        return Response(status=200), 200
    webhook_id = request.headers.get(WEBHOOK_ID_HEADER, "")
    if not webhook_id or len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        return error_response(400, {WEBHOOK_ID_HEADER: ["Missing or too long."]})
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, {"_request": ["Body is not valid JSON."]})
    subject = _customer_gid(document)
    if subject is None:
        return error_response(422, {"admin_graphql_api_id": ["Must be a Shopify customer global id."]})
    delivery = Delivery(
        source=SHOPIFY,
        topic=topic,
        delivery_id=webhook_id,
        subject=subject,
        triggered_at=_time(request.headers.get(TRIGGERED_AT_HEADER)),
        changed_at=_time(document.get("updated_at") if isinstance(document, dict) else None),
    )
    changes = Changes(services().database)
    received = changes.receive(delivery)
    if received.verdict in (DUPLICATE, STALE_DELIVERY):
        log.info("shopify webhook %s: change %s, %s", topic, received.change_id, received.verdict)
    if received.queue:
        try:
            queue_change(services().celery, received.change_id)
        except Exception as error:  # durable already: the sweep queues it once the broker is back
            log.warning(
                "change %s not queued (%s); the sweep will", received.change_id, scrub_text(str(error))
            )
        else:
            changes.mark_queued([received.change_id])
    return Response(status=200), 200


def _customer_gid(document: Any) -> str | None:
    """The customer's global id in a REST-shaped body (`admin_graphql_api_id`, else from the number)."""
    if not isinstance(document, dict):
        return None
    gid = document.get("admin_graphql_api_id")
    # customers_email_marketing_consent/update names the customer by `customer_id` (UNCONFIRMED).
    number = document.get("id", document.get("customer_id"))
    if gid is None and isinstance(number, int) and not isinstance(number, bool):
        gid = f"gid://shopify/Customer/{number}"
    return gid if isinstance(gid, str) and _CUSTOMER_GID.match(gid) else None


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time (Shopify's `2026-12-06T10:00:00-05:00` or `...Z`), None when absent or bad."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
