"""Contact properties in the HubSpot emulator: the Properties API and the portal admin's validation rules.

- `GET /crm/properties/<version>/contacts` (and the legacy `/crm/v3/properties/contacts`) lists the
  definitions `{"results": [...]}`; `GET .../contacts/<name>` reads one (404 otherwise); `POST
  .../contacts` `{name, label, type, fieldType, groupName, description?}` creates one (201), 409
  OBJECT_ALREADY_EXISTS when the name is taken, standard names included; `type` and `fieldType` must
  fit each other (HubSpot validates the pair since 2021). A contact write naming a property without a
  definition is refused with PROPERTY_DOESNT_EXIST (`sandbox.hubspot.ContactBook`).
- Validation rules, set as a portal admin would through the control API: `POST
  /_sandbox/validation-rules` `{"property", "pattern"}` (a written value must match the regular
  expression in full) or `{"property", "required": true}` (the contact after the write must have a
  value), with an optional `name`; `GET` lists them, `DELETE` removes them all; `/_sandbox/reset` too.
  Pattern rules apply on every API version (HubSpot has enforced property validation rules on API
  writes since July 2023); required rules from version 2026-09 (HubSpot's changelog, "CRM API write
  validation enforcement"). A refusal is HubSpot's 400 VALIDATION_ERROR "Property values were not
  valid: [...]" whose entry names the property and, in its message, the rule. The `error` codes used
  here (VALIDATION_RULE_FAILED, REQUIRED_PROPERTY_MISSING) are the emulator's own: HubSpot's are
  UNCONFIRMED.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.common import DuplicateKeyError, Record, RecordStore, answer_at_once

LEGACY_PROPERTIES = "/crm/v3/properties/contacts"
DATED_PROPERTIES = "/crm/properties/<version>/contacts"
RULES_PATH = "/_sandbox/validation-rules"
GROUP_NAMES = frozenset({"contactinformation"})
# The fieldTypes each type may be shown as (HubSpot's Properties API guide).
FIELD_TYPES: Mapping[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "phonenumber", "html", "file"}),
    "number": frozenset({"number"}),
    "bool": frozenset({"booleancheckbox"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")

ErrorFactory = Callable[..., Response]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def definition(
    name: str,
    *,
    label: str | None = None,
    type_: str = "string",
    field_type: str = "text",
    hubspot_defined: bool = True,
    read_only: bool = False,
    description: str = "",
) -> Record:
    """A property definition in HubSpot's shape."""
    stamp = "2020-01-01T00:00:00.000Z" if hubspot_defined else _now()
    return {
        "name": name,
        "label": label or name.replace("_", " ").capitalize(),
        "type": type_,
        "fieldType": field_type,
        "description": description,
        "groupName": "contactinformation",
        "options": [],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }


class PropertyBook:
    """The contact property definitions of one portal, and the validation rules its admin set."""

    def __init__(self, builtin: Iterable[Record]) -> None:
        # The portal's own (and pre-existing custom) definitions; those created through the API are
        # kept in a store, so a persisted sandbox keeps them.
        self.builtin = {record["name"]: record for record in builtin}
        self.created = RecordStore(unique={"name": lambda record: record["name"]})
        self.rules = RecordStore(unique={"name": lambda record: record["name"]})

    def clear(self) -> None:
        self.created.clear()
        self.rules.clear()

    def get(self, name: str) -> Record | None:
        """A definition by name, or None."""
        found = self.builtin.get(name) or self.created.find("name", name)
        if found is None:
            return None
        return {key: value for key, value in found.items() if key != "id"}

    def exists(self, name: str) -> bool:
        return name in self.builtin or self.created.find("name", name) is not None

    def all(self) -> list[Record]:
        shown = [self.get(name) for name in [*self.builtin, *(r["name"] for r in self.created.all())]]
        return [record for record in shown if record is not None]

    def create(self, body: Any) -> Record:
        """Define a property from a POST body; ValueError (why) or DuplicateKeyError (name taken)."""
        if not isinstance(body, dict):
            raise ValueError("Request body must be a JSON object")
        name, label = body.get("name"), body.get("label")
        type_, field_type, group = body.get("type"), body.get("fieldType"), body.get("groupName")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                "name must be lower-case letters, digits and underscores, starting with a letter"
            )
        if not isinstance(label, str) or not label.strip():
            raise ValueError("label is required")
        if type_ not in FIELD_TYPES:
            raise ValueError(f"type must be one of {sorted(FIELD_TYPES)}")
        if field_type not in FIELD_TYPES[str(type_)]:
            raise ValueError(f"fieldType {field_type} is not valid for type {type_}")
        if group not in GROUP_NAMES:
            raise ValueError(f"Property group {group} does not exist")
        with self.created.lock:
            if name in self.builtin:
                raise DuplicateKeyError("name", name, name)
            record = definition(
                name,
                label=label,
                type_=str(type_),
                field_type=str(field_type),
                hubspot_defined=False,
                description=str(body.get("description") or ""),
            )
            self.created.insert(record)
        return {key: value for key, value in record.items() if key != "id"}

    def add_rule(self, body: Any) -> Record:
        """A validation rule from a control body; ValueError says why it is not one."""
        if not isinstance(body, dict):
            raise ValueError("rule body must be a JSON object")
        prop, pattern, required = body.get("property"), body.get("pattern"), body.get("required", False)
        if not isinstance(prop, str) or not prop:
            raise ValueError("property must name a contact property")
        if (pattern is None) == (required is not True):
            raise ValueError('a rule has either "pattern" (a regular expression) or "required": true')
        if pattern is not None:
            if not isinstance(pattern, str):
                raise ValueError("pattern must be a string")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from None
        name = str(body.get("name") or (f"{prop} is required" if required else f"{prop} matches {pattern}"))
        rule = {"name": name, "property": prop, "pattern": pattern, "required": pattern is None}
        with self.rules.lock:
            existing = self.rules.find("name", name)
            if existing is not None:
                return self.rules.update(existing["id"], lambda old: {**rule, "id": old["id"]})
            return self.rules.insert(rule)

    def violations(
        self, written: Mapping[str, str], stored: Mapping[str, Any], *, enforce_required: bool
    ) -> list[dict[str, Any]]:
        """HubSpot's per-property errors for the rules this write breaks (empty: none)."""
        errors: list[dict[str, Any]] = []
        after = {**stored, **written}
        for rule in self.rules.all():
            prop = rule["property"]
            if rule["required"]:
                if enforce_required and not after.get(prop):
                    message = f'Validation rule "{rule["name"]}" refused the write: {prop} is required'
                    errors.append(_rule_error(prop, "REQUIRED_PROPERTY_MISSING", message))
            elif written.get(prop) and not re.fullmatch(rule["pattern"], written[prop]):
                # Never the value itself: it may be personal data.
                message = f'Validation rule "{rule["name"]}" refused the value of {prop}'
                errors.append(_rule_error(prop, "VALIDATION_RULE_FAILED", message))
        return errors


def _rule_error(name: str, error: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name}


def install_properties(app: Flask, book: PropertyBook, *, error: ErrorFactory) -> None:
    """Register the Properties API (both path forms) and the validation-rule control on the app.

    Authentication, the version check and the rate limit are the app's own hooks (they cover
    `/crm/...`); the control path is unauthenticated like the rest of /_sandbox/.
    """

    def list_properties() -> Response:
        answer_at_once()
        return jsonify({"results": book.all()})

    def read_property(name: str) -> Response:
        answer_at_once()
        found = book.get(name)
        if found is None:
            return error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return jsonify(found)

    def create_property() -> Response:
        try:
            created = book.create(request.get_json(force=True, silent=True))
        except ValueError as exc:
            answer_at_once()
            return error(400, "VALIDATION_ERROR", str(exc))
        except DuplicateKeyError as exc:
            answer_at_once()
            return error(409, "OBJECT_ALREADY_EXISTS", f"Property named '{exc.key}' already exists.")
        response = jsonify(created)
        response.status_code = 201
        return response

    for prefix in (LEGACY_PROPERTIES, DATED_PROPERTIES):
        app.add_url_rule(prefix, "list_properties", list_properties, methods=["GET"])
        app.add_url_rule(prefix, "create_property", create_property, methods=["POST"])
        app.add_url_rule(f"{prefix}/<name>", "read_property", read_property, methods=["GET"])

    @app.get(RULES_PATH)
    def validation_rules() -> Response:
        return jsonify({"rules": book.rules.all()})

    @app.post(RULES_PATH)
    def add_validation_rule() -> tuple[Response, int]:
        try:
            rule = book.add_rule(request.get_json(force=True, silent=True))
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify({"rule": rule}), 201

    @app.delete(RULES_PATH)
    def clear_validation_rules() -> Response:
        book.rules.clear()
        return jsonify({"rules": []})
