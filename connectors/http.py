"""The one seam where requests leave Membersync for a vendor, and the one place answers are classified.

A pooled session, connect/read timeouts on every call, our user agent, a request id per call, the
shared rate limit taken before sending, a refusal when credentials are missing, and the vendor's
`AnswerPolicy` deciding what every answer means. Connectors build payloads and read successful
answers (`json_body`); they never classify a status code themselves.
"""

from __future__ import annotations

import copy
import email.utils
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Literal, overload
from urllib.parse import urlencode, urlsplit

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
# What each status means when a vendor says nothing more specific; other 5xx are transient, other 4xx
# permanent. 408 and 425 are "try again later" besides 5xx.
STATUS_ERRORS: Mapping[int, type[ConnectorError]] = {
    404: NotFoundError,
    408: TransientError,
    409: ConflictError,
    425: TransientError,
    429: ThrottledError,
}
# How much of a vendor's error body is kept in an error message (for ops, scrubbed in dead letters).
DETAIL_LIMIT = 300
# The request arguments `HttpClient.request` sends itself; any other (auth, data, stream, ...) goes
# through requests' Session.request, which knows them all.
DIRECT_ARGUMENTS = frozenset({"json", "params", "headers"})


class _RequestIds:
    """X-Request-Id values: a random per-process prefix and a counter, as unique as uuid4 and cheaper.

    The prefix is drawn again in a forked child (prefork pool), so no two processes share a sequence.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.reset)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect and to wait for an answer; a call never waits forever."""

    connect: float = 3.05
    read: float = 10.0


@dataclass(frozen=True)
class Call:
    """One request as a policy sees it. `path` has no host and no query: a query may hold an email."""

    system: str
    method: str
    path: str
    cost: float = 1.0
    json: Any = None  # the JSON body we sent: some answers only make sense against it


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


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is none: how a failed answer is read, never trusted."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@overload
def json_body(
    response: requests.Response, where: str, *, array: Literal[False] = False, required: Collection[str] = ()
) -> dict[str, Any]: ...
@overload
def json_body(response: requests.Response, where: str, *, array: Literal[True]) -> list[dict[str, Any]]: ...
def json_body(
    response: requests.Response, where: str, *, array: bool = False, required: Collection[str] = ()
) -> dict[str, Any] | list[dict[str, Any]]:
    """A successful answer's JSON: a non-empty object holding `required`, or an `array` of objects.

    Anything else under a success status comes from a proxy, a maintenance page or a half answer, not
    from the vendor's API: TransientError, worth another try. `where` names the call, system first.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if array and isinstance(body, list) and all(isinstance(item, dict) for item in body):
        return body
    if not array and isinstance(body, dict) and body:
        missing = [key for key in required if key not in body]
        if not missing:
            return body
        problem = f"has no {missing[0]}"
    else:
        problem = f"is not a JSON {'array of objects' if array else 'object'}"
    system = where.split(" ", 1)[0]
    raise TransientError(f"{where}: the answer {problem}", system=system, status=response.status_code)


def credentials_refusal(vendor: str, settings: Mapping[str, str | None]) -> str | None:
    """Why a client must not call `vendor`: the settings (by variable name) left empty; None if all set."""
    missing = [name for name, value in settings.items() if not value]
    if not missing:
        return None
    names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    return f"{names} {'is' if len(missing) == 1 else 'are'} not set; refusing to call {vendor}"


class AnswerPolicy:
    """How one vendor answers: which statuses succeed, what a failure means, where it says to slow down.

    This default reads plain HTTP (Retry-After, a problem-details or `message` body); vendors subclass
    it in their own package and override the hooks their API needs.
    """

    # Statuses a call accepts unless it names its own.
    success: Collection[int] = (200, 201, 204)
    statuses: Mapping[int, type[ConnectorError]] = STATUS_ERRORS

    def where(self, call: Call) -> str:
        """The call as error messages and logs name it."""
        return f"{call.system} {call.method} {call.path}"

    def error_class(self, status: int) -> type[ConnectorError]:
        """The error a failed status means."""
        if status in self.statuses:
            return self.statuses[status]
        return TransientError if status >= 500 else PermanentError

    def observe(self, response: requests.Response, limiter: RateLimiter) -> None:
        """Correct the shared limit from what every answer reports (successes and failures alike)."""
        return None

    def retry_after(self, response: requests.Response) -> float | None:
        """The vendor's own wait before the next call, from a throttled answer."""
        return parse_retry_after(response.headers.get("Retry-After"))

    def detail(self, response: requests.Response) -> str:
        """The vendor's short explanation of a failure, for the error message."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:DETAIL_LIMIT]
        if isinstance(body, Mapping):
            for key in ("detail", "message", "title", "errors"):
                if body.get(key):
                    return str(body[key])[:DETAIL_LIMIT]
        return str(body)[:DETAIL_LIMIT]

    def error(self, response: requests.Response, call: Call, limiter: RateLimiter) -> ConnectorError:
        """The error a failed answer means; a throttled one with Retry-After pauses the shared limit."""
        status = response.status_code
        error = self.error_class(status)(
            f"{self.where(call)}: HTTP {status}: {self.detail(response)}", system=call.system, status=status
        )
        if isinstance(error, ThrottledError):
            error.retry_after = self.retry_after(response)
            if error.retry_after:
                limiter.pause(error.retry_after)
        return error

    def body_error(
        self, response: requests.Response, call: Call, limiter: RateLimiter
    ) -> ConnectorError | None:
        """The failure an answer with a success status still carries (GraphQL's errors), or None."""
        return None


class HttpClient:
    """Requests to one vendor's base URL, with its rate limit and its answer policy."""

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
        policy: AnswerPolicy | None = None,
        refusal: str | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.limiter: RateLimiter = limiter or Unlimited()
        self.policy = policy or AnswerPolicy()
        # Set when a credential is missing (`credentials_refusal`): every call fails before sending.
        self.refusal = refusal
        self.session = session or requests.Session()
        # Our own session is sent through `_send`; a session handed in is used as requests would.
        self.direct = session is None
        if session is None:
            # One connection per worker thread in flight; no urllib3 retries: retrying is the
            # pipeline's decision, made with the step's attempt count and budget.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
            # No proxy variables, .netrc or CA bundle variables read on every call: the vendors'
            # addresses come from our settings, and their connections are kept alive in the pool.
            self.session.trust_env = False
            # Vendors authenticate by token: a cookie one sets (its load balancer's, say) is neither
            # kept nor sent back.
            self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.session.headers.update({"User-Agent": USER_AGENT, **(headers or {})})

    def using(self, policy_type: type[AnswerPolicy], *, refusal: str | None = None) -> HttpClient:
        """This client answering through a `policy_type` (and refusing with `refusal` when given).

        Itself when nothing changes, else a copy sharing the session, limiter and timeouts: a vendor
        client handed a plain HttpClient still classifies its vendor's answers its vendor's way.
        """
        keeps_policy = isinstance(self.policy, policy_type)
        if keeps_policy and (refusal is None or refusal == self.refusal):
            return self
        changed = copy.copy(self)
        changed.policy = self.policy if keeps_policy else policy_type()
        changed.refusal = refusal or self.refusal
        return changed

    def url(self, path: str) -> str:
        """`path` under the base URL; an absolute URL (a Link header's next page) is kept."""
        return path if "://" in path else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] | None = None,
        cost: float = 1.0,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request after taking `cost` from the rate limit; an answer outside `ok` raises.

        `ok` defaults to the policy's success statuses; `kwargs` go to requests (json, data, params,
        headers, auth). Raises TransientError for timeouts and connection failures, and whatever the
        policy says a failed answer means (Throttled, Transient, Permanent, Conflict, NotFound, ...).
        """
        call = Call(self.system, method, urlsplit(self.url(path)).path, cost, kwargs.get("json"))
        where = self.policy.where(call)
        if self.refusal:
            raise PermanentError(f"{where}: {self.refusal}", system=self.system)
        self.limiter.acquire(cost)
        request_id = _request_ids.next()
        headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
        timeout = (self.timeouts.connect, self.timeouts.read)
        started = time.monotonic()
        try:
            if self.direct and kwargs.keys() <= DIRECT_ARGUMENTS:
                response = self._send(method, self.url(path), headers, timeout, kwargs)
            else:
                response = self.session.request(
                    method, self.url(path), headers=headers, timeout=timeout, **kwargs
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
        self.policy.observe(response, self.limiter)
        if response.status_code not in (self.policy.success if ok is None else ok):
            raise self.policy.error(response, call, self.limiter)
        failure = self.policy.body_error(response, call, self.limiter)
        if failure is not None:
            raise failure
        return response

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], timeout: tuple[float, float], kwargs: Any
    ) -> requests.Response:
        """One API call as Session.request would send it, without the per-call work none needs.

        No cookies (vendors authenticate by token), no hooks, no environment settings (trust_env is
        off), no merging of session and call settings, and no redirect followed: an API call answered
        with a 3xx fails like any other unexpected status (requests would resend a POST as a GET).
        """
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, _query(kwargs.get("params")))
        session_headers = self.session.headers
        prepared.prepare_headers(
            {**session_headers, **{name: value for name, value in headers.items() if value is not None}}
        )
        body = kwargs.get("json")
        data = None
        if body is not None:
            try:
                data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            except ValueError as error:
                raise requests.exceptions.InvalidJSONError(error, request=prepared) from None
            if "Content-Type" not in prepared.headers:
                prepared.headers["Content-Type"] = "application/json"
        prepared.prepare_body(data, None)
        response = self.session.get_adapter(prepared.url or url).send(
            prepared,
            timeout=timeout,
            verify=True if self.session.verify is None else self.session.verify,
            cert=self.session.cert,
            proxies=self.session.proxies,
        )
        # Read the whole answer now, as requests does: the connection goes back to the pool.
        _ = response.content
        return response


def _query(params: Any) -> Any:
    """A mapping of query parameters encoded as requests would (None dropped); anything else as given."""
    if not isinstance(params, Mapping):
        return params
    pairs = [
        (name, [item for item in value if item is not None] if isinstance(value, list | tuple) else value)
        for name, value in params.items()
        if value is not None
    ]
    return urlencode(pairs, doseq=True)
