"""The Flask app emulating Smaregi's token endpoint and POS customers API (problem-details errors).

Beyond the shared /_sandbox/ controls, POST /_sandbox/faults takes two Smaregi refusals (kept until
reset, a body without them, or the body's `ttl_seconds` running out):

    "required_fields": ["entryDate", ...]   the contract makes these member fields required
                                            (会員必須項目設定): a create without them is 400
    "plan_without_customers_api": true      the contract's plan has no customers API: every
                                            /pos/customers call is 403
    "faulted_paths": "/point/add$"          the shared faults (error, throttle, timeout after
                                            commit, latency) hit only API paths this regular
                                            expression finds (a lost point/add answer alone)

Points: POST /pos/customers/{id}/point/add moves a balance (relative) and records a transaction
(sandbox.smaregi.transactions), which GET /pos/transactions lists (scope pos.transactions:read).

Reads (GET) and writes (everything else) have separate per-second budgets per contract, as Smaregi
counts them; over budget answers 429 with Retry-After.

A timeout-after-commit fault holds only writes that were carried out: reads and refused calls (4xx)
are answered at once.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.common import (
    DuplicateKeyError,
    FaultConfig,
    FaultConfigError,
    Record,
    RecordStore,
    RollingWindowLimiter,
    answer_at_once,
    install_controls,
)
from sandbox.smaregi.listing import JST, Listing, ListingError
from sandbox.smaregi.members import MEMBER_FIELDS, InvalidParams, invalid_member_fields, parse_point
from sandbox.smaregi.point_bulk import BulkRefused, PointBulk
from sandbox.smaregi.tokens import CUSTOMER_SCOPES, GRANTABLE_SCOPES, TRANSACTIONS_READ, TokenIssuer
from sandbox.smaregi.transactions import (
    POINTS_ADDED,
    POINTS_EXPIRED,
    POINTS_SUBTRACTED,
    TransactionLog,
    TransactionQuery,
)
from sandbox.smaregi.webhooks import CUSTOMERS, TRANSACTIONS, install_webhooks

READ_METHODS = frozenset({"GET", "HEAD"})
# The emulator's own fault keys in POST /_sandbox/faults, beside the shared ones.
REFUSAL_KEYS = ("required_fields", "plan_without_customers_api", "faulted_paths")


@dataclass
class SmaregiSettings:
    """Credentials, contracts, token lifetime and the per-contract budgets of the emulator.

    Smaregi counts reads and writes per app per contract per second (official); the numbers are a
    third party's, for the sandbox environment: 10 reads/s and 4 writes/s. `rate_per_second`, the
    old single budget, sizes both when the per-kind ones are not given.
    """

    contract_ids: frozenset[str] = field(default_factory=lambda: frozenset({"sandbox"}))
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_expires_in: int = 3600
    rate_per_second: int | None = None
    read_per_second: int | None = None
    write_per_second: int | None = None
    # Where the emulator posts its webhooks (sandbox.smaregi.webhooks); None sends none.
    webhook_url: str | None = None
    # The budgets' clock: a test steps a clock of its own, so a slow host can't spread a burst over
    # two windows.
    clock: Callable[[], float] = time.monotonic

    @property
    def reads(self) -> int:
        """Reads per second per contract."""
        return self.read_per_second or self.rate_per_second or 10

    @property
    def writes(self) -> int:
        """Writes per second per contract."""
        return self.write_per_second or self.rate_per_second or 4


@dataclass
class Refusals:
    """The contract's own refusals, injected through /_sandbox/faults."""

    required_fields: tuple[str, ...] = ()
    plan_without_customers_api: bool = False
    # The shared faults hit only API paths this pattern finds; None: every API path.
    faulted_paths: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Refusals:
        """The refusal keys of a faults body; FaultConfigError names a bad one."""
        required = body.get("required_fields", [])
        if not isinstance(required, list) or not all(name in MEMBER_FIELDS for name in required):
            raise FaultConfigError("required_fields must be a list of member field names")
        plan = body.get("plan_without_customers_api", False)
        if not isinstance(plan, bool):
            raise FaultConfigError("plan_without_customers_api must be true or false")
        paths = body.get("faulted_paths")
        try:
            pattern = re.compile(paths) if isinstance(paths, str) else None
        except re.error:
            pattern = None
        if paths is not None and pattern is None:
            raise FaultConfigError("faulted_paths must be a regular expression")
        return cls(tuple(required), plan, pattern)


def problem(status: int, title: str, detail: str, invalid_params: InvalidParams | None = None) -> Response:
    """A problem-details error response, the shape Smaregi's API answers errors with."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "detail": detail, "status": status}
    if invalid_params:
        body["invalid-params"] = invalid_params
    response = jsonify(body)
    response.status_code = status
    return response


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="smaregi"'
    return response


def _now() -> str:
    return datetime.datetime.now(JST).isoformat(timespec="seconds")


def _too_many_requests(retry_after: str = "1") -> Response:
    response = problem(429, "Too Many Requests", "Rate limit exceeded; retry after the indicated seconds.")
    response.headers["Retry-After"] = retry_after
    return response


def create_app(settings: SmaregiSettings | None = None) -> Flask:
    """Build the Smaregi emulator: token endpoint, /{contract_id}/pos/customers and /_sandbox/."""
    settings = settings or SmaregiSettings()
    app = Flask("sandbox.smaregi")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # No e-mail index: Smaregi has no e-mail search (see sandbox.smaregi.listing).
    members = MemberStore(id_field="customerId", unique={"customer_code": lambda m: m.get("customerCode")})
    transactions = TransactionLog()
    point_bulk = PointBulk(members, transactions)
    tokens = TokenIssuer(settings.token_expires_in)
    reads = RollingWindowLimiter(settings.reads, 1.0, settings.clock)
    writes = RollingWindowLimiter(settings.writes, 1.0, settings.clock)
    refusals = Refusals()
    webhooks = install_webhooks(app, settings.webhook_url)

    def reset() -> None:
        nonlocal refusals
        members.clear()
        transactions.clear()
        point_bulk.clear()
        webhooks.reset()
        reads.reset()
        writes.reset()
        refusals = Refusals()

    @app.before_request
    def set_faults_and_refusals() -> Response | tuple[Response, int] | None:
        """POST /_sandbox/faults: the shared fault keys, plus this emulator's refusals."""
        nonlocal refusals
        if request.method != "POST" or request.path != "/_sandbox/faults":
            return None
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "faults body must be a JSON object"}), 400
        try:
            own = Refusals.parse(body)
            config = FaultConfig.parse({k: v for k, v in body.items() if k not in REFUSAL_KEYS})
        except FaultConfigError as exc:
            return jsonify({"error": str(exc)}), 400
        controls.faults.configure(config)
        refusals = own
        return jsonify({"faults": {**config.as_json(), **_refusals_json(refusals)}})

    def faulted(path: str) -> bool:
        """Whether the shared faults may hit this path (an API path that `faulted_paths` finds)."""
        pattern = refusals.faulted_paths
        return not path.startswith("/_sandbox/") and (pattern is None or pattern.search(path) is not None)

    def refusals_expired() -> None:
        nonlocal refusals
        refusals = Refusals()

    controls = install_controls(
        app,
        state=lambda: {
            "customers": members.all(),
            "transactions": transactions.all(),
            "point_bulk": point_bulk.state(),
            "refusals": _refusals_json(refusals),
            "webhook": webhooks.state(),
        },
        reset=reset,
        render_throttle=_too_many_requests,
        render_error=lambda: problem(500, "Internal Server Error", "The sandbox injected a server error."),
        faultable=lambda api_request: faulted(api_request.path),
    )
    controls.faults.on_expiry(refusals_expired)

    # Registered after install_controls, so Flask runs it before the hold (after_request hooks run
    # last-registered first). A timeout-after-commit fault stands for a write whose answer is lost:
    # a read, or a call refused without writing (4xx: token, scope, budget, validation, conflict),
    # is answered at once. Held reads would starve a client that reads before it writes (the
    # directory pull before a create) and make the lost create answer unreachable.
    @app.after_request
    def answer_what_wrote_nothing_at_once(response: Response) -> Response:
        if request.method in READ_METHODS or 400 <= response.status_code < 500:
            answer_at_once()
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return problem(exc.code or 500, exc.name, exc.description or exc.name)

    @app.post("/app/<contract_id>/token")
    def issue_token(contract_id: str) -> Response | tuple[Response, int]:
        """Client-credentials grant (https://developers.smaregi.dev/apidoc/common/)."""
        if contract_id not in settings.contract_ids:
            return _oauth_error(404, "invalid_request", f"unknown contract {contract_id}")
        if not _client_authenticated(request.headers.get("Authorization", ""), settings):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        if request.form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials.")
        requested = frozenset(request.form.get("scope", "").split()) or CUSTOMER_SCOPES
        if not requested <= GRANTABLE_SCOPES:
            unknown = " ".join(sorted(requested - GRANTABLE_SCOPES))
            return _oauth_error(400, "invalid_scope", f"Unknown scope: {unknown}")
        token = tokens.issue(contract_id, requested)
        return jsonify(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": settings.token_expires_in,
                "scope": " ".join(sorted(token.scopes)),
            }
        )

    @app.before_request
    def authorise_and_limit() -> Response | None:
        view_args = request.view_args or {}
        if not request.path.startswith("/_sandbox/") and "/pos/" in request.path:
            contract_id = view_args.get("contract_id", "")
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            token = tokens.recognise(value.strip()) if scheme.lower() == "bearer" else None
            if token is None or token.contract_id != contract_id:
                response = problem(401, "Unauthorized", "The access token is missing, invalid or expired.")
                response.headers["WWW-Authenticate"] = 'Bearer realm="smaregi"'
                return response
            needed = "pos.customers:read" if request.method == "GET" else "pos.customers:write"
            if "/pos/transactions" in request.path:
                needed = TRANSACTIONS_READ
            if needed not in token.scopes:
                return problem(403, "Forbidden", f"The access token lacks the scope {needed}.")
            budget = reads if request.method in READ_METHODS else writes
            verdict = budget.hit(contract_id)
            if not verdict.allowed:
                return _too_many_requests(verdict.retry_after_header)
            if refusals.plan_without_customers_api:
                return problem(403, "Forbidden", "The contract's plan does not include the customers API.")
        return None

    @app.get("/<contract_id>/pos/customers")
    def list_members(contract_id: str) -> Response:
        """GET /pos/customers: documented filters, sort and page/limit; a short page is the last."""
        try:
            listing = Listing.parse(request.args, datetime.datetime.now(JST))
        except ListingError as exc:
            return _validation_problem([{"name": exc.name, "reason": exc.reason}])
        if listing.filtered:
            return jsonify(listing.select(members.all()))
        # No Link header: Smaregi documents none.
        return jsonify(members.page((listing.page - 1) * listing.limit, listing.limit))

    @app.get("/<contract_id>/pos/customers/<customer_id>")
    def show_member(contract_id: str, customer_id: str) -> Response:
        """GET /pos/customers/{customerId}."""
        member = members.get(customer_id)
        return jsonify(member) if member is not None else _member_not_found(customer_id)

    @app.post("/<contract_id>/pos/customers")
    def create_member(contract_id: str) -> Response:
        """POST /pos/customers: every value a string; answers the stored member (200, UNCONFIRMED)."""
        body = _json_object()
        if isinstance(body, Response):
            return body
        invalid = invalid_member_fields(body, creating=True) + [
            {"name": name, "reason": "is required by this contract"}
            for name in refusals.required_fields
            if not body.get(name)
        ]
        if invalid:
            return _validation_problem(invalid)
        stamp = _now()
        blank = dict.fromkeys(MEMBER_FIELDS)
        try:
            member = members.insert(
                {**blank, **body, "point": "0", "insDateTime": stamp, "updDateTime": stamp}
            )
        except DuplicateKeyError:
            return _duplicate_code(body["customerCode"])
        webhooks.notify(contract_id, CUSTOMERS, "created", [member["customerId"]])
        return jsonify(member)

    @app.patch("/<contract_id>/pos/customers/<customer_id>")
    def update_member(contract_id: str, customer_id: str) -> Response:
        """PATCH /pos/customers/{customerId} with the fields to change."""
        body = _json_object()
        if isinstance(body, Response):
            return body
        invalid = invalid_member_fields(body, creating=False)
        if invalid:
            return _validation_problem(invalid)
        answer = _change_member(customer_id, lambda member: {**member, **body})
        if answer.status_code == 200:
            webhooks.notify(contract_id, CUSTOMERS, "edited", [customer_id])
        return answer

    @app.delete("/<contract_id>/pos/customers/<customer_id>")
    def delete_member(contract_id: str, customer_id: str) -> Response | tuple[str, int]:
        """DELETE /pos/customers/{customerId}."""
        if not members.delete(customer_id):
            return _member_not_found(customer_id)
        webhooks.notify(contract_id, CUSTOMERS, "deleted", [customer_id])
        return "", 204

    @app.post("/<contract_id>/pos/customers/<customer_id>/point/add")
    def add_points(contract_id: str, customer_id: str) -> Response:
        """POST /pos/customers/{customerId}/point/add: {"point": "N"} moves the balance by N (strings;
        negative subtracts; below zero refused) and records a transaction (取引区分 6 or 7). Points
        past their pointExpireDate are expired first (a transaction 8), as Smaregi does: a
        subtraction from an expired balance is then refused, and nothing changes.

        The answer: {customerId, point, mile, pointExpireDate, updDateTime, transactionHeadIds}.
        """
        body = _json_object()
        if isinstance(body, Response):
            return body
        invalid = [
            {"name": name, "reason": "is not allowed here"}
            for name in body
            if name not in {"point", "mile", "pointExpireDate"}
        ]
        point = parse_point(body.get("point"), allow_negative=True)
        if point is None or point == 0:
            invalid.append({"name": "point", "reason": "must be a string holding a non-zero integer"})
        expire = body.get("pointExpireDate")
        if expire is not None and not _is_date(expire):
            invalid.append({"name": "pointExpireDate", "reason": "must be a date as YYYY-MM-DD"})
        if invalid or point is None:
            return _validation_problem(invalid)
        moved: list[Record] = []

        def apply(member: Record) -> Record:
            current = int(member["point"] or "0")
            expiring = current if current > 0 and _expired(member.get("pointExpireDate")) else 0
            balance = current - expiring + point
            if balance < 0:
                raise _NegativeBalanceError
            # Recorded under the member's lock: the balance and its transactions change together.
            if expiring:
                moved.append(transactions.record(member, POINTS_EXPIRED, expiring))
            division = POINTS_ADDED if point > 0 else POINTS_SUBTRACTED
            moved.append(transactions.record(member, division, abs(point)))
            changed = {**member, "point": str(balance)}
            if expire is not None:
                changed["pointExpireDate"] = expire
            return changed

        try:
            answer = _change_member(customer_id, apply)
        except _NegativeBalanceError:
            return _validation_problem([{"name": "point", "reason": "would make the balance negative"}])
        if answer.status_code != 200:
            return answer
        member = answer.get_json()
        # A movement changes the member and makes transactions: the emulator sends both events
        # (whether Smaregi fires pos:customers for a point change is UNCONFIRMED).
        webhooks.notify(contract_id, CUSTOMERS, "edited", [customer_id])
        webhooks.notify(contract_id, TRANSACTIONS, "created", [t["transactionHeadId"] for t in moved])
        return jsonify(
            {
                "customerId": member["customerId"],
                "point": member["point"],
                "mile": member.get("mile"),
                "pointExpireDate": member.get("pointExpireDate"),
                "updDateTime": member["updDateTime"],
                "transactionHeadIds": [transaction["transactionHeadId"] for transaction in moved],
            }
        )

    @app.patch("/<contract_id>/pos/customers/point/bulk")
    def set_points_bulk(contract_id: str) -> Response:
        """PATCH /pos/customers/point/bulk: absolute balances of up to 100 members, accepted at once
        ({requestId, callbackUrl}), applied a moment later, the result POSTed to callbackUrl."""
        body = _json_object()
        if isinstance(body, Response):
            return body
        try:
            return jsonify(point_bulk.accept(body))
        except BulkRefused as refused:
            return _validation_problem(refused.invalid)

    @app.get("/<contract_id>/pos/transactions")
    def list_transactions(contract_id: str) -> Response:
        """GET /pos/transactions: the documented period, id range, sort and paging (see
        sandbox.smaregi.transactions); a short page is the last."""
        try:
            query = TransactionQuery.parse(request.args, datetime.datetime.now(JST))
        except ListingError as exc:
            return _validation_problem([{"name": exc.name, "reason": exc.reason}])
        return jsonify(query.select(transactions.all()))

    def _change_member(customer_id: str, change: Callable[[Record], Record]) -> Response:
        try:
            member = members.update(customer_id, lambda current: {**change(current), "updDateTime": _now()})
        except KeyError:
            return _member_not_found(customer_id)
        except DuplicateKeyError as exc:
            return _duplicate_code(exc.key)
        return jsonify(member)

    return app


class MemberStore(RecordStore):
    """The record store, plus deletion (a shop deletes members in Smaregi's back office)."""

    def delete(self, record_id: str) -> bool:
        """Remove a record and its index entries; False when there is none."""
        with self.lock:
            record = self._records.pop(record_id, None)
            if record is None:
                return False
            self._unindex(record)
            return True


class _NegativeBalanceError(Exception):
    """A relative point change would take the balance below zero."""


def _is_date(value: Any) -> bool:
    """Whether `value` is a date string YYYY-MM-DD."""
    try:
        return isinstance(value, str) and len(value) == 10 and bool(datetime.date.fromisoformat(value))
    except ValueError:
        return False


def _expired(expire_date: Any) -> bool:
    """Whether a member's pointExpireDate (YYYY-MM-DD) lies before today in Japan."""
    if not _is_date(expire_date):
        return False
    return bool(datetime.date.fromisoformat(expire_date) < datetime.datetime.now(JST).date())


def _client_authenticated(authorization: str, settings: SmaregiSettings) -> bool:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        client_id, _, client_secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Constant-time comparisons, as a real identity server does.
    return secrets.compare_digest(client_id, settings.client_id) & secrets.compare_digest(
        client_secret, settings.client_secret
    )


def _refusals_json(refusals: Refusals) -> dict[str, Any]:
    return {
        "required_fields": list(refusals.required_fields),
        "plan_without_customers_api": refusals.plan_without_customers_api,
        "faulted_paths": refusals.faulted_paths.pattern if refusals.faulted_paths is not None else None,
    }


def _json_object() -> dict[str, Any] | Response:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return problem(400, "Bad Request", "The request body must be a JSON object.")
    return body


def _validation_problem(invalid: InvalidParams) -> Response:
    names = ", ".join(entry["name"] for entry in invalid)
    return problem(400, "Bad Request", f"Invalid parameters: {names}.", invalid)


def _duplicate_code(customer_code: str) -> Response:
    return _validation_problem([{"name": "customerCode", "reason": f"{customer_code} is already used"}])


def _member_not_found(customer_id: str) -> Response:
    return problem(404, "Not Found", f"Customer {customer_id} does not exist.")
