"""Smaregi access tokens: the client-credentials grant, cached until shortly before they expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import quote

import requests

from connectors.errors import PermanentError, TransientError
from connectors.http import HttpClient

# A token is replaced this long before Smaregi says it expires (or 10% of its lifetime if shorter), so a
# request never leaves with a token that dies on the way.
REFRESH_MARGIN_SECONDS = 60.0
# Used when the token answer omits expires_in (Smaregi documents one hour).
DEFAULT_LIFETIME_SECONDS = 3600.0
CREDENTIAL_VARIABLES = "SMAREGI_CONTRACT_ID, SMAREGI_CLIENT_ID and SMAREGI_CLIENT_SECRET"


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
        if not (self.contract_id and self._client_id and self._client_secret):
            raise PermanentError(
                f"Smaregi credentials are not configured: set {CREDENTIAL_VARIABLES}", system="smaregi"
            )
        path = f"/app/{quote(self.contract_id, safe='')}/token"
        started = self._clock()
        response = self.identity.request(
            "POST",
            path,
            ok=range(100, 600),  # failures are classified below, with the OAuth error code
            auth=(self._client_id, self._client_secret),
            data={"grant_type": "client_credentials", "scope": self.scopes},
        )
        where = f"smaregi POST {path}"
        if response.status_code != 200:
            error = self.identity.classify(response, where)
            if isinstance(error, TransientError):
                raise error
            raise PermanentError(
                f"{where}: HTTP {response.status_code} {_oauth_error(response)}: the identity server "
                f"refused us; check {CREDENTIAL_VARIABLES} and SMAREGI_SCOPES",
                system="smaregi",
                status=response.status_code,
            )
        try:
            answer = response.json()
            token = str(answer["access_token"])
            lifetime = float(answer.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        except (ValueError, KeyError, TypeError, AttributeError):
            # A 200 without a token is a proxy or maintenance page rather than a verdict on us.
            raise TransientError(f"{where}: answer without an access token", system="smaregi") from None
        return token, started + lifetime - min(REFRESH_MARGIN_SECONDS, lifetime / 10)


def _oauth_error(response: requests.Response) -> str:
    """The OAuth error code of a refused token request (`invalid_client`, ...), never its description."""
    try:
        body = response.json()
    except ValueError:
        return "(no OAuth error)"
    code = body.get("error") if isinstance(body, dict) else None
    return str(code) if code else "(no OAuth error)"
