"""JSON error bodies for the API: every client error names what was wrong, never a bare 500 page."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# What a database says when it cannot serve a request for now (SQLite's busy timeout under many
# writers, a restart, a dropped connection), as opposed to a statement that can never succeed.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# How long a client is asked to wait before sending again (Retry-After).
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_BUSY = "Temporarily unavailable; nothing was stored. Please try again shortly."


def database_unavailable(error: Exception) -> None:
    """Log a request the database refused: the error's class only (a driver's message can quote
    the statement's parameters, a registrant's name and address)."""
    cause = getattr(error, "orig", None) or error
    log.warning("%s %s: database unavailable (%s)", request.method, request.path, type(cause).__name__)


def error_response(status: int, errors: dict[str, list[str]]) -> tuple[Response, int]:
    """`{"errors": {field: [message]}}` with `status`."""
    return jsonify({"errors": errors}), status


_REASONS = {
    400: "Malformed request.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "Request body too large.",
    415: "Content-Type must be application/json.",
    429: "Too many requests; slow down.",
}


def init_app(flask_app: Flask) -> None:
    """Render HTTP errors as JSON on /api/ and /webhooks/ paths."""

    @flask_app.errorhandler(OperationalError)
    @flask_app.errorhandler(InterfaceError)
    def _database_unavailable(error: Exception) -> tuple[Response, int]:
        # 503 with Retry-After, never a 500: the request's transaction rolled back, so nothing was
        # accepted, and the same request (with its Idempotency-Key, if any) can simply be sent again.
        # (The registration form answers with its own page: app.form.)
        database_unavailable(error)
        if request.path.startswith(("/api/", "/webhooks/")):
            response, _ = error_response(503, {"_request": [DATABASE_BUSY]})
        else:
            response = Response(DATABASE_BUSY, mimetype="text/plain")
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response, 503

    @flask_app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | tuple[Response, int] | HTTPException:
        if not request.path.startswith(("/api/", "/webhooks/")):
            return error
        status = error.code or 500
        response, status = error_response(status, {"_request": [_REASONS.get(status, error.name)]})
        # Headers the status requires keep their values: Allow on a 405 (RFC 9110 §15.5.6),
        # Retry-After on a 429.
        original = error.get_response().headers
        for name in ("Allow", "Retry-After"):
            if original.get(name):
                response.headers[name] = original[name]
        return response, status
