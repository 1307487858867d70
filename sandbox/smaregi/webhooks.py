"""Smaregi's webhooks, as the emulator sends them: ids only, from the background, never retried.

Smaregi posts an event to the app's configured endpoint when its data changes: header
`Smaregi-Event: <event>` and a body `{"contractId", "event", "action", "<entity>Ids": [...]}`
(`pos:customers` with `customerIds`, `pos:transactions` with `transactionHeadIds`). Third-party
captures add `Smaregi-Event-Id`, `Smaregi-Contract-Id` and a `Smaregi-Platform-Api-Webhook` user
agent; a third-party guide says Smaregi wants 200 within 3 s and does not retry (UNCONFIRMED). The
emulator does the same: one attempt per event, from one background thread (a request of the till
never waits for it), a 3-second timeout, and the outcome only kept for `/_sandbox/state`.

The endpoint is SANDBOX_SMAREGI_WEBHOOK_URL (`membersync dev` sets it to the dev web's
`/webhooks/smaregi/<SMAREGI_WEBHOOK_TOKEN>`), and can be changed while running with
`POST /_sandbox/webhook {"url": ..., "events": ["pos:customers", "pos:transactions"]}` (`url` null
stops sending; `events` picks what is sent, as Smaregi's app settings do). A reset restores the
configured endpoint.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
import uuid
from collections import deque
from typing import Any

from flask import Flask, Response, jsonify, request

log = logging.getLogger(__name__)

CUSTOMERS = "pos:customers"
TRANSACTIONS = "pos:transactions"
EVENT_IDS = {CUSTOMERS: "customerIds", TRANSACTIONS: "transactionHeadIds"}
TIMEOUT_SECONDS = 3.0
USER_AGENT = "Smaregi-Platform-Api-Webhook (membersync sandbox)"
# How many recent deliveries /_sandbox/state shows.
KEPT_DELIVERIES = 50


class WebhookSender:
    """Posts the emulator's events to one endpoint, one attempt each, in the order they happen."""

    def __init__(self, url: str | None = None) -> None:
        self.configured_url = url or None
        self.url = self.configured_url
        self.events = frozenset(EVENT_IDS)
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=KEPT_DELIVERIES)
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Back to the configured endpoint and every event; the record of deliveries is emptied."""
        with self._lock:
            self.url = self.configured_url
            self.events = frozenset(EVENT_IDS)
            self.deliveries.clear()

    def configure(self, url: str | None, events: list[str] | None = None) -> None:
        """Send to `url` (None: stop sending), only `events` when given."""
        with self._lock:
            self.url = url or None
            self.events = frozenset(events) if events is not None else frozenset(EVENT_IDS)

    def notify(self, contract_id: str, event: str, action: str, ids: list[str]) -> None:
        """Queue one event for the background sender (nothing when no endpoint or not subscribed)."""
        with self._lock:
            url = self.url
            subscribed = event in self.events
        if url is None or not subscribed or not ids:
            return
        body = {"contractId": contract_id, "event": event, "action": action, EVENT_IDS[event]: ids}
        self._queue.put((url, body))
        self._start()

    def state(self) -> dict[str, Any]:
        """The endpoint, the events sent and the recent deliveries (ids and outcomes only)."""
        with self._lock:
            return {"url": self.url, "events": sorted(self.events), "deliveries": list(self.deliveries)}

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="smaregi-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            url, body = self._queue.get()
            outcome = self._deliver(url, body)
            with self._lock:
                self.deliveries.append({**body, "outcome": outcome})

    def _deliver(self, url: str, body: dict[str, Any]) -> str:
        """One POST; its status (or the error) as text. Never retried, as Smaregi does not retry."""
        data = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Smaregi-Event": body["event"],
            "Smaregi-Event-Id": str(uuid.uuid4()),
            "Smaregi-Contract-Id": body["contractId"],
            "User-Agent": USER_AGENT,
        }
        outgoing = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(outgoing, timeout=TIMEOUT_SECONDS) as answer:
                return str(answer.status)
        except urllib.error.HTTPError as refused:
            return str(refused.code)
        except (urllib.error.URLError, OSError) as failed:
            log.info("smaregi sandbox webhook to the endpoint failed: %s", type(failed).__name__)
            return type(failed).__name__


def install_webhooks(app: Flask, url: str | None) -> WebhookSender:
    """The emulator's sender, with `POST /_sandbox/webhook` to point it elsewhere while running."""
    sender = WebhookSender(url)

    @app.post("/_sandbox/webhook")
    def configure_webhook() -> Response | tuple[Response, int]:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not (body.get("url") is None or isinstance(body.get("url"), str)):
            return jsonify({"error": 'the body must be {"url": "http..." or null, "events": [...]}'}), 400
        events = body.get("events")
        if events is not None and (not isinstance(events, list) or not set(events) <= set(EVENT_IDS)):
            return jsonify({"error": f"events must be a list of {sorted(EVENT_IDS)}"}), 400
        sender.configure(body.get("url"), events)
        return jsonify(sender.state())

    return sender
