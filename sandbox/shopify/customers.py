"""Shopify customers in memory: validation, unique email and phone, metafields, addresses.

Records are plain dicts keyed by the GraphQL field names, so graphql-core's default resolver reads most
fields straight off them. Uniqueness lives in the shared RecordStore's indexes, which check and write
under one lock: two concurrent creates of the same address can never both succeed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sandbox.common import DuplicateKeyError, Record, RecordStore
from sandbox.shopify import metafields as mf

CUSTOMER_GID_PREFIX = "gid://shopify/Customer/"
DEFAULT_LOCALE = "en"
MAX_NAME_LENGTH = 255

# Good enough to refuse what Shopify refuses in practice (spaces, no domain, no dot); Shopify's own
# check is stricter about odd characters, which we never send.
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# E.164 after removing the usual separators. Shopify also accepts national numbers interpreted with
# the shop's country (UNCONFIRMED in detail); our connector always sends E.164.
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_E164_PATTERN = re.compile(r"^\+[1-9]\d{6,14}$")

# Email marketing states Shopify refuses as input, with why (the 2026-10 schema's own descriptions of
# CustomerEmailMarketingState; CustomerEmailMarketingConsentInput.marketingState: "Accepted values:
# SUBSCRIBED, UNSUBSCRIBED, and PENDING. NOT_SUBSCRIBED, REDACTED, and INVALID are rejected if sent as
# input"). The sandbox does not load Shopify's schema file, so they are written here;
# tests/unit/test_shopify_consent_values.py checks them against it. How Shopify words and reports
# the refusal is UNCONFIRMED: the sandbox answers a userError on the consent field.
READ_ONLY_CONSENT_STATES = {
    "NOT_SUBSCRIBED": "cannot be set; use UNSUBSCRIBED instead to indicate the customer opted out",
    "INVALID": "is internally set and read-only",
    "REDACTED": "is internally set and read-only",
}
CONSENT_STATE_PATH = ["emailMarketingConsent", "marketingState"]

COUNTRY_NAMES = {
    "AU": "Australia",
    "CA": "Canada",
    "CN": "China",
    "DE": "Germany",
    "FR": "France",
    "GB": "United Kingdom",
    "HK": "Hong Kong SAR",
    "JP": "Japan",
    "KR": "South Korea",
    "SG": "Singapore",
    "TW": "Taiwan",
    "US": "United States",
}


def now_iso() -> str:
    """The current UTC time as Shopify writes DateTime values."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_gid(legacy_id: str | int) -> str:
    """gid://shopify/Customer/N for a numeric id."""
    return f"{CUSTOMER_GID_PREFIX}{legacy_id}"


def legacy_id_of(gid: str, kind: str = "Customer") -> str | None:
    """The numeric part of gid://shopify/<kind>/N, or None if the id is not one."""
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", gid or "")
    return match.group(1) if match else None


def normalise_email(email: str) -> str:
    """The key emails are unique by: Shopify treats addresses case-insensitively."""
    return email.strip().lower()


def normalise_phone(phone: str) -> str | None:
    """The phone in E.164, or None if it is not a valid number."""
    compact = _PHONE_SEPARATORS.sub("", phone.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact if _E164_PATTERN.match(compact) else None


def display_name(record: Record) -> str:
    """Customer.displayName: the full name, else the email, else the phone."""
    name = " ".join(part for part in (record.get("firstName"), record.get("lastName")) if part)
    return name or record.get("email") or record.get("phone") or ""


@dataclass
class MutationOutcome:
    """What customerCreate / customerUpdate answer: the customer or the user errors."""

    customer: Record | None = None
    user_errors: list[dict[str, Any]] = field(default_factory=list)


def user_error(path: list[str] | None, message: str) -> dict[str, Any]:
    """A UserError (field path + message; Shopify's UserError has no code)."""
    return {"field": path, "message": message}


def consent_errors(consent_input: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The UserErrors of an email marketing consent input: a state Shopify refuses as input."""
    state = (consent_input or {}).get("marketingState")
    why = READ_ONLY_CONSENT_STATES.get(str(state))
    return [user_error(CONSENT_STATE_PATH, f"Marketing state {state} {why}")] if why else []


class CustomerStore:
    """All customers of the sandbox shop, with O(1) lookups by id, email and phone."""

    def __init__(self) -> None:
        # Told (topic, the customer as stored now) after each change through the API: the shop's
        # webhooks (sandbox/shopify/webhooks.py), when the sandbox sends them.
        self.on_change: Callable[[str, Record], None] | None = None
        self.records = RecordStore(
            id_field="legacyResourceId",
            unique={
                "email": lambda record: normalise_email(record["email"]) if record.get("email") else None,
                "phone": lambda record: record.get("phone") or None,
            },
        )
        self._child_ids_lock = threading.Lock()
        # The shop's metafield definitions: a metafield of a defined namespace and key must be of its type.
        self.definitions = mf.MetafieldDefinitions()
        # A store restored from disk (`membersync dev`) continues after the highest id it holds, so
        # a new address or metafield never reuses one already in use.
        self._child_ids = itertools.count(self._highest_child_id() + 1)

    def _highest_child_id(self) -> int:
        highest = 0
        for customer in self.records.all():
            for child in [*customer.get("addresses", []), *customer.get("metafields", [])]:
                number = str(child.get("id", "")).split("?")[0].rpartition("/")[2]
                if number.isdigit():
                    highest = max(highest, int(number))
        return highest

    def clear(self) -> None:
        """Forget every customer; ids start again from 1."""
        with self.records.lock:
            self.records.clear()
            self.definitions.clear()
            self._child_ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.records)

    def _next_child_id(self) -> int:
        # Addresses and metafields share one sequence, like Shopify's ids share a space per shop.
        with self._child_ids_lock:
            return next(self._child_ids)

    def get(self, gid: str) -> Record | None:
        """The customer with this global id, or None."""
        legacy_id = legacy_id_of(gid)
        return None if legacy_id is None else self.records.get(legacy_id)

    def find_by_email(self, email: str) -> Record | None:
        """The customer with this email (any case), or None."""
        return self.records.find("email", normalise_email(email))

    def find_by_phone(self, phone: str) -> Record | None:
        """The customer with this phone (compared in E.164), or None."""
        normalised = normalise_phone(phone)
        return None if normalised is None else self.records.find("phone", normalised)

    def all(self) -> list[Record]:
        """Every customer, oldest first."""
        return self.records.all()

    def iter_from(self, offset: int, chunk: int = 500) -> Iterator[Record]:
        """Customers from position `offset` on, oldest first, read a chunk at a time."""
        while True:
            batch = self.records.page(offset, chunk)
            yield from batch
            if len(batch) < chunk:
                return
            offset += chunk

    def create(self, customer_input: dict[str, Any]) -> MutationOutcome:
        """customerCreate: validate, then insert atomically unless the email or phone is taken."""
        now = now_iso()
        fields, errors = self._validated_fields(customer_input, now)
        if not errors and not any(fields.get(name) for name in ("email", "phone", "firstName", "lastName")):
            # Shopify's base error; the GraphQL field path is UNCONFIRMED (null, as for other base errors).
            errors.append(user_error(None, "Customer must have a name, phone number or email address"))
        errors += consent_errors(customer_input.get("emailMarketingConsent"))
        if customer_input.get("emailMarketingConsent") and not fields.get("email"):
            # "The `email` field is required when creating a customer with email marketing consent
            # information" (the schema); the wording of the refusal is UNCONFIRMED.
            errors.append(user_error(["email"], "Email is required to set email marketing consent"))
        errors += self._metafield_errors(customer_input.get("metafields") or [])
        if errors:
            return MutationOutcome(user_errors=errors)
        record: Record = {
            "email": None,
            "firstName": None,
            "lastName": None,
            "phone": None,
            "note": None,
            "locale": DEFAULT_LOCALE,
            "tags": [],
            "taxExempt": False,
            "addresses": [],
            "metafields": [],
            # Customers created through the API have no account yet, and API-given emails count as
            # verified (the REST default; UNCONFIRMED for GraphQL).
            "state": "DISABLED",
            "verifiedEmail": True,
            "numberOfOrders": "0",
            "createdAt": now,
            "updatedAt": now,
            **fields,
        }
        record["emailMarketingConsent"] = self._consent(customer_input, record, now)
        record["metafields"] = self._with_metafields([], customer_input.get("metafields") or [], now)
        try:
            return MutationOutcome(customer=self._changed("customers/create", self.records.insert(record)))
        except DuplicateKeyError as duplicate:
            return MutationOutcome(user_errors=[_taken(duplicate)])

    def update(self, customer_input: dict[str, Any]) -> MutationOutcome:
        """customerUpdate: change only the fields given (null clears), atomically per customer."""
        legacy_id = legacy_id_of(customer_input.get("id") or "")
        if legacy_id is None or self.records.get(legacy_id) is None:
            return MutationOutcome(user_errors=[user_error(["id"], "Customer does not exist")])
        now = now_iso()
        fields, errors = self._validated_fields(customer_input, now)
        errors += consent_errors(customer_input.get("emailMarketingConsent"))
        errors += self._metafield_errors(customer_input.get("metafields") or [])
        if errors:
            return MutationOutcome(user_errors=errors)

        def apply(current: Record) -> Record:
            changed = {**current, **fields, "updatedAt": now}
            if "emailMarketingConsent" in customer_input or "email" in fields:
                changed["emailMarketingConsent"] = self._consent(customer_input, changed, now)
            changed["metafields"] = self._with_metafields(
                current["metafields"], customer_input.get("metafields") or [], now
            )
            return changed

        try:
            changed = self.records.update(legacy_id, apply)
            return MutationOutcome(customer=self._changed("customers/update", changed))
        except DuplicateKeyError as duplicate:
            return MutationOutcome(user_errors=[_taken(duplicate)])

    def _changed(self, topic: str, customer: Record) -> Record:
        """Tell the webhooks about a change made through the API; the customer, unchanged."""
        if self.on_change is not None:
            self.on_change(topic, customer)
        return customer

    def delete(self, customer_id: str) -> tuple[str | None, list[Record]]:
        """customerDelete: (the deleted customer's global id, UserErrors). The sandbox has no orders,
        so every customer may be deleted; the refusal's wording for an unknown id is UNCONFIRMED."""
        legacy_id = legacy_id_of(customer_id or "")
        removed = self.records.remove(legacy_id) if legacy_id is not None else None
        if removed is None:
            return None, [user_error(["id"], "Customer can't be found")]
        self._changed("customers/delete", removed)
        return customer_gid(removed["legacyResourceId"]), []

    def update_consent(self, consent_update: dict[str, Any]) -> MutationOutcome:
        """customerEmailMarketingConsentUpdate: store state, opt-in level and consent time.

        Its userErrors carry a code (CustomerEmailMarketingConsentUpdateUserErrorCode): INCLUSION for
        a state Shopify does not take as input, INVALID for an unknown customer or one without an
        email ("The customer must have an email address to update their consent"; wording and codes
        of these refusals are UNCONFIRMED).
        """
        consent = consent_update["emailMarketingConsent"]
        refused = consent_errors(consent)
        if refused:
            return MutationOutcome(user_errors=[{**error, "code": "INCLUSION"} for error in refused])
        legacy_id = legacy_id_of(consent_update.get("customerId") or "")
        current = self.records.get(legacy_id) if legacy_id is not None else None
        if legacy_id is None or current is None:
            return MutationOutcome(user_errors=[_coded(["customerId"], "Customer does not exist")])
        if not current.get("email"):
            return MutationOutcome(
                user_errors=[_coded(["customerId"], "Customer must have an email address")]
            )
        now = now_iso()

        def apply(record: Record) -> Record:
            return {
                **record,
                "updatedAt": now,
                "emailMarketingConsent": self._consent({"emailMarketingConsent": consent}, record, now),
            }

        changed = self.records.update(legacy_id, apply)
        return MutationOutcome(customer=self._changed("customers_email_marketing_consent/update", changed))

    def add_address(
        self, customer_id: str, address_input: dict[str, Any], *, default: bool
    ) -> tuple[Record | None, list[Record]]:
        """customerAddressCreate: (the new address, UserErrors); the default address comes first."""
        legacy_id = legacy_id_of(customer_id)
        if legacy_id is None or self.records.get(legacy_id) is None:
            return None, [user_error(["customerId"], "Customer does not exist")]
        address = self._address(address_input)
        now = now_iso()

        def apply(current: Record) -> Record:
            addresses = current["addresses"]
            addresses = [address, *addresses] if default or not addresses else [*addresses, address]
            return {**current, "addresses": addresses, "updatedAt": now}

        self._changed("customers/update", self.records.update(legacy_id, apply))
        return address, []

    def update_address(
        self, customer_id: str, address_gid: str, address_input: dict[str, Any], *, default: bool
    ) -> tuple[Record | None, list[Record]]:
        """customerAddressUpdate: change the fields given of one of the customer's addresses."""
        legacy_id = legacy_id_of(customer_id)
        customer = self.records.get(legacy_id) if legacy_id is not None else None
        if legacy_id is None or customer is None:
            return None, [user_error(["customerId"], "Customer does not exist")]
        wanted = legacy_id_of(address_gid.split("?")[0], "MailingAddress")
        if wanted is None or not any(_address_number(entry) == wanted for entry in customer["addresses"]):
            # The exact wording Shopify uses here is UNCONFIRMED.
            return None, [user_error(["addressId"], "Address does not exist")]
        now = now_iso()
        changed: list[Record] = []

        def apply(current: Record) -> Record:
            addresses = []
            for entry in current["addresses"]:
                if _address_number(entry) == wanted:
                    entry = self._changed_address(entry, address_input)
                    changed.append(entry)
                addresses.append(entry)
            if default:
                addresses.sort(key=lambda entry: _address_number(entry) != wanted)
            return {**current, "addresses": addresses, "updatedAt": now}

        self._changed("customers/update", self.records.update(legacy_id, apply))
        return changed[0], []

    def set_metafields(self, metafield_inputs: list[dict[str, Any]]) -> tuple[list[Record], list[Record]]:
        """metafieldsSet: all or nothing; returns (metafields set, MetafieldsSetUserErrors)."""
        # One lock around checks and writes: compareDigest is checked against what gets overwritten.
        with self.records.lock:
            return self._set_metafields_locked(metafield_inputs)

    def _set_metafields_locked(
        self, metafield_inputs: list[dict[str, Any]]
    ) -> tuple[list[Record], list[Record]]:
        errors: list[Record] = []
        if len(metafield_inputs) > mf.MAX_METAFIELDS_PER_SET:
            errors.append(
                _set_error(
                    ["metafields"],
                    "LESS_THAN_OR_EQUAL_TO",
                    f"Exceeded the maximum metafields input limit of {mf.MAX_METAFIELDS_PER_SET}.",
                    None,
                )
            )
        for index, entry in enumerate(metafield_inputs):
            path = ["metafields", str(index)]
            owner = self.get(entry["ownerId"])
            if owner is None:
                errors.append(_set_error([*path, "ownerId"], "INVALID_VALUE", "Owner does not exist.", index))
                continue
            namespace = mf.stored_namespace(entry.get("namespace"))
            existing = mf.find_metafield(owner["metafields"], namespace, entry["key"])
            definition = self.definitions.find("CUSTOMER", namespace, entry["key"])
            type_name = (
                entry.get("type")
                or (existing["type"] if existing else None)
                or (definition["type"] if definition else None)
            )
            for name, code, message in [
                *mf.definition_problems(definition, type_name),
                *mf.metafield_problems(
                    namespace=namespace, key=entry["key"], type_name=type_name, value=entry["value"]
                ),
            ]:
                errors.append(_set_error([*path, name], code, message, index))
            if "compareDigest" in entry and not _digest_matches(entry["compareDigest"], existing):
                errors.append(
                    _set_error(
                        [*path, "compareDigest"],
                        "STALE_OBJECT",
                        "The resource has been updated since it was loaded. Try again with an updated "
                        "`compareDigest` value.",
                        index,
                    )
                )
        if errors:
            return [], errors
        written: list[Record] = []
        now = now_iso()
        for entry in metafield_inputs:
            legacy_id = legacy_id_of(entry["ownerId"])
            assert legacy_id is not None
            namespace = mf.stored_namespace(entry.get("namespace"))
            definition = self.definitions.find("CUSTOMER", namespace, entry["key"])

            def apply(
                current: Record,
                entry: dict[str, Any] = entry,
                namespace: str = namespace,
                defined: str = definition["type"] if definition else "",
            ) -> Record:
                existing = mf.find_metafield(current["metafields"], namespace, entry["key"])
                metafields, metafield = mf.upsert_metafield(
                    current["metafields"],
                    namespace=namespace,
                    key=entry["key"],
                    type_name=entry.get("type") or (existing["type"] if existing else defined),
                    value=entry["value"],
                    now=now,
                    new_id=self._next_child_id,
                )
                written.append(metafield)
                return {**current, "metafields": metafields, "updatedAt": now}

            self.records.update(legacy_id, apply)
        return written, []

    def _validated_fields(self, customer_input: dict[str, Any], now: str) -> tuple[Record, list[Record]]:
        """The scalar fields to store, normalised, and the UserErrors of the ones that are invalid."""
        fields: Record = {}
        errors: list[Record] = []
        if "email" in customer_input:
            email = (customer_input["email"] or "").strip() or None
            if email is not None and (not _EMAIL_PATTERN.match(email) or len(email) > 255):
                errors.append(user_error(["email"], "Email is invalid"))
            fields["email"] = email
        if "phone" in customer_input:
            phone = (customer_input["phone"] or "").strip() or None
            normalised = normalise_phone(phone) if phone else None
            if phone is not None and normalised is None:
                errors.append(user_error(["phone"], "Phone is invalid"))
            fields["phone"] = normalised
        for name, label in (("firstName", "First name"), ("lastName", "Last name")):
            if name in customer_input:
                value = (customer_input[name] or "").strip() or None
                if value is not None and len(value) > MAX_NAME_LENGTH:
                    errors.append(
                        user_error([name], f"{label} is too long (maximum is {MAX_NAME_LENGTH} characters)")
                    )
                fields[name] = value
        for name in ("note", "taxExempt"):
            if name in customer_input:
                fields[name] = customer_input[name]
        if customer_input.get("locale"):
            fields["locale"] = customer_input["locale"]
        if "tags" in customer_input:
            fields["tags"] = _tags(customer_input["tags"] or [])
        if "addresses" in customer_input:
            fields["addresses"] = [self._address(entry) for entry in customer_input["addresses"] or []]
        return fields, errors

    def _metafield_errors(self, metafield_inputs: list[dict[str, Any]]) -> list[Record]:
        errors = []
        for index, entry in enumerate(metafield_inputs):
            namespace = mf.stored_namespace(entry.get("namespace"))
            definition = self.definitions.find("CUSTOMER", namespace, entry.get("key") or "")
            for name, _code, message in [
                *mf.definition_problems(definition, entry.get("type")),
                *mf.metafield_problems(
                    namespace=namespace,
                    key=entry.get("key"),
                    type_name=entry.get("type"),
                    value=entry.get("value"),
                ),
            ]:
                errors.append(user_error(["metafields", str(index), name], message))
        return errors

    def _with_metafields(
        self, current: list[Record], metafield_inputs: list[dict[str, Any]], now: str
    ) -> list[Record]:
        metafields = current
        for entry in metafield_inputs:
            metafields, _ = mf.upsert_metafield(
                metafields,
                namespace=mf.stored_namespace(entry.get("namespace")),
                key=entry["key"],
                type_name=entry["type"],
                value=entry["value"],
                now=now,
                new_id=self._next_child_id,
            )
        return metafields

    def _address(self, address_input: dict[str, Any]) -> Record:
        country_code = address_input.get("countryCode")
        first_name, last_name = address_input.get("firstName"), address_input.get("lastName")
        return {
            "id": f"gid://shopify/MailingAddress/{self._next_child_id()}?model_name=CustomerAddress",
            "address1": address_input.get("address1"),
            "address2": address_input.get("address2"),
            "city": address_input.get("city"),
            "company": address_input.get("company"),
            "countryCodeV2": country_code,
            "country": COUNTRY_NAMES.get(country_code or ""),
            "firstName": first_name,
            "lastName": last_name,
            "name": " ".join(part for part in (first_name, last_name) if part) or None,
            "phone": address_input.get("phone"),
            "provinceCode": address_input.get("provinceCode"),
            "zip": address_input.get("zip"),
        }

    def _changed_address(self, current: Record, address_input: dict[str, Any]) -> Record:
        """`current` with the fields `address_input` gives (null clears), its id kept."""
        given = self._address({**_address_input_of(current), **address_input})
        return {**given, "id": current["id"]}

    @staticmethod
    def _consent(customer_input: dict[str, Any], record: Record, now: str) -> Record | None:
        if not record.get("email"):
            return None
        given = customer_input.get("emailMarketingConsent")
        if given is None:
            return record.get("emailMarketingConsent") or {
                "marketingState": "NOT_SUBSCRIBED",
                "marketingOptInLevel": "SINGLE_OPT_IN",
                "consentUpdatedAt": None,
            }
        previous = record.get("emailMarketingConsent") or {}
        return {
            "marketingState": given["marketingState"],
            # A change that names no level keeps the one the customer had (UNCONFIRMED for Shopify).
            "marketingOptInLevel": given.get("marketingOptInLevel")
            or previous.get("marketingOptInLevel")
            or "SINGLE_OPT_IN",
            "consentUpdatedAt": given.get("consentUpdatedAt") or now,
        }


def _tags(given: list[str]) -> list[str]:
    """Tags as Shopify stores them: comma-separated entries split, trimmed, blanks and repeats dropped."""
    tags: dict[str, None] = {}
    for entry in given:
        for tag in entry.split(","):
            if tag.strip():
                tags.setdefault(tag.strip(), None)
    return list(tags)


def _address_number(address: Record) -> str | None:
    return legacy_id_of(str(address["id"]).split("?")[0], "MailingAddress")


def _address_input_of(address: Record) -> dict[str, Any]:
    """A stored address as the MailingAddressInput that would create it."""
    names = ["address1", "address2", "city", "company", "firstName", "lastName", "phone", "provinceCode"]
    names.append("zip")
    return {"countryCode": address.get("countryCodeV2"), **{name: address.get(name) for name in names}}


def _taken(duplicate: DuplicateKeyError) -> Record:
    label = "Email" if duplicate.index == "email" else "Phone"
    return user_error([duplicate.index], f"{label} has already been taken")


def _coded(path: list[str], message: str, code: str = "INVALID") -> Record:
    """A CustomerEmailMarketingConsentUpdateUserError."""
    return {"field": path, "message": message, "code": code}


def _set_error(path: list[str], code: str, message: str, index: int | None) -> Record:
    return {"field": path, "code": code, "message": message, "elementIndex": index}


def _digest_matches(given: str | None, existing: Record | None) -> bool:
    # compareDigest null means "only if the metafield does not exist yet".
    if given is None:
        return existing is None
    return existing is not None and mf.compare_digest(existing) == given
