"""`/api/openapi.json` is a valid OpenAPI 3 document, and the answers given before any view runs
(429, 405, 413) are the ones it documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from app import create_app
from config.settings import Settings
from registrations.database import Database

MINIMAL = {"email": "hanako@example.com", "first_name": "Hanako", "last_name": "Yamada"}


def response_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    """The documented body schema of an answer, its $refs pointing into `spec`."""
    documented = spec["paths"][path][method]["responses"][str(status)]
    return {**documented["content"]["application/json"]["schema"], "components": spec["components"]}


def assert_documented(spec: dict[str, Any], path: str, method: str, response: Any) -> None:
    documented = spec["paths"][path][method]["responses"][str(response.status_code)]
    OAS30Validator(response_schema(spec, path, method, response.status_code)).validate(response.get_json())
    for name, header in documented.get("headers", {}).items():
        if header.get("required"):
            assert response.headers.get(name), f"{response.status_code} without its {name} header"


def test_the_served_document_is_valid_openapi(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    validate(spec)  # raises OpenAPIValidationError on any fault
    # Round-trips through JSON unchanged: nothing the encoder had to invent.
    assert json.loads(json.dumps(spec)) == spec


def test_the_202_links_to_the_status_operation(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    operations = {
        operation["operationId"]: operation for path in spec["paths"].values() for operation in path.values()
    }
    created = spec["paths"]["/api/registrations"]["post"]["responses"]["202"]
    (link,) = created["links"].values()
    target = operations[link["operationId"]]
    assert set(link["parameters"]) == {parameter["name"] for parameter in target["parameters"]}
    # The link reads the id the Accepted body carries.
    assert link["parameters"] == {"registration_id": "$response.body#/id"}
    assert "id" in spec["components"]["schemas"]["Accepted"]["required"]


def test_the_documented_example_is_accepted_as_documented(client: Any) -> None:
    spec = client.get("/api/openapi.json").get_json()
    post = spec["paths"]["/api/registrations"]["post"]
    example = post["requestBody"]["content"]["application/json"]["example"]
    response = client.post("/api/registrations", json=example)
    assert response.status_code == 202
    assert_documented(spec, "/api/registrations", "post", response)
    status = client.get(response.get_json()["status_url"])
    assert status.status_code == 200
    assert_documented(spec, "/api/registrations/{registration_id}", "get", status)


def test_answers_before_the_view_are_documented(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0", INTAKE_RATE_LIMIT="1/minute")
    client = create_app(settings, database=database).test_client()
    spec = client.get("/api/openapi.json").get_json()
    # The body cap answers first (and spends the one request the limit allows), then the limit.
    too_large = client.post("/api/registrations", json={**MINIMAL, "address": "x" * (1 << 20)})
    assert too_large.status_code == 413
    assert_documented(spec, "/api/registrations", "post", too_large)
    limited = client.post("/api/registrations", json=MINIMAL)
    assert limited.status_code == 429
    assert_documented(spec, "/api/registrations", "post", limited)
    for path, url in [
        ("/api/registrations", "/api/registrations"),
        ("/api/registrations/{registration_id}", "/api/registrations/00000000-0000-0000-0000-000000000000"),
    ]:
        refused = client.delete(url)
        assert refused.status_code == 405
        method = next(iter(spec["paths"][path]))
        assert_documented(spec, path, method, refused)
