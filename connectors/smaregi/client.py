"""Smaregi Platform API: POS members (会員) of one contract, behind a cached client-credentials token.

Vendor reference: https://developers.smaregi.dev/apidoc/ (POS API, customers = 会員); method docstrings
name the operation of that reference they follow. Wire facts that reference leaves open are marked
UNCONFIRMED where they are used. What Smaregi's answers mean is read in `connectors.smaregi.answers`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from config.settings import Settings
from connectors.http import HttpClient, Timeouts, credentials_refusal, json_body
from connectors.ratelimit import RateLimiter
from connectors.smaregi.answers import SYSTEM, SmaregiPolicy
from connectors.smaregi.members import SmaregiMember, member_fields, smaregi_time
from connectors.smaregi.points import (
    CALLBACK_URL,
    MAX_BULK_POINTS,
    MAX_CALLBACK_URL,
    POINT_DIVISIONS,
    PointBalance,
    PointMovementResult,
    PointTransaction,
)
from connectors.smaregi.tokens import TokenPolicy, TokenSource

__all__ = ["MAX_PAGE_SIZE", "SmaregiClient"]

# Sources disagree on the largest page (1000 or 500): we never ask for more than 500.
MAX_PAGE_SIZE = 500
# What error messages call a list answer.
LIST = f"{SYSTEM} member list"
MOVEMENT = f"{SYSTEM} point movement"
BULK = f"{SYSTEM} point bulk"
TRANSACTIONS = f"{SYSTEM} transaction list"
# GET /pos/transactions: a period filter spans at most 31 days (official); pages of at most 100 (a
# third party says 100 once line items are included; we never ask for more).
MAX_TRANSACTION_WINDOW = timedelta(days=31) - timedelta(seconds=1)
TRANSACTION_PAGE_SIZE = 100
# Smaregi reads with GET; everything else writes, and is counted against the write budget.
READ_METHODS = frozenset({"GET", "HEAD"})


class SmaregiClient:
    """POS members of one Smaregi contract: list, look up by code or id, create, update, move points
    and read the point transactions.

    Smaregi counts reads and writes apart: `api`'s limiter takes reads, `write_limiter` (when given)
    takes writes; without one, every call takes from `api`'s limiter.
    """

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
        write_limiter: RateLimiter | None = None,
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
        self.writes = self.api
        if write_limiter is not None:
            # Same session, timeouts and policy; only the bucket differs.
            self.writes = copy.copy(self.api)
            self.writes.limiter = write_limiter
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
    def from_settings(
        cls,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        write_limiter: RateLimiter | None = None,
    ) -> SmaregiClient:
        """The client for the configured contract; without credentials every call raises PermanentError.

        `limiter` takes reads (every call when `write_limiter` is None), `write_limiter` writes.
        """
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
            write_limiter=write_limiter,
        )

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
        """Create a member (apidoc POS: POST /pos/customers); a refusal says nothing we rely on.

        Whatever the refusal or a lost answer means, the caller settles it by `find_member_by_code`.
        """
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

    def set_mail_receive_flag(self, customer_id: str, receive: bool) -> SmaregiMember:
        """Whether the member receives marketing mail: mailReceiveFlag "1" or "0" (PATCH, as update_member).

        Setting the flag it already has changes nothing, so a retry is safe; an unknown member is
        NotFoundError.
        """
        return self.update_member(customer_id, mail_receive_flag=receive)

    def add_points(
        self, customer_id: str, points: int, *, expire_date: date | None = None
    ) -> PointMovementResult:
        """Move the balance by `points`, negative subtracting (apidoc POS: POST
        /pos/customers/{customerId}/point/add); the answer names the transactions it made.

        Not idempotent and without an idempotency key: a lost answer may or may not have moved the
        points. The caller (`registrations.points.PointLedger`) settles that by reading the
        member's point transactions, never by sending again blindly. A subtraction below zero is
        refused (400). Smaregi has no single absolute set for one member: only the asynchronous bulk.
        """
        body = {"point": str(points)}
        if expire_date is not None:
            body["pointExpireDate"] = expire_date.isoformat()
        response = self._call("POST", f"{self._member_path(customer_id)}/point/add", json=body)
        return PointMovementResult.from_api(json_body(response, MOVEMENT, required=("customerId",)))

    def set_points_bulk(self, balances: Sequence[PointBalance], callback_url: str) -> int:
        """Set the balances of up to 100 members to absolute values, asynchronously (apidoc POS:
        PATCH /pos/customers/point/bulk); Smaregi's requestId.

        Only accepted here: Smaregi applies the balances afterwards and POSTs the result (the
        requestId and the transactions it made) to `callback_url`. There is no single-member
        absolute set; a relative move is `add_points`.
        """
        if not 0 < len(balances) <= MAX_BULK_POINTS:
            raise ValueError(f"a bulk sets 1 to {MAX_BULK_POINTS} balances")
        if len(callback_url) > MAX_CALLBACK_URL or CALLBACK_URL.fullmatch(callback_url) is None:
            raise ValueError(f"callback_url must be an http(s) URL of at most {MAX_CALLBACK_URL} characters")
        body = {"customerPoints": [balance.as_api() for balance in balances], "callbackUrl": callback_url}
        response = self._call("PATCH", self._path("/pos/customers/point/bulk"), json=body)
        return int(json_body(response, BULK, required=("requestId",))["requestId"])

    def point_transactions(
        self,
        customer_id: str,
        *,
        since: datetime,
        until: datetime | None = None,
        division: str | None = None,
        page_size: int = TRANSACTION_PAGE_SIZE,
    ) -> list[PointTransaction]:
        """The member's point transactions (取引区分 6, 7, 8) received from `since` to `until` (now).

        apidoc POS: GET /pos/transactions with `transaction_date_time-from` / `-to` (the documented
        period filter: at most 31 days, so a longer span is read in 31-day windows), `page`,
        `limit` and `sort=transactionDateTime`. `transaction_head_division` narrows the answer
        (named by a third party, UNCONFIRMED); no member filter is documented, so the member and
        the division are also checked here on every transaction, whatever the server filtered.
        Needs the scope pos.transactions:read.
        """
        if not 0 < page_size <= TRANSACTION_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {TRANSACTION_PAGE_SIZE}")
        end = until or datetime.now(UTC)
        found: list[PointTransaction] = []
        start = since
        while start <= end:
            window_end = min(end, start + MAX_TRANSACTION_WINDOW)
            found.extend(self._point_transactions_in(customer_id, start, window_end, division, page_size))
            start = window_end + timedelta(seconds=1)
        return found

    def transaction_customer_ids(
        self, transaction_head_ids: Sequence[str], *, within: timedelta = MAX_TRANSACTION_WINDOW
    ) -> list[str]:
        """The members (customerIds) of these transactions received in the last `within` (31 days).

        What a `pos:transactions` webhook names is transactionHeadIds only: GET /pos/transactions
        with the documented `transaction_head_id-from` / `-to` range and the required period filter,
        then the ids are matched here (a sale without a member has no customerId). Needs the scope
        pos.transactions:read.
        """
        wanted = {str(number) for number in transaction_head_ids if str(number).isdigit()}
        if not wanted:
            return []
        now = datetime.now(UTC)
        params: dict[str, Any] = {
            "transaction_date_time-from": smaregi_time(now - within),
            "transaction_date_time-to": smaregi_time(now),
            "transaction_head_id-from": min(wanted, key=int),
            "transaction_head_id-to": max(wanted, key=int),
            "sort": "transactionHeadId",
            "limit": TRANSACTION_PAGE_SIZE,
        }
        found: dict[str, None] = {}
        page = 1
        while True:
            response = self._call("GET", self._path("/pos/transactions"), params={**params, "page": page})
            records = json_body(response, TRANSACTIONS, array=True)
            for record in records:
                member = record.get("customerId")
                if str(record.get("transactionHeadId")) in wanted and member not in (None, ""):
                    found[str(member)] = None
            if len(records) < TRANSACTION_PAGE_SIZE:
                return list(found)
            page += 1

    def _point_transactions_in(
        self, customer_id: str, start: datetime, end: datetime, division: str | None, page_size: int
    ) -> Iterator[PointTransaction]:
        params: dict[str, Any] = {
            "transaction_date_time-from": smaregi_time(start),
            "transaction_date_time-to": smaregi_time(end),
            "sort": "transactionDateTime",
            "limit": page_size,
        }
        if division is not None:
            params["transaction_head_division"] = division
        page = 1
        while True:
            response = self._call("GET", self._path("/pos/transactions"), params={**params, "page": page})
            records = json_body(response, TRANSACTIONS, array=True)
            for record in records:
                if "transactionHeadId" not in record:
                    continue
                transaction = PointTransaction.from_api(record)
                if transaction.customer_id == customer_id and transaction.division in (
                    {division} if division is not None else POINT_DIVISIONS
                ):
                    yield transaction
            if len(records) < page_size:
                return
            page += 1

    def list_members(
        self,
        *,
        page: int = 1,
        limit: int = MAX_PAGE_SIZE,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        sort: str | None = None,
    ) -> list[SmaregiMember]:
        """One page of members (apidoc POS: GET /pos/customers?page=&limit=&upd_date_time-from=&sort=).

        Smaregi documents no e-mail, name or phone filter: only code, member number, id range and
        update time. A page shorter than `limit` is the last (no Link header is documented). The
        update-time range may span 31 days at most; `sort` is like "updDateTime:desc".
        """
        if not 0 < limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE_SIZE}")
        if page < 1:
            raise ValueError("page must be 1 or more")
        params: dict[str, Any] = {"page": page, "limit": limit}
        if updated_from is not None:
            params["upd_date_time-from"] = smaregi_time(updated_from)
        if updated_to is not None:
            params["upd_date_time-to"] = smaregi_time(updated_to)
        if sort:
            params["sort"] = sort
        response = self._call("GET", self._path("/pos/customers"), params=params)
        return [SmaregiMember.from_api(record) for record in json_body(response, LIST, array=True)]

    def check(self) -> None:
        """A token, then one member read (`membersync check`): proves the credentials and the
        pos.customers:read scope (apidoc POS: GET /pos/customers?limit=1)."""
        self.list_members(limit=1)

    def iter_members(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[SmaregiMember]:
        """Every member, page by page until a short page (apidoc POS: GET /pos/customers)."""
        page = 1
        while True:
            members = self.list_members(page=page, limit=page_size)
            yield from members
            if len(members) < page_size:
                return
            page += 1

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
        http = self.api if method.upper() in READ_METHODS else self.writes
        return http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def _path(self, suffix: str) -> str:
        return f"/{quote(self.contract_id, safe='')}{suffix}"

    def _member_path(self, customer_id: str) -> str:
        return self._path(f"/pos/customers/{quote(customer_id, safe='')}")


def _member(response: requests.Response) -> SmaregiMember:
    """The customer object of a single-member answer."""
    return SmaregiMember.from_api(json_body(response, f"{SYSTEM} member", required=("customerId",)))
