"""`POST /api/registrations` and `GET /api/registrations/<id>` as the README's HTTP API section promises."""

from __future__ import annotations

import json
import re
import uuid

from flask import Blueprint, Response, jsonify, request, url_for
from marshmallow import ValidationError

from app.errors import error_response
from app.intake import IdempotencyConflict, submit
from app.limits import public_intake
from app.services import services
from registrations.models import Registration
from registrations.status import public_status_document

blueprint = Blueprint("api", __name__, url_prefix="/api")

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@blueprint.post("/registrations")
@public_intake
def create_registration() -> tuple[Response, int]:
    """Accept a registration: 202 with its id and status URL once it is durable."""
    if request.mimetype != "application/json":
        return error_response(415, {"_request": ["Content-Type must be application/json."]})
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        return error_response(400, {"Idempotency-Key": ["Must be 1-255 printable ASCII characters."]})
    try:
        # Decoded strictly: json.loads(bytes) would let the bytes of a lone surrogate (ED A0 80)
        # through as text no encoder can write. RFC 8259 says JSON between systems is UTF-8.
        payload = json.loads(request.get_data(cache=False).decode("utf-8"))
    except UnicodeDecodeError:
        return error_response(400, {"_request": ["Body is not valid UTF-8."]})
    except ValueError:
        return error_response(400, {"_request": ["Body is not valid JSON."]})
    except RecursionError:
        return error_response(400, {"_request": ["Body is nested too deeply."]})
    try:
        acceptance = submit(payload, idempotency_key=key, source="api")
    except ValidationError as error:
        return error_response(422, _as_field_errors(error.messages))
    except IdempotencyConflict:
        return error_response(409, {"Idempotency-Key": ["Already used with a different body."]})
    registration = acceptance.registration
    status_url = url_for("api.registration_status", registration_id=registration.id)
    response = jsonify({"id": registration.id, "status": registration.status, "status_url": status_url})
    response.headers["Location"] = status_url
    if not acceptance.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 202


@blueprint.get("/registrations/<registration_id>")
def registration_status(registration_id: str) -> tuple[Response, int]:
    """The registration's status per system, with no personal data."""
    try:
        uuid.UUID(registration_id)
    except ValueError:
        return error_response(404, {"id": ["No such registration."]})
    with services().database.session() as session:
        registration = session.get(Registration, registration_id)
        if registration is None:
            return error_response(404, {"id": ["No such registration."]})
        return jsonify(public_status_document(registration)), 200


def _as_field_errors(messages: object) -> dict[str, list[str]]:
    """marshmallow's messages as {field: [message]} (nested or list-shaped ones flattened)."""
    if isinstance(messages, list):
        return {"_schema": [str(message) for message in messages]}
    assert isinstance(messages, dict)
    flat: dict[str, list[str]] = {}
    for field, value in messages.items():
        if isinstance(value, list):
            flat[str(field)] = [str(item) for item in value]
        else:
            flat[str(field)] = [str(value)]
    return flat
