"""The one seam where requests leave Membersync for a vendor.

A pooled session, connect/read timeouts on every call, our user agent, a request id per call, the
shared rate limit taken before sending, and one translation of failures into the error hierarchy of
`connectors.errors`. Connectors build payloads and read answers; they never classify a status code
themselves.
"""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from connectors.errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from connectors.ratelimit import RateLimiter, Unlimited

log = logging.getLogger(__name__)

USER_AGENT = "Membersync/0.1 (+https://github.com/membersync)"
# Statuses a vendor uses for "try again later" besides 5xx.
TRANSIENT_STATUSES = frozenset({408, 425})
# How much of a vendor's error body is kept in an error message (for ops, scrubbed in dead letters).
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect and to wait for an answer; a call never waits forever."""

    connect: float = 3.05
    read: float = 10.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _detail(response: requests.Response) -> str:
    """The vendor's own short explanation (problem-details `detail`, HubSpot `message`, ...)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:DETAIL_LIMIT]
    if isinstance(body, Mapping):
        for key in ("detail", "message", "title", "errors"):
            if body.get(key):
                return str(body[key])[:DETAIL_LIMIT]
    return str(body)[:DETAIL_LIMIT]


class HttpClient:
    """Requests to one vendor's base URL, with its rate limit and our error classification."""

    def __init__(
        self,
        *,
        system: str,
        base_url: str,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        pool_size: int = 32,
        session: requests.Session | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.limiter: RateLimiter = limiter or Unlimited()
        self.session = session or requests.Session()
        if session is None:
            # One connection per worker thread in flight; no urllib3 retries: retrying is the
            # pipeline's decision, made with the step's attempt count and budget.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, **(headers or {})})

    def url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL (a Link header's next page) is kept."""
        return path if "://" in path else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] = (200, 201, 204),
        cost: float = 1.0,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request after taking `cost` from the rate limit; an answer outside `ok` raises.

        `kwargs` go to requests (json, data, params, headers, auth). Raises TransientError for
        timeouts, connection failures and 5xx; ThrottledError for 429; ConflictError (409),
        NotFoundError (404) or PermanentError for the other 4xx.
        """
        self.limiter.acquire(cost)
        request_id = str(uuid.uuid4())
        headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
        where = f"{self.system} {method} {urlsplit(self.url(path)).path}"  # no query: it may hold an email
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.url(path),
                headers=headers,
                timeout=(self.timeouts.connect, self.timeouts.read),
                **kwargs,
            )
        except requests.Timeout as error:
            raise TransientError(f"{where}: timed out ({type(error).__name__})", system=self.system) from None
        except requests.RequestException as error:
            raise TransientError(f"{where}: {type(error).__name__}", system=self.system) from None
        log.debug(
            "%s -> %s in %.0f ms (request id %s)",
            where,
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id,
        )
        if response.status_code in ok:
            return response
        raise self.classify(response, where)

    def classify(self, response: requests.Response, where: str) -> ConnectorError:
        """The error a non-success answer means for the pipeline."""
        status = response.status_code
        message = f"{where}: HTTP {status}: {_detail(response)}"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after:
                self.limiter.pause(retry_after)
            return ThrottledError(message, system=self.system, status=status, retry_after=retry_after)
        if status >= 500 or status in TRANSIENT_STATUSES:
            return TransientError(message, system=self.system, status=status)
        if status == 404:
            return NotFoundError(message, system=self.system, status=status)
        if status == 409:
            return ConflictError(message, system=self.system, status=status)
        return PermanentError(message, system=self.system, status=status)
