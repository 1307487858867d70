"""`POST /webhooks/smaregi/<token>`: Smaregi's `pos:customers` and `pos:transactions` events, queued
for a re-read of their ids.

Smaregi sends header `Smaregi-Event: pos:customers` and a body `{"contractId", "event", "action":
"created|edited|deleted|bulk-update|bulk-deleted", "customerIds": ["1", ...]}`. It documents no
signing scheme and no custom header, so the shared secret of our own (SMAREGI_WEBHOOK_TOKEN) travels
in the URL path Smaregi is given; `POST /webhooks/smaregi` with the secret in the
`X-Membersync-Webhook-Token` header is the alternative, for senders that can set one. Both are
compared in constant time; the path form is redacted from every log line and Sentry URL
(config.observability). The body's `contractId` must be our SMAREGI_CONTRACT_ID, and nothing else in it
is trusted but the ids: the members are re-read through the API by a task, and the directory changes
only by what Smaregi answers there. The answer is 200 with an empty body at once (Smaregi wants 200
within seconds and does not retry, per third parties), and the endpoint has its own limit rather than
the public per-IP one (`app.limits.webhook_limit`).

`Smaregi-Event: pos:transactions` (a sale or a point movement at the till; whether those fire
`pos:customers` too, Smaregi does not say) carries `{"contractId", "event", "action",
"transactionHeadIds": [...]}`: the shape of Smaregi's reference (webhook-transactions) as its
developer community quotes it and a third-party capture shows it (`"action": "created"`). The full
list of its actions is not documented where we could read it, so any action is accepted and only the
ids are used: the transactions are read to learn their members (`tasks.mirror.TRANSACTIONS_TASK`),
which are then re-read and mirrored.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

from flask import Blueprint, Response, request

from app.errors import error_response
from app.limits import webhook_limit
from app.services import services
from tasks.directory import REREAD_BATCH, REREAD_TASK
from tasks.mirror import TRANSACTIONS_TASK

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

TOKEN_HEADER = "X-Membersync-Webhook-Token"
EVENT_HEADER = "Smaregi-Event"
CUSTOMERS_EVENT = "pos:customers"
TRANSACTIONS_EVENT = "pos:transactions"
ACTIONS = frozenset({"created", "edited", "deleted", "bulk-update", "bulk-deleted"})
# Each event: the body's list of ids, and the task that re-reads them.
EVENT_IDS = {CUSTOMERS_EVENT: "customerIds", TRANSACTIONS_EVENT: "transactionHeadIds"}
EVENT_TASKS = {CUSTOMERS_EVENT: REREAD_TASK, TRANSACTIONS_EVENT: TRANSACTIONS_TASK}
MAX_ACTION_LENGTH = 64
# customerIds and transactionHeadIds are decimal numbers on Smaregi; anything else is not one of its ids.
_CUSTOMER_ID = re.compile(r"^[0-9]{1,32}$")
MAX_IDS = 10_000
# Longer than any token we would configure; a longer one is refused before it is compared.
MAX_TOKEN_LENGTH = 512


def _presented_token() -> str:
    """The secret this request presents: the path segment, else the header."""
    token = (request.view_args or {}).get("token")
    return token if isinstance(token, str) else request.headers.get(TOKEN_HEADER, "")


_limit = webhook_limit("smaregi-webhook", _presented_token)


@blueprint.post("/smaregi/<token>")
@_limit
def smaregi_customers_by_path(token: str) -> tuple[Response, int]:
    """The primary form: the secret is the last path segment."""
    return _receive(token, wrong_status=403)


@blueprint.post("/smaregi")
@_limit
def smaregi_customers() -> tuple[Response, int]:
    """The alternative: the secret in the `X-Membersync-Webhook-Token` header."""
    return _receive(request.headers.get(TOKEN_HEADER, ""), wrong_status=401)


def _token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison of bytes; an overlong or unencodable token simply does not match."""
    if len(given) > MAX_TOKEN_LENGTH:
        return False
    try:
        presented = given.encode()
    except UnicodeEncodeError:  # a lone surrogate: no configured token has one
        return False
    return hmac.compare_digest(presented, expected.encode())


def _receive(given: str, *, wrong_status: int) -> tuple[Response, int]:
    """Accept a `pos:customers` event: 200 with an empty body once its ids are queued."""
    settings = services().settings
    expected = settings.smaregi_webhook_token.value
    if not expected:
        # Without a configured secret nobody can be authenticated: refuse rather than trust anyone.
        return error_response(403, {TOKEN_HEADER: ["SMAREGI_WEBHOOK_TOKEN is not configured."]})
    if not _token_matches(given, expected):
        return error_response(wrong_status, {TOKEN_HEADER: ["Missing or wrong webhook token."]})
    event = request.headers.get(EVENT_HEADER, "")
    if event not in EVENT_IDS:
        return error_response(400, {EVENT_HEADER: [f"Must be one of {', '.join(sorted(EVENT_IDS))}."]})
    if request.mimetype != "application/json":
        return error_response(415, {"_request": ["Content-Type must be application/json."]})
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error_response(400, {"_request": ["Body is not valid JSON."]})
    if isinstance(body, dict) and body.get("contractId") != settings.smaregi_contract_id:
        # Another contract's event (or a forged one): its ids are not ours to re-read. Logged
        # without the body.
        log.warning("smaregi webhook refused: contractId is not SMAREGI_CONTRACT_ID")
        return error_response(403, {"contractId": ["Not this service's Smaregi contract."]})
    errors = _problems(body, event)
    if errors:
        return error_response(422, errors)
    ids = list(dict.fromkeys(str(value) for value in body[EVENT_IDS[event]]))
    celery = services().celery
    try:
        for start in range(0, len(ids), REREAD_BATCH):
            celery.send_task(EVENT_TASKS[event], args=(ids[start : start + REREAD_BATCH],))
    except Exception:  # the broker is down: say so, so the sender tries again (the ids are not kept)
        log.exception("could not queue the smaregi webhook's re-read")
        response, status = error_response(503, {"_request": ["Could not queue the event; try again."]})
        response.headers["Retry-After"] = "30"
        return response, status
    return Response(status=200), 200


def _problems(body: Any, event: str = CUSTOMERS_EVENT) -> dict[str, list[str]]:
    """What is wrong with the body, by field; only `action` and the event's ids are used."""
    if not isinstance(body, dict):
        return {"_request": ["Body must be a JSON object."]}
    errors: dict[str, list[str]] = {}
    action = body.get("action")
    if event == CUSTOMERS_EVENT and action not in ACTIONS:
        errors["action"] = [f"Must be one of {', '.join(sorted(ACTIONS))}."]
    elif not isinstance(action, str) or not action or len(action) > MAX_ACTION_LENGTH:
        errors["action"] = ["Must be the event's action."]
    name = EVENT_IDS[event]
    what = "customer" if event == CUSTOMERS_EVENT else "transaction"
    ids = body.get(name)
    if not isinstance(ids, list) or not ids:
        errors[name] = [f"Must be a non-empty list of {what} ids."]
    elif len(ids) > MAX_IDS:
        errors[name] = [f"At most {MAX_IDS} ids per event."]
    elif not all(isinstance(value, str | int) and not isinstance(value, bool) for value in ids) or not all(
        _CUSTOMER_ID.match(str(value)) for value in ids
    ):
        errors[name] = [f"Every id must be a decimal {what} id."]
    return errors
