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
        if status == 429 and error.get_response().headers.get("Retry-After"):
            response.headers["Retry-After"] = error.get_response().headers["Retry-After"]
        return response, status
