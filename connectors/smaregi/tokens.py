"""Smaregi access tokens: the client-credentials grant, cached until shortly before they expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import requests

from connectors.errors import ConnectorError, PermanentError, TransientError
from connectors.http import AnswerPolicy, Call, HttpClient, json_body, json_object
from connectors.ratelimit import RateLimiter

# A token is replaced this long before Smaregi says it expires (or 10% of its lifetime if shorter), so a
# request never leaves with a token that dies on the way.
REFRESH_MARGIN_SECONDS = 60.0
# Used when the token answer omits expires_in (Smaregi documents one hour).
DEFAULT_LIFETIME_SECONDS = 3600.0
CREDENTIAL_VARIABLES = "SMAREGI_CONTRACT_ID, SMAREGI_CLIENT_ID and SMAREGI_CLIENT_SECRET"


class TokenPolicy(AnswerPolicy):
    """The identity server: only a 200 carries a token; a refusal is a verdict on our credentials."""

    success = (200,)

    def error(self, response: requests.Response, call: Call, limiter: RateLimiter) -> ConnectorError:
        error = super().error(response, call, limiter)
        if isinstance(error, TransientError):
            return error
        # The OAuth error code (`invalid_client`, ...), never its description.
        code = json_object(response).get("error") or "(no OAuth error)"
        return PermanentError(
            f"{self.where(call)}: HTTP {response.status_code} {code}: the identity server refused us; "
            f"check {CREDENTIAL_VARIABLES} and SMAREGI_SCOPES",
            system=call.system,
            status=response.status_code,
        )


class TokenSource:
    """One contract's access token, fetched once and shared by every worker thread of the process."""

    def __init__(
        self,
        identity: HttpClient,
        *,
        contract_id: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.contract_id = contract_id
        self._client_id = client_id
        self._client_secret = client_secret
        self.scopes = scopes
        self._clock = clock
        # Held while fetching: the worker's thread pool waits for one token request instead of sending many.
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def token(self, *, rejected: str | None = None) -> str:
        """A live access token; `rejected` is one the API just refused, never handed out again."""
        with self._lock:
            if self._token is not None and self._token != rejected and self._clock() < self._refresh_at:
                return self._token
            self._token = None  # if the fetch fails, a refused or stale token is not handed out again
            self._token, self._refresh_at = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        """Client-credentials grant (https://developers.smaregi.dev/apidoc/common/): (token, refresh time)."""
        path = f"/app/{quote(self.contract_id, safe='')}/token"
        started = self._clock()
        response = self.identity.request(
            "POST",
            path,
            auth=(self._client_id, self._client_secret),
            data={"grant_type": "client_credentials", "scope": self.scopes},
        )
        where = f"smaregi POST {path}"
        # A 200 without a token is a proxy or maintenance page rather than a verdict on us.
        answer = json_body(response, where, required=("access_token",))
        try:
            lifetime = float(answer.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        except (ValueError, TypeError):
            raise TransientError(f"{where}: the answer has no usable expires_in", system="smaregi") from None
        return str(answer["access_token"]), started + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 10)
