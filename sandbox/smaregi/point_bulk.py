"""PATCH /pos/customers/point/bulk: absolute balances for up to 100 members, applied asynchronously.

As Smaregi's reference page says: the body is `{"customerPoints": [{"customerId", "point", "mile",
"pointExpireDate"}], "callbackUrl"}` (strings; at most 100 entries; callbackUrl `^https?://\\S+$`, at
most 511 characters); the answer comes at once, `{"requestId": <integer>, "callbackUrl"}`; the
balances are set afterwards and the result is POSTed to callbackUrl as JSON with the requestId and
`result`, the transactions the change made. The emulator applies them `delay_seconds` later, records a
transaction per changed balance (取引区分 6 up, 7 down) and posts `{"requestId", "result":
[{"customerId", "transactionHeadIds"}]}` (one entry per member, in request order: the exact shape of
`result` is UNCONFIRMED). A customerId that does not exist is refused at once (400) here; what
Smaregi does with one is not documented.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.common import Record, RecordStore
from sandbox.smaregi.listing import JST
from sandbox.smaregi.members import InvalidParams, parse_point
from sandbox.smaregi.transactions import POINTS_ADDED, POINTS_SUBTRACTED, TransactionLog

MAX_ENTRIES = 100
MAX_POINT = 999_999_999
CALLBACK_URL = re.compile(r"https?://\S+")
MAX_CALLBACK_URL = 511


class BulkRefused(ValueError):
    """The bulk request is refused as a whole (400), with Smaregi's invalid-params."""

    def __init__(self, invalid: InvalidParams) -> None:
        super().__init__(", ".join(entry["name"] for entry in invalid))
        self.invalid = invalid


@dataclass(frozen=True)
class Entry:
    customer_id: str
    point: int
    expire_date: str | None


class PointBulk:
    """Accepts bulk balance changes and applies each one on a thread of its own, a moment later."""

    def __init__(
        self,
        members: RecordStore,
        transactions: TransactionLog,
        *,
        delay_seconds: float = 0.2,
        applied: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.members = members
        self.transactions = transactions
        self.delay_seconds = delay_seconds
        # Told the customerIds a request changed once it is applied (e.g. to send a webhook).
        self.applied = applied
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: list[dict[str, Any]] = []

    def accept(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate the body, start applying it, and answer `{requestId, callbackUrl}`."""
        entries, callback_url = self._parse(body)
        with self._lock:
            request_id = next(self._ids)
            record: dict[str, Any] = {"requestId": request_id, "status": "accepted", "callback": None}
            self._requests.append(record)
        thread = threading.Thread(
            target=self._run,
            args=(record, entries, callback_url),
            name=f"point-bulk-{request_id}",
            daemon=True,
        )
        thread.start()
        return {"requestId": request_id, "callbackUrl": callback_url}

    def state(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(record) for record in self._requests]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._ids = itertools.count(1)

    def _parse(self, body: dict[str, Any]) -> tuple[list[Entry], str]:
        invalid: InvalidParams = []
        callback_url = body.get("callbackUrl")
        if (
            not isinstance(callback_url, str)
            or len(callback_url) > MAX_CALLBACK_URL
            or CALLBACK_URL.fullmatch(callback_url) is None
        ):
            invalid.append(
                {"name": "callbackUrl", "reason": "is required: an http(s) URL of at most 511 characters"}
            )
        listed = body.get("customerPoints")
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_ENTRIES:
            invalid.append(
                {"name": "customerPoints", "reason": f"must be a list of 1 to {MAX_ENTRIES} entries"}
            )
            listed = []
        entries = []
        for index, item in enumerate(listed):
            where = f"customerPoints[{index}]"
            customer_id = item.get("customerId") if isinstance(item, dict) else None
            point = parse_point(item.get("point"), allow_negative=False) if isinstance(item, dict) else None
            if not isinstance(customer_id, str) or self.members.get(customer_id) is None:
                invalid.append({"name": f"{where}.customerId", "reason": "must be an existing customerId"})
            elif point is None or point > MAX_POINT:
                invalid.append(
                    {"name": f"{where}.point", "reason": f"must be a string holding 0 to {MAX_POINT}"}
                )
            else:
                expire = item.get("pointExpireDate")
                entries.append(Entry(customer_id, point, expire if isinstance(expire, str) else None))
        if invalid:
            raise BulkRefused(invalid)
        assert isinstance(callback_url, str)
        return entries, callback_url

    def _run(self, record: dict[str, Any], entries: list[Entry], callback_url: str) -> None:
        time.sleep(self.delay_seconds)
        result = [
            {"customerId": entry.customer_id, "transactionHeadIds": self._set(entry)} for entry in entries
        ]
        with self._lock:
            record["status"] = "applied"
        if self.applied is not None:
            self.applied([entry.customer_id for entry in entries])
        payload = json.dumps({"requestId": record["requestId"], "result": result}).encode()
        request = urllib.request.Request(
            callback_url,
            data=payload,
            headers={"Content-Type": "application/json;charset=UTF-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                outcome: Any = answer.status
        except Exception as error:  # an unreachable callback is only recorded, as a vendor would
            outcome = type(error).__name__
        with self._lock:
            record["callback"] = outcome

    def _set(self, entry: Entry) -> list[str]:
        moved: list[str] = []

        def change(member: Record) -> Record:
            difference = entry.point - int(member.get("point") or "0")
            if difference:
                division = POINTS_ADDED if difference > 0 else POINTS_SUBTRACTED
                moved.append(self.transactions.record(member, division, abs(difference))["transactionHeadId"])
            changed = {
                **member,
                "point": str(entry.point),
                "updDateTime": datetime.now(JST).isoformat(timespec="seconds"),
            }
            if entry.expire_date is not None:
                changed["pointExpireDate"] = entry.expire_date
            return changed

        try:
            self.members.update(entry.customer_id, change)
        except KeyError:
            return []  # deleted meanwhile
        return moved
