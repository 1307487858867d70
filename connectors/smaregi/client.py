"""Smaregi Platform API: POS members (会員) of one contract, behind a cached client-credentials token.

Vendor reference: https://developers.smaregi.dev/apidoc/ (POS API, customers = 会員); method docstrings
name the operation of that reference they follow. Wire facts that reference leaves open are marked
UNCONFIRMED where they are used. What Smaregi's answers mean is read in `connectors.smaregi.answers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests

from config.settings import Settings
from connectors.http import HttpClient, Timeouts, credentials_refusal, json_body
from connectors.ratelimit import RateLimiter
from connectors.smaregi.answers import SYSTEM, MemberCodeTaken, SmaregiPolicy
from connectors.smaregi.members import SmaregiMember, member_fields
from connectors.smaregi.tokens import TokenPolicy, TokenSource

log = logging.getLogger(__name__)

__all__ = ["MemberCodeTaken", "SmaregiClient"]  # MemberCodeTaken is read in answers, raised from here

MAX_PAGE_SIZE = 1000
# What error messages call a list answer.
LIST = f"{SYSTEM} member list"


class SmaregiClient:
    """POS members of one Smaregi contract: find, create, update, points, list."""

    def __init__(
        self,
        api: HttpClient,
        identity: HttpClient,
        *,
        contract_id: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        refusal = credentials_refusal(
            "Smaregi",
            {
                "SMAREGI_CONTRACT_ID": contract_id,
                "SMAREGI_CLIENT_ID": client_id,
                "SMAREGI_CLIENT_SECRET": client_secret,
            },
        )
        self.api = api.using(SmaregiPolicy, refusal=refusal)
        self.contract_id = contract_id
        self.tokens = TokenSource(
            identity.using(TokenPolicy, refusal=refusal),
            contract_id=contract_id,
            client_id=client_id,
            client_secret=client_secret,
            scopes=scopes,
            clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, limiter: RateLimiter | None = None) -> SmaregiClient:
        """The client for the configured contract; without credentials every call raises PermanentError."""
        timeouts = Timeouts(settings.http_connect_timeout_seconds, settings.http_read_timeout_seconds)
        return cls(
            # The rate limit counts API calls per contract; the token endpoint is not one of them.
            HttpClient(
                system=SYSTEM,
                base_url=settings.smaregi_api_url,
                timeouts=timeouts,
                limiter=limiter,
                policy=SmaregiPolicy(),
            ),
            HttpClient(
                system=SYSTEM, base_url=settings.smaregi_id_url, timeouts=timeouts, policy=TokenPolicy()
            ),
            contract_id=settings.smaregi_contract_id,
            client_id=settings.smaregi_client_id,
            client_secret=settings.smaregi_client_secret.value,
            scopes=settings.smaregi_scopes,
        )

    def find_members_by_email(self, email: str) -> list[SmaregiMember]:
        """Members with exactly this mail address, any case (apidoc POS: GET /pos/customers)."""
        wanted = email.strip().lower()
        found = self._members({"mail_address": email.strip(), "limit": MAX_PAGE_SIZE})
        # Whether mail_address filters exactly is UNCONFIRMED; it may match partially: keep exact matches.
        return [member for member in found if (member.mail_address or "").strip().lower() == wanted]

    def find_member_by_code(self, customer_code: str) -> SmaregiMember | None:
        """The member with this customerCode, or None (apidoc POS: GET /pos/customers?customer_code=)."""
        response = self._call("GET", self._path("/pos/customers"), params={"customer_code": customer_code})
        matches = [SmaregiMember.from_api(record) for record in json_body(response, LIST, array=True)]
        return next((member for member in matches if member.customer_code == customer_code), None)

    def get_member(self, customer_id: str) -> SmaregiMember | None:
        """One member by customerId, or None (apidoc POS: GET /pos/customers/{customerId})."""
        response = self._call("GET", self._member_path(customer_id), ok=(200, 404))
        return None if response.status_code == 404 else _member(response)

    def create_member(
        self,
        *,
        customer_code: str,
        last_name: str,
        first_name: str,
        mail_address: str,
        last_kana: str | None = None,
        first_kana: str | None = None,
        phone_number: str | None = None,
        post_code: str | None = None,
        address: str | None = None,
        sex: str | None = None,
        birth_date: str | None = None,
        mail_receive_flag: bool | None = None,
    ) -> SmaregiMember:
        """Create a member, MemberCodeTaken if the code is in use (apidoc POS: POST /pos/customers)."""
        body = member_fields(
            {
                "customer_code": customer_code,
                "last_name": last_name,
                "first_name": first_name,
                "mail_address": mail_address,
                "last_kana": last_kana,
                "first_kana": first_kana,
                "phone_number": phone_number,
                "post_code": post_code,
                "address": address,
                "sex": sex,
                "birth_date": birth_date,
                "mail_receive_flag": mail_receive_flag,
            }
        )
        return _member(self._call("POST", self._path("/pos/customers"), json=body))

    def update_member(self, customer_id: str, **fields: str | bool | None) -> SmaregiMember:
        """Change fields named as in create_member (apidoc POS: PATCH /pos/customers/{customerId})."""
        return _member(self._call("PATCH", self._member_path(customer_id), json=member_fields(fields)))

    def set_points(self, customer_id: str, point: int) -> None:
        """Set the point balance to `point` (apidoc POS: PATCH /pos/customers/{customerId}/point)."""
        self._call("PATCH", f"{self._member_path(customer_id)}/point", json={"point": str(point)})

    def add_points(self, customer_id: str, point: int) -> None:
        """Add `point` to the balance (apidoc POS: POST /pos/customers/{customerId}/point/add)."""
        self._call("POST", f"{self._member_path(customer_id)}/point/add", json={"point": str(point)})

    def iter_members(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[SmaregiMember]:
        """Every member, page by page, for reconciliation (apidoc POS: GET /pos/customers)."""
        if not 0 < page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        return self._members({"limit": page_size})

    def _members(self, params: dict[str, Any]) -> Iterator[SmaregiMember]:
        """Members of a list query, following `Link: rel="next"` or, without one, counting pages."""
        url, page, linked = self._path("/pos/customers"), 1, False
        query: dict[str, Any] | None = {**params, "page": page}
        while True:
            response = self._call("GET", url, params=query)
            records = json_body(response, LIST, array=True)
            yield from (SmaregiMember.from_api(record) for record in records)
            next_url = response.links.get("next", {}).get("url")
            # Whether Smaregi sends a Link header is UNCONFIRMED. Our bearer token goes with the next request:
            # a link to anywhere but our own API is ignored, and pages are counted instead.
            if next_url and next_url.startswith(f"{self.api.base_url}/"):
                url, query, linked = next_url, None, True
                continue
            if next_url:
                log.warning("smaregi: ignoring a next-page link outside the API base URL")
            if linked or len(records) < int(params["limit"]):
                return
            page += 1
            query = {**params, "page": page}

    def _call(
        self, method: str, path: str, *, ok: tuple[int, ...] | None = None, **kwargs: Any
    ) -> requests.Response:
        """One API request with the bearer token; a 401 gets a fresh token and one more try."""
        token = self.tokens.token()
        accepted = ok or self.api.policy.success
        response = self._send(method, path, token, ok=(*accepted, 401), **kwargs)
        if response.status_code == 401 and 401 not in accepted:
            # Revoked or expired early (e.g. new credentials): a new token, and this request once more.
            response = self._send(method, path, self.tokens.token(rejected=token), ok=accepted, **kwargs)
        return response

    def _send(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        return self.api.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def _path(self, suffix: str) -> str:
        return f"/{quote(self.contract_id, safe='')}{suffix}"

    def _member_path(self, customer_id: str) -> str:
        return self._path(f"/pos/customers/{quote(customer_id, safe='')}")


def _member(response: requests.Response) -> SmaregiMember:
    """The customer object of a single-member answer."""
    return SmaregiMember.from_api(json_body(response, f"{SYSTEM} member", required=("customerId",)))
