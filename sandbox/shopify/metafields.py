"""Metafield validation and records, shared by customerCreate/customerUpdate and metafieldsSet.

Messages follow Shopify's wording where we know it; the exact text of the per-type value errors is
UNCONFIRMED (clients must key on `field` and `code`, not on the message).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from sandbox.common import DuplicateKeyError, RecordStore

# The sandbox shop has one app installed (every token is that app's). Shopify stores an app-owned
# namespace `$app:<name>` as `app--<app id>--<name>` and a metafield without a namespace in the app's
# reserved `app--<app id>`; app ids are numbers.
APP_ID = "2727272"
APP_NAMESPACE = f"app--{APP_ID}"
APP_PREFIX = "$app"
MAX_METAFIELDS_PER_SET = 25

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
_INTEGER_LIMIT = 9_007_199_254_740_991  # Shopify's number_integer range (JavaScript-safe integers).


def stored_namespace(namespace: str | None) -> str:
    """The namespace as Shopify stores it: `$app:<name>` -> `app--<app id>--<name>`, `$app` or none ->
    the app's reserved namespace, any other as given. Either spelling reads the same metafield."""
    if not namespace or namespace == APP_PREFIX:
        return APP_NAMESPACE
    if namespace.startswith(f"{APP_PREFIX}:"):
        return f"{APP_NAMESPACE}--{namespace[len(APP_PREFIX) + 1 :]}"
    return namespace


def stored_key(namespaced_key: str) -> str:
    """A `namespace.key` filter (Customer.metafields(keys:)) with its namespace as stored."""
    namespace, _, key = namespaced_key.rpartition(".")
    return f"{stored_namespace(namespace)}.{key}" if namespace else namespaced_key


def _is_integer(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", value) is not None and abs(int(value)) <= _INTEGER_LIMIT


def _is_decimal(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d+(\.\d+)?", value) is not None


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _is_date_time(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _is_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in {"http", "https", "mailto", "sms", "tel"} and bool(parsed.netloc or parsed.path)


# type -> (accepts the value?, message when it does not)
VALUE_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "single_line_text_field": (lambda value: "\n" not in value, "Value must be a single line text string."),
    "multi_line_text_field": (lambda value: True, ""),
    "number_integer": (_is_integer, "Value must be an integer."),
    "number_decimal": (_is_decimal, "Value must be a decimal."),
    "boolean": (lambda value: value in {"true", "false"}, "Value must be true or false."),
    "date": (_is_date, "Value must be in YYYY-MM-DD format."),
    "date_time": (_is_date_time, "Value must be in YYYY-MM-DDTHH:MM:SS format."),
    "json": (_is_json, "Value must be valid JSON."),
    "url": (_is_url, "Value must be a valid URL."),
    "id": (lambda value: bool(value.strip()), "Value must be an ID."),
}


def metafield_problems(
    *, namespace: str, key: str | None, type_name: str | None, value: str | None
) -> list[tuple[str, str, str]]:
    """Problems with one metafield as (input field, code, message); empty when it can be stored."""
    problems: list[tuple[str, str, str]] = []
    if not 3 <= len(namespace) <= 255:
        problems.append(
            (
                "namespace",
                "TOO_SHORT" if len(namespace) < 3 else "TOO_LONG",
                _length("Namespace", 3, 255, namespace),
            )
        )
    elif not _NAME_PATTERN.match(namespace):
        problems.append(("namespace", "INVALID_VALUE", "Namespace contains one or more invalid characters."))
    elif namespace.startswith("app--") and not (
        namespace == APP_NAMESPACE or namespace.startswith(f"{APP_NAMESPACE}--")
    ):
        # Another app's reserved namespace: only the owning app may write there.
        message = "Access to this namespace and key on Metafields for this resource type is not allowed."
        problems.append(("namespace", "APP_NOT_AUTHORIZED", message))
    if not key:
        problems.append(("key", "BLANK", "Key can't be blank"))
    elif not 2 <= len(key) <= 64:
        problems.append(("key", "TOO_SHORT" if len(key) < 2 else "TOO_LONG", _length("Key", 2, 64, key)))
    elif not _NAME_PATTERN.match(key):
        problems.append(("key", "INVALID_VALUE", "Key contains one or more invalid characters."))
    if not type_name:
        problems.append(("type", "BLANK", "Type can't be blank"))
    elif type_name not in VALUE_CHECKS:
        problems.append(("type", "INVALID_TYPE", f"Type '{type_name}' is not a valid metafield type."))
    if value is None or value == "":
        problems.append(("value", "BLANK", "Value can't be blank"))
    elif type_name in VALUE_CHECKS:
        accepts, message = VALUE_CHECKS[type_name]
        if not accepts(value):
            problems.append(("value", "INVALID_VALUE", message))
    return problems


def definition_problems(
    definition: dict[str, Any] | None, type_name: str | None
) -> list[tuple[str, str, str]]:
    """A metafield's type against its namespace and key's definition, as (input field, code, message).

    Shopify refuses a metafield whose type is not the definition's (the value is then checked against
    the definition's type by `metafield_problems`); the exact wording is UNCONFIRMED.
    """
    if definition is None or type_name is None or type_name == definition["type"]:
        return []
    return [
        ("type", "INVALID_TYPE", f"Type must be '{definition['type']}' as set by the metafield definition.")
    ]


class MetafieldDefinitions:
    """The shop's metafield definitions (metafieldDefinitionCreate), one per owner type, namespace and key."""

    def __init__(self) -> None:
        self.records = RecordStore(
            unique={"identity": lambda record: f"{record['ownerType']}|{record['namespace']}|{record['key']}"}
        )

    def clear(self) -> None:
        """Forget every definition."""
        self.records.clear()

    def find(self, owner_type: str, namespace: str | None, key: str) -> dict[str, Any] | None:
        """The definition of this owner type, namespace (either spelling) and key, or None."""
        return self.records.find("identity", f"{owner_type}|{stored_namespace(namespace)}|{key}")

    def create(
        self, definition: dict[str, Any], now: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """metafieldDefinitionCreate: (the definition, []) or (None, MetafieldDefinitionCreateUserErrors)."""
        namespace = stored_namespace(definition.get("namespace"))
        key, type_name = definition.get("key") or "", definition.get("type") or ""
        errors = [
            _definition_error(name, code, message)
            for name, code, message in metafield_problems(
                namespace=namespace,
                key=key,
                type_name=type_name,
                value="0" if type_name == "number_integer" else "x",
            )
            if name != "value"
        ]
        if not (definition.get("name") or "").strip():
            errors.append(_definition_error("name", "BLANK", "Name can't be blank"))
        if errors:
            return None, errors
        record = {
            "namespace": namespace,
            "key": key,
            "name": definition["name"],
            "description": definition.get("description"),
            "ownerType": definition["ownerType"],
            "type": type_name,
            "createdAt": now,
        }
        try:
            created = self.records.insert(record)
        except DuplicateKeyError:
            owner = str(definition["ownerType"]).capitalize()
            message = f"Key is in use for {owner} metafields on the '{namespace}' namespace."
            return None, [_definition_error("key", "TAKEN", message)]
        return {**created, "id": f"gid://shopify/MetafieldDefinition/{created['id']}"}, []


# metafieldsSet's codes for the same problems -> MetafieldDefinitionCreateUserErrorCode.
_DEFINITION_CODES = {
    "INVALID_VALUE": "INVALID_CHARACTER",
    "INVALID_TYPE": "INCLUSION",
    "APP_NOT_AUTHORIZED": "INVALID",
}


def _definition_error(name: str, code: str, message: str) -> dict[str, Any]:
    return {
        "field": ["definition", name],
        "code": _DEFINITION_CODES.get(code, code),
        "message": message,
        "elementIndex": None,
    }


def _length(what: str, minimum: int, maximum: int, text: str) -> str:
    if len(text) < minimum:
        return f"{what} is too short (minimum is {minimum} characters)"
    return f"{what} is too long (maximum is {maximum} characters)"


def compare_digest(metafield: dict[str, Any]) -> str:
    """An opaque digest of a metafield's content, for metafieldsSet's optimistic concurrency check."""
    content = json.dumps([metafield["namespace"], metafield["key"], metafield["type"], metafield["value"]])
    return hashlib.sha256(content.encode()).hexdigest()


def json_value(metafield: dict[str, Any]) -> Any:
    """The value as JSON, typed by the metafield's type (Metafield.jsonValue)."""
    value, type_name = metafield["value"], metafield["type"]
    if type_name == "number_integer":
        return int(value)
    if type_name == "boolean":
        return value == "true"
    if type_name == "json":
        return json.loads(value)
    return value


def upsert_metafield(
    metafields: list[dict[str, Any]],
    *,
    namespace: str,
    key: str,
    type_name: str,
    value: str,
    now: str,
    new_id: Callable[[], int],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A new list with the metafield created or replaced (records are never changed in place)."""
    for position, existing in enumerate(metafields):
        if existing["namespace"] == namespace and existing["key"] == key:
            replaced = {**existing, "type": type_name, "value": value, "updatedAt": now}
            return [*metafields[:position], replaced, *metafields[position + 1 :]], replaced
    legacy_id = new_id()
    created = {
        "id": f"gid://shopify/Metafield/{legacy_id}",
        "legacyResourceId": str(legacy_id),
        "namespace": namespace,
        "key": key,
        "type": type_name,
        "value": value,
        "ownerType": "CUSTOMER",
        "createdAt": now,
        "updatedAt": now,
    }
    return [*metafields, created], created


def find_metafield(metafields: list[dict[str, Any]], namespace: str, key: str) -> dict[str, Any] | None:
    """The metafield with this namespace and key, or None."""
    return next(
        (field for field in metafields if field["namespace"] == namespace and field["key"] == key), None
    )
