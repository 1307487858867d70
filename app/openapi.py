"""`/api/openapi.json`, generated from the marshmallow schemas so it cannot drift from validation."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify

from app.schemas import AcceptedSchema, ErrorsSchema, RegistrationSchema, RegistrationStatusSchema

blueprint = Blueprint("openapi", __name__)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": "Errors"}}}


@cache
def build_spec() -> dict[str, Any]:
    """The OpenAPI 3 document of the public API."""
    spec = APISpec(title="Membersync", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Registration", schema=RegistrationSchema)
    spec.components.schema("Accepted", schema=AcceptedSchema)
    spec.components.schema("RegistrationStatus", schema=RegistrationStatusSchema)
    spec.components.schema("Errors", schema=ErrorsSchema)
    spec.path(
        path="/api/registrations",
        operations={
            "post": {
                "summary": "Accept a registration",
                "parameters": [
                    {
                        "in": "header",
                        "name": "Idempotency-Key",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "Registration"}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted; durable and queued",
                        "content": {"application/json": {"schema": "Accepted"}},
                    },
                    "400": _error("Malformed JSON"),
                    "409": _error("Idempotency-Key reused with another body"),
                    "413": _error("Body too large"),
                    "415": _error("Not JSON"),
                    "422": _error("Invalid fields"),
                    "429": _error("Too many requests"),
                },
            }
        },
    )
    spec.path(
        path="/api/registrations/{registration_id}",
        operations={
            "get": {
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
                },
            }
        },
    )
    return spec.to_dict()


@blueprint.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(build_spec())
