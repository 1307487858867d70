"""`/api/openapi.json`, generated from the marshmallow schemas so it cannot drift from validation."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify

from app.schemas import AcceptedSchema, ErrorsSchema, RegistrationSchema, RegistrationStatusSchema

blueprint = Blueprint("openapi", __name__)


# Ids the stateful link below names, and clients generated from the document use as method names.
CREATE_REGISTRATION = "createRegistration"
GET_REGISTRATION_STATUS = "getRegistrationStatus"

# What app/api.py accepts as an Idempotency-Key: 1-255 printable ASCII characters, no spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

# A registration the intake accepts (the examples phase of the fuzzing posts it and expects a 202).
EXAMPLE = {
    "email": "hanako.yamada@example.com",
    "first_name": "花子",
    "last_name": "山田",
    "first_name_kana": "ハナコ",
    "last_name_kana": "ヤマダ",
    "phone": "090-1234-5678",
    "birth_date": "1990-04-01",
    "postal_code": "150-0001",
    "address": "東京都渋谷区神宮前1-1-1",
    "gender": "female",
    "accepts_marketing": True,
    "locale": "ja",
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": "Errors"}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string", **schema}}


# Answers any /api/ request may meet before its view runs (app/errors.py renders them as Errors).
_NOT_ALLOWED = _error(
    "Method not allowed", {"Allow": _header("The methods this path answers", required=True)}
)
_TOO_MANY = _error(
    "Too many requests from this client",
    {"Retry-After": _header("Seconds to wait before trying again", required=True, pattern="^[0-9]+$")},
)


@cache
def build_spec() -> dict[str, Any]:
    """The OpenAPI 3 document of the public API (checked by openapi-spec-validator and fuzzed by
    schemathesis in tests/fuzz: every documented answer is one the app gives, and no other)."""
    spec = APISpec(title="Membersync", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Registration", schema=RegistrationSchema)
    spec.components.schema("Accepted", schema=AcceptedSchema)
    spec.components.schema("RegistrationStatus", schema=RegistrationStatusSchema)
    spec.components.schema("Errors", schema=ErrorsSchema)
    spec.path(
        path="/api/registrations",
        operations={
            "post": {
                "operationId": CREATE_REGISTRATION,
                "summary": "Accept a registration",
                "parameters": [
                    {
                        "in": "header",
                        "name": "Idempotency-Key",
                        "example": "signup-7f3a9c",
                        "description": "The same key with the same body answers the first registration",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "pattern": IDEMPOTENCY_KEY_PATTERN,
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "Registration", "example": EXAMPLE}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted; durable and queued",
                        "headers": {
                            "Location": _header("The status URL (as status_url)", required=True),
                            "Idempotent-Replayed": _header(
                                "true when the answer is the first registration's under this key",
                                enum=["true"],
                            ),
                        },
                        "content": {"application/json": {"schema": "Accepted"}},
                        # A client (or schemathesis' stateful phase) follows the answer to its status.
                        "links": {
                            "RegistrationStatus": {
                                "operationId": GET_REGISTRATION_STATUS,
                                "parameters": {"registration_id": "$response.body#/id"},
                                "description": "The registration's status per system",
                            }
                        },
                    },
                    "400": _error("Malformed JSON, body not UTF-8, or a bad Idempotency-Key"),
                    "405": _NOT_ALLOWED,
                    "409": _error("Idempotency-Key reused with another body"),
                    "413": _error("Body too large"),
                    "415": _error("Not JSON"),
                    "422": _error("Invalid fields"),
                    "429": _TOO_MANY,
                },
            }
        },
    )
    spec.path(
        path="/api/registrations/{registration_id}",
        operations={
            "get": {
                "operationId": GET_REGISTRATION_STATUS,
                "summary": "A registration's status per system",
                "parameters": [
                    {"in": "path", "name": "registration_id", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "Status",
                        "content": {"application/json": {"schema": "RegistrationStatus"}},
                    },
                    "404": _error("No such registration"),
                    "405": _NOT_ALLOWED,
                },
            }
        },
    )
    return spec.to_dict()


@blueprint.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(build_spec())
