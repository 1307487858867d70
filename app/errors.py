"""JSON error bodies for the API: every client error names what was wrong, never a bare 500 page."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException


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
