"""The Flask app emulating Smaregi's token endpoint and POS customers API (problem-details errors)."""

from __future__ import annotations

import base64
import binascii
import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.common import DuplicateKeyError, Record, RecordStore, RollingWindowLimiter, install_controls
from sandbox.smaregi.members import MEMBER_FIELDS, InvalidParams, invalid_member_fields, parse_point
from sandbox.smaregi.tokens import CUSTOMER_SCOPES, TokenIssuer

_JST = datetime.timezone(datetime.timedelta(hours=9), "JST")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


@dataclass
class SmaregiSettings:
    """Credentials, contracts, token lifetime and the per-contract rate limit of the emulator."""

    contract_ids: frozenset[str] = field(default_factory=lambda: frozenset({"sandbox"}))
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_expires_in: int = 3600
    # Smaregi's real numbers are unconfirmed (no official figure): requests per second per contract.
    rate_per_second: int = 10


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
    return datetime.datetime.now(_JST).isoformat(timespec="seconds")


def _too_many_requests(retry_after: str = "1") -> Response:
    response = problem(429, "Too Many Requests", "Rate limit exceeded; retry after the indicated seconds.")
    response.headers["Retry-After"] = retry_after
    return response


def create_app(settings: SmaregiSettings | None = None) -> Flask:
    """Build the Smaregi emulator: token endpoint, /{contract_id}/pos/customers and /_sandbox/."""
    settings = settings or SmaregiSettings()
    app = Flask("sandbox.smaregi")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    members = RecordStore(
        id_field="customerId",
        unique={"customer_code": lambda member: member.get("customerCode")},
        multi={"mail_address": lambda member: member.get("mailAddress") or None},
    )
    tokens = TokenIssuer(settings.token_expires_in)
    limiter = RollingWindowLimiter(settings.rate_per_second, 1.0)

    def reset() -> None:
        members.clear()
        limiter.reset()

    install_controls(
        app,
        state=lambda: {"customers": members.all()},
        reset=reset,
        render_throttle=_too_many_requests,
        render_error=lambda: problem(500, "Internal Server Error", "The sandbox injected a server error."),
    )

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
        if not requested <= CUSTOMER_SCOPES:
            unknown = " ".join(sorted(requested - CUSTOMER_SCOPES))
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
            if needed not in token.scopes:
                return problem(403, "Forbidden", f"The access token lacks the scope {needed}.")
            verdict = limiter.hit(contract_id)
            if not verdict.allowed:
                return _too_many_requests(verdict.retry_after_header)
        return None

    @app.get("/<contract_id>/pos/customers")
    def list_members(contract_id: str) -> Response:
        """GET /pos/customers with limit/page and customer_code / mail_address filters."""
        limit = _positive_int(request.args.get("limit", str(DEFAULT_PAGE_SIZE)))
        page = _positive_int(request.args.get("page", "1"))
        if limit is None or limit > MAX_PAGE_SIZE:
            return problem(400, "Bad Request", f"limit must be an integer from 1 to {MAX_PAGE_SIZE}.")
        if page is None:
            return problem(400, "Bad Request", "page must be a positive integer.")
        matching = _filtered(members, request.args.get("customer_code"), request.args.get("mail_address"))
        # One extra record tells whether a next page exists without counting every match.
        window = members.page((page - 1) * limit, limit + 1, matching)
        response = jsonify(window[:limit])
        if len(window) > limit:
            next_query = urlencode({**request.args.to_dict(), "limit": limit, "page": page + 1})
            # The Link header is undocumented for Smaregi; emitted for the clients that follow it.
            response.headers["Link"] = f'<{request.base_url}?{next_query}>; rel="next"'
        return response

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
        invalid = invalid_member_fields(body, creating=True)
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
        return _change_member(customer_id, lambda member: {**member, **body})

    @app.patch("/<contract_id>/pos/customers/<customer_id>/point")
    def set_points(contract_id: str, customer_id: str) -> Response:
        """PATCH /pos/customers/{customerId}/point: set the balance to {"point": "N"}."""
        return _change_points(customer_id, relative=False)

    @app.post("/<contract_id>/pos/customers/<customer_id>/point/add")
    def add_points(contract_id: str, customer_id: str) -> Response:
        """POST /pos/customers/{customerId}/point/add: add {"point": "N"} (N may be negative)."""
        return _change_points(customer_id, relative=True)

    def _change_points(customer_id: str, *, relative: bool) -> Response:
        body = _json_object()
        if isinstance(body, Response):
            return body
        invalid = [{"name": name, "reason": "is not allowed here"} for name in body if name != "point"]
        point = parse_point(body.get("point"), allow_negative=relative)
        if point is None:
            expected = "an integer" if relative else "an integer of at least 0"
            invalid.append({"name": "point", "reason": f"must be a string holding {expected}"})
        if invalid or point is None:
            return _validation_problem(invalid)

        def apply(member: Record) -> Record:
            balance = int(member["point"]) + point if relative else point
            if balance < 0:
                raise _NegativeBalanceError
            return {**member, "point": str(balance), "updDateTime": _now()}

        try:
            return _change_member(customer_id, apply)
        except _NegativeBalanceError:
            return _validation_problem([{"name": "point", "reason": "would make the balance negative"}])

    def _change_member(customer_id: str, change: Callable[[Record], Record]) -> Response:
        try:
            member = members.update(customer_id, lambda current: {**change(current), "updDateTime": _now()})
        except KeyError:
            return _member_not_found(customer_id)
        except DuplicateKeyError as exc:
            return _duplicate_code(exc.key)
        return jsonify(member)

    return app


class _NegativeBalanceError(Exception):
    """A relative point change would take the balance below zero."""


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


def _positive_int(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) > 0 else None


def _filtered(
    members: RecordStore, customer_code: str | None, mail_address: str | None
) -> list[Record] | None:
    """The members matching the filters through the indexes, or None for "no filter: all members"."""
    if customer_code is not None:
        found = members.find_all("customer_code", customer_code)
        return [m for m in found if mail_address is None or m.get("mailAddress") == mail_address]
    if mail_address is not None:
        return members.find_all("mail_address", mail_address)
    return None


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
