"""`POST /webhooks/smaregi`: Smaregi's `pos:customers` event, queued for a re-read of the ids it names.

Smaregi sends header `Smaregi-Event: pos:customers` and a body `{"contractId", "event", "action":
"created|edited|deleted|bulk-update|bulk-deleted", "customerIds": ["1", ...]}`. It documents no
signing scheme, so the endpoint requires a shared secret of our own in the `X-Membersync-Webhook-Token`
header (SMAREGI_WEBHOOK_TOKEN; configure Smaregi's webhook to send it), compared in constant time,
and trusts nothing in the body but the ids: the members are re-read through the API by a task, and
the directory changes only by what Smaregi answers there. The answer is 202 at once.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.errors import error_response
from app.limits import public_intake
from app.services import services
from tasks.directory import REREAD_BATCH, REREAD_TASK

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

TOKEN_HEADER = "X-Membersync-Webhook-Token"
EVENT_HEADER = "Smaregi-Event"
CUSTOMERS_EVENT = "pos:customers"
ACTIONS = frozenset({"created", "edited", "deleted", "bulk-update", "bulk-deleted"})
# customerIds are decimal numbers on Smaregi; anything else is not one of its ids.
_CUSTOMER_ID = re.compile(r"^[0-9]{1,32}$")
MAX_IDS = 10_000


@blueprint.post("/smaregi")
@public_intake
def smaregi_customers() -> tuple[Response, int]:
    """Accept a `pos:customers` event: 202 once its ids are queued for a re-read."""
    expected = services().settings.smaregi_webhook_token.value
    if not expected:
        # Without a configured secret nobody can be authenticated: refuse rather than trust anyone.
        return error_response(403, {TOKEN_HEADER: ["SMAREGI_WEBHOOK_TOKEN is not configured."]})
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return error_response(401, {TOKEN_HEADER: ["Missing or wrong webhook token."]})
    if request.headers.get(EVENT_HEADER) != CUSTOMERS_EVENT:
        return error_response(400, {EVENT_HEADER: [f"Must be {CUSTOMERS_EVENT}."]})
    if request.mimetype != "application/json":
        return error_response(415, {"_request": ["Content-Type must be application/json."]})
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, {"_request": ["Body is not valid JSON."]})
    errors = _problems(body)
    if errors:
        return error_response(422, errors)
    ids = list(dict.fromkeys(str(value) for value in body["customerIds"]))
    celery = services().celery
    try:
        for start in range(0, len(ids), REREAD_BATCH):
            celery.send_task(REREAD_TASK, args=(ids[start : start + REREAD_BATCH],))
    except Exception:  # the broker is down: say so, so the sender tries again (the ids are not kept)
        log.exception("could not queue the smaregi webhook's re-read")
        response, status = error_response(503, {"_request": ["Could not queue the event; try again."]})
        response.headers["Retry-After"] = "30"
        return response, status
    return jsonify({"accepted": len(ids)}), 202


def _problems(body: Any) -> dict[str, list[str]]:
    """What is wrong with the body, by field; only `action` and `customerIds` are used."""
    if not isinstance(body, dict):
        return {"_request": ["Body must be a JSON object."]}
    errors: dict[str, list[str]] = {}
    action = body.get("action")
    if action not in ACTIONS:
        errors["action"] = [f"Must be one of {', '.join(sorted(ACTIONS))}."]
    ids = body.get("customerIds")
    if not isinstance(ids, list) or not ids:
        errors["customerIds"] = ["Must be a non-empty list of customer ids."]
    elif len(ids) > MAX_IDS:
        errors["customerIds"] = [f"At most {MAX_IDS} ids per event."]
    elif not all(isinstance(value, str | int) and not isinstance(value, bool) for value in ids) or not all(
        _CUSTOMER_ID.match(str(value)) for value in ids
    ):
        errors["customerIds"] = ["Every id must be a decimal customer id."]
    return errors
