"""HubSpot's Communication Preferences API (v3) in the HubSpot emulator: marketing consent per address.

The four calls Membersync uses, with HubSpot's documented shapes: `GET /communication-preferences/v3/
definitions`, `GET .../status/email/{emailAddress}`, `POST .../subscribe` and `POST .../unsubscribe`
with `{"emailAddress", "subscriptionId", "legalBasis", "legalBasisExplanation"}`. A status belongs to
the address, not to a contact (as HubSpot keeps it), and the legal basis given is stored and shown.

Rules whose exact answers HubSpot does not document (UNCONFIRMED; the emulator answers 400
VALIDATION_ERROR for each, and the connector decides by reading the status back, never by wording):
subscribing an address already subscribed, unsubscribing one already unsubscribed, subscribing an
address that opted out (documented: v3 "will not allow you to resubscribe contacts who have opted
out"), an unknown subscription id, a missing legal basis on a GDPR-enabled portal.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.common import Record, RecordStore, answer_at_once

PREFERENCES = "/communication-preferences/v3"
# The legal bases HubSpot's reference lists for a status change.
LEGAL_BASES = frozenset(
    {
        "CONSENT_WITH_NOTICE",
        "LEGITIMATE_INTEREST_CLIENT",
        "LEGITIMATE_INTEREST_OTHER",
        "LEGITIMATE_INTEREST_PQL",
        "NON_GDPR",
        "PERFORMANCE_OF_CONTRACT",
        "PROCESS_AND_STORE",
    }
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_STAMP = "2026-01-01T00:00:00.000Z"  # when the sandbox portal's subscription types were made


@dataclass(frozen=True)
class SubscriptionType:
    """One subscription type of the portal, as the definitions endpoint lists it."""

    id: str
    name: str
    description: str
    purpose: str
    internal: bool = False
    default: bool = False
    active: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "purpose": self.purpose,
            "communicationMethod": "Email",
            "isActive": self.active,
            "isDefault": self.default,
            "isInternal": self.internal,
            "createdAt": _STAMP,
            "updatedAt": _STAMP,
        }


# A portal's usual pair: one marketing type (the one Membersync subscribes to) and HubSpot's internal
# service type (never a marketing consent).
DEFAULT_SUBSCRIPTION_TYPES = (
    SubscriptionType("1001", "Marketing Information", "News and offers from the shop.", "Marketing"),
    SubscriptionType(
        "1002",
        "Customer Service Communication",
        "Feedback requests and service information.",
        "Service",
        internal=True,
        default=True,
    ),
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SubscriptionBook:
    """Each address's status per subscription type (one record per address, lower-cased key)."""

    def __init__(self, types: Sequence[SubscriptionType]) -> None:
        self.types = {subscription.id: subscription for subscription in types}
        # Its own index name, so a persisted sandbox never restores contacts into it or the reverse.
        self.store = RecordStore(unique={"address": lambda record: record["address"]})

    def statuses(self, email: str) -> dict[str, Record]:
        """The address's stored statuses by subscription id ({} when nothing was ever set)."""
        record = self.store.find("address", email.strip().lower())
        return dict(record["statuses"]) if record else {}

    def shown(self, email: str, subscription: SubscriptionType) -> Record:
        """A status as the API answers it (NOT_SUBSCRIBED when nothing was set)."""
        stored = self.statuses(email).get(subscription.id, {})
        shown: Record = {
            "id": subscription.id,
            "name": subscription.name,
            "description": subscription.description,
            "status": stored.get("status", "NOT_SUBSCRIBED"),
            "sourceOfStatus": "SUBSCRIPTION_STATUS",
        }
        for name in ("legalBasis", "legalBasisExplanation"):
            if stored.get(name):
                shown[name] = stored[name]
        return shown

    def set(self, email: str, subscription_id: str, status: Record) -> None:
        """Store one status of the address (the record is created on its first status)."""
        key = email.strip().lower()
        with self.store.lock:
            record = self.store.find("address", key)
            if record is None:
                self.store.insert({"address": key, "statuses": {subscription_id: status}})
                return
            self.store.update(
                record["id"],
                lambda current: {**current, "statuses": {**current["statuses"], subscription_id: status}},
            )


ErrorFactory = Callable[..., Response]


def install_subscriptions(
    app: Flask, book: SubscriptionBook, *, error: ErrorFactory, gdpr_enabled: bool = True
) -> None:
    """Register the v3 Communication Preferences endpoints on the HubSpot emulator's app.

    `error(status, category, message)` renders HubSpot's error body; authentication and the rate
    limit are the app's own hooks (they cover these paths too).
    """

    @app.get(f"{PREFERENCES}/definitions")
    def subscription_definitions() -> Response:
        answer_at_once()
        return jsonify({"subscriptionDefinitions": [kind.as_json() for kind in book.types.values()]})

    @app.get(f"{PREFERENCES}/status/email/<path:email>")
    def subscription_statuses(email: str) -> Response:
        answer_at_once()
        statuses = [book.shown(email, kind) for kind in book.types.values() if kind.active]
        return jsonify({"recipient": email, "subscriptionStatuses": statuses})

    @app.post(f"{PREFERENCES}/subscribe")
    def subscribe() -> Response:
        return change(subscribing=True)

    @app.post(f"{PREFERENCES}/unsubscribe")
    def unsubscribe() -> Response:
        return change(subscribing=False)

    def change(*, subscribing: bool) -> Response:
        body = request.get_json(force=True, silent=True)
        body = body if isinstance(body, dict) else {}
        problem = _request_problem(body, book, require_legal_basis=subscribing and gdpr_enabled)
        if problem:
            answer_at_once()
            return error(400, "VALIDATION_ERROR", problem)
        email, subscription = str(body["emailAddress"]), book.types[str(body["subscriptionId"])]
        current = book.statuses(email).get(subscription.id, {})
        refusal = _state_refusal(email, subscription.id, current, subscribing=subscribing)
        if refusal:
            answer_at_once()
            return error(400, "VALIDATION_ERROR", refusal)
        status: Record = {
            "status": "SUBSCRIBED" if subscribing else "NOT_SUBSCRIBED",
            # An explicit unsubscribe is remembered for good: v3 never subscribes the address again.
            "optedOut": not subscribing,
            "legalBasis": body.get("legalBasis"),
            "legalBasisExplanation": body.get("legalBasisExplanation"),
            "timestamp": _now(),
        }
        book.set(email, subscription.id, status)
        return jsonify(book.shown(email, subscription))


def _request_problem(
    body: dict[str, Any], book: SubscriptionBook, *, require_legal_basis: bool
) -> str | None:
    """Why a status change request is invalid, or None."""
    missing = [
        name for name in ("emailAddress", "subscriptionId") if not isinstance(body.get(name), str | int)
    ]
    if missing:
        # The wording of HubSpot's own answer to a body without them (as reported by its users).
        return (
            "Invalid input JSON on line 1, column 2: Cannot build PublicUpdateSubscriptionStatusRequest, "
            f"some of required attributes are not set [{', '.join(missing)}]"
        )
    if not _EMAIL.fullmatch(str(body["emailAddress"])):
        return "emailAddress is not a valid email address"
    subscription = book.types.get(str(body["subscriptionId"]))
    if subscription is None or not subscription.active:
        return f"Subscription {body['subscriptionId']} does not exist or is not active"
    legal_basis = body.get("legalBasis")
    if legal_basis is not None and legal_basis not in LEGAL_BASES:
        return f"legalBasis must be one of {sorted(LEGAL_BASES)}"
    if require_legal_basis and not (legal_basis and str(body.get("legalBasisExplanation") or "").strip()):
        return "legalBasis and legalBasisExplanation are required on a GDPR-enabled portal"
    return None


def _state_refusal(email: str, subscription_id: str, current: Record, *, subscribing: bool) -> str | None:
    """Why the address cannot move to the state asked, or None."""
    if subscribing and current.get("status") == "SUBSCRIBED":
        return f"{email} is already subscribed to subscription {subscription_id}"
    if subscribing and current.get("optedOut"):
        return f"{email} has opted out of subscription {subscription_id} and cannot be resubscribed"
    if not subscribing and current.get("optedOut"):
        return f"{email} is already unsubscribed from subscription {subscription_id}"
    return None
