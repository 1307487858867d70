"""ShopifyClient against canned Admin GraphQL answers: the exact request sent, and each failure's class."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from config.settings import Secret, Settings
from connectors.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    RateLimited,
    ThrottledError,
    TransientError,
)
from connectors.http import HttpClient
from connectors.shopify import EmailTaken, PhoneTaken, ShopifyClient, ShopifyCustomer, documents, versions
from connectors.shopify.versions import VERSION_MISMATCH
from registrations.owned_fields import MemberFacts as Facts

BASE_URL = "https://membersync-test.myshopify.com"
ENDPOINT = f"{BASE_URL}/admin/api/2026-10/graphql.json"
TOKEN = "shpat_unit_test"
EMAIL = "hanako.yamada@example.com"
GID = "gid://shopify/Customer/1001"
ADDRESS_GID = "gid://shopify/MailingAddress/2001?model_name=CustomerAddress"
FACT_VARIABLES = {
    "factsNamespace": "$app:membersync",
    "memberNumberKey": "member_number",
    "pointsKey": "points",
    "rankKey": "rank",
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class RecordingLimiter:
    """A RateLimiter that lets everything through and remembers what it was told."""

    def __init__(self) -> None:
        self.acquired: list[float] = []
        self.observed: list[dict[str, float | None]] = []
        self.paused: list[float] = []
        self.refuse = False

    def acquire(self, cost: float = 1.0) -> None:
        if self.refuse:
            raise RateLimited("shopify budget spent", system="shopify", retry_after=2.0)
        self.acquired.append(cost)

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        self.observed.append({"available": available, "capacity": capacity, "per_second": per_second})

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def shopify(limiter: RecordingLimiter) -> ShopifyClient:
    http = HttpClient(
        system="shopify", base_url=BASE_URL, headers={"X-Shopify-Access-Token": TOKEN}, limiter=limiter
    )
    return ShopifyClient(http, api_version="2026-10")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def cost(requested: int = 10, available: int = 1990, *, actual: int | None = 10) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0},
    }


def answer(data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {} if data is None else {"data": data}
    body.update(extra)
    body.setdefault("extensions", {"cost": cost()})
    return body


def node(
    *,
    email: str | None = EMAIL,
    phone: str | None = "+819012345678",
    address_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A MemberCustomer as Shopify 2026-10 answers it: email and phone inside their default objects."""
    return {
        "id": GID,
        "defaultEmailAddress": None
        if email is None
        else {
            "emailAddress": email,
            "marketingState": "NOT_SUBSCRIBED",
            "marketingOptInLevel": "SINGLE_OPT_IN",
            "marketingUpdatedAt": None,
        },
        "firstName": "Hanako",
        "lastName": "Yamada",
        "defaultPhoneNumber": None if phone is None else {"phoneNumber": phone},
        "defaultAddress": None if address_id is None else {"id": address_id},
        "locale": "ja",
        "note": None,
        "tags": ["membersync"],
        "state": "DISABLED",
        "createdAt": "2026-10-15T02:00:00Z",
        "updatedAt": "2026-10-15T02:00:00Z",
        **overrides,
    }


def address_created(address_id: str = ADDRESS_GID) -> dict[str, Any]:
    return answer({"customerAddressCreate": {"address": {"id": address_id}, "userErrors": []}})


def sent(api: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    """The JSON body of a request the client sent, after checking where it went and with which token."""
    request = api.calls[index].request
    assert request.method == "POST"
    assert request.url == ENDPOINT
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    return dict(json.loads(request.body or b"{}"))


THROTTLED = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}


def definitions_exist(api: responses.RequestsMock) -> None:
    """The three member-fact metafield definitions, already created (userError TAKEN each)."""
    taken = {"field": ["definition", "key"], "message": "Key is in use.", "code": "TAKEN"}
    for _ in range(3):
        api.post(
            ENDPOINT,
            json=answer({"metafieldDefinitionCreate": {"createdDefinition": None, "userErrors": [taken]}}),
        )


# --- create_customer ---------------------------------------------------------------------------


PENDING_EMAIL = {
    "emailAddress": EMAIL,
    "marketingState": "PENDING",
    "marketingOptInLevel": "CONFIRMED_OPT_IN",
    "marketingUpdatedAt": "2026-10-15T02:00:00Z",
}


def test_create_sends_the_customer_then_its_address_as_the_default(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    created = node(defaultEmailAddress=PENDING_EMAIL)
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": created, "userErrors": []}}))
    api.post(ENDPOINT, json=address_created())

    customer = shopify.create_customer(
        email=EMAIL,
        first_name="Hanako",
        last_name="Yamada",
        phone="+819012345678",
        locale="ja",
        accepts_marketing=True,
        postal_code="150-0001",
        address="東京都渋谷区神宮前1-2-3",
        tags=("membersync", "form"),
        note="registration 42",
    )

    body = sent(api)
    assert body["query"] == documents.CREATE_CUSTOMER
    customer_input = body["variables"]["input"]
    consent = customer_input.pop("emailMarketingConsent")
    assert customer_input == {
        "email": EMAIL,
        "firstName": "Hanako",
        "lastName": "Yamada",
        "phone": "+819012345678",
        "locale": "ja",
        "note": "registration 42",
        "tags": ["membersync", "form"],
    }  # no `addresses`: deprecated in CustomerInput since 2026-10
    # Asked for marketing email: a double opt-in request, never a subscription at create.
    assert consent["marketingState"] == "PENDING"
    assert consent["marketingOptInLevel"] == "CONFIRMED_OPT_IN"
    assert ISO_UTC.match(consent["consentUpdatedAt"])
    address = sent(api, 1)
    assert address["query"] == documents.ADD_CUSTOMER_ADDRESS
    assert address["variables"] == {
        "customerId": GID,
        "address": {"countryCode": "JP", "address1": "東京都渋谷区神宮前1-2-3", "zip": "150-0001"},
        "setAsDefault": True,
    }
    assert customer == ShopifyCustomer(
        id=GID,
        email=EMAIL,
        first_name="Hanako",
        last_name="Yamada",
        phone="+819012345678",
        member_number=None,
        updated_at="2026-10-15T02:00:00Z",
        address_id=ADDRESS_GID,
        marketing_state="PENDING",
        marketing_opt_in_level="CONFIRMED_OPT_IN",
        marketing_updated_at="2026-10-15T02:00:00Z",
    )
    assert limiter.acquired == [10.0, 10.0]
    assert limiter.observed[0] == {"available": 1990.0, "capacity": 2000.0, "per_second": 100.0}


def test_create_sends_only_what_is_given_and_no_address_call_without_one(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": node(phone=None), "userErrors": []}}))

    customer = shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")

    # No consent at all for a registrant who did not opt in: NOT_SUBSCRIBED cannot be sent.
    assert sent(api)["variables"] == {
        "input": {"email": EMAIL, "firstName": "Hanako", "lastName": "Yamada", "tags": ["membersync"]}
    }
    assert customer.marketing_state == "NOT_SUBSCRIBED"


def test_create_with_a_postal_code_alone_still_sends_a_japanese_address(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": node(), "userErrors": []}}))
    api.post(ENDPOINT, json=address_created())

    shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", postal_code="150-0001")

    assert sent(api, 1)["variables"]["address"] == {"countryCode": "JP", "zip": "150-0001"}


def test_an_address_refused_after_the_create_is_permanent_and_names_the_field(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    user_errors = [{"field": ["address", "zip"], "message": "Zip is invalid for Japan"}]
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": node(), "userErrors": []}}))
    api.post(ENDPOINT, json=answer({"customerAddressCreate": {"address": None, "userErrors": user_errors}}))

    with pytest.raises(PermanentError) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", postal_code="1")

    assert str(raised.value) == "shopify customerAddressCreate: Shopify refused address.zip"


def test_add_address_answers_the_new_address_id(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    api.post(ENDPOINT, json=address_created())

    assert shopify.add_address(GID, postal_code="150-0001", address=None) == ADDRESS_GID
    assert sent(api)["variables"] == {
        "customerId": GID,
        "address": {"countryCode": "JP", "zip": "150-0001"},
        "setAsDefault": True,
    }


def test_email_already_taken_is_email_taken(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    user_errors = [{"field": ["email"], "message": "Email has already been taken"}]
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(EmailTaken) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")

    assert isinstance(raised.value, ConflictError)
    assert raised.value.reason == "email_taken"
    assert raised.value.system == "shopify"
    assert EMAIL not in str(raised.value)


def test_email_taken_wins_over_phone_taken(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    user_errors = [
        {"field": ["phone"], "message": "Phone has already been taken"},
        {"field": ["email"], "message": "Email has already been taken"},
    ]
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(EmailTaken):
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", phone="+819012345678")


def test_phone_already_taken_is_a_permanent_error(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    user_errors = [{"field": ["phone"], "message": "Phone has already been taken"}]
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(PhoneTaken) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", phone="+819012345678")

    assert isinstance(raised.value, PermanentError) and not isinstance(raised.value, ConflictError)
    assert raised.value.reason == "phone_taken"
    assert "phone" in str(raised.value) and "+819012345678" not in str(raised.value)


def test_other_user_errors_name_the_fields_but_no_values(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    user_errors = [
        {"field": ["email"], "message": f"Email {EMAIL} is invalid"},
        {"field": ["addresses", "0", "zip"], "message": "Zip is invalid for Japan"},
        {"field": None, "message": "Customer must have a name, phone number or email address"},
    ]
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(PermanentError) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")

    assert type(raised.value) is PermanentError
    assert str(raised.value) == "shopify customerCreate: Shopify refused email, addresses.0.zip, (base)"


def test_a_mutation_answer_without_customer_or_user_errors_is_permanent(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customerCreate": {"customer": None, "userErrors": []}}))

    with pytest.raises(PermanentError, match="neither a customer nor userErrors"):
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")


# --- find_customers_by_email / get_customer ----------------------------------------------------


def test_find_by_email_looks_the_exact_address_up_by_identifier(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    found_node = node(
        email="Hanako.Yamada@Example.com",
        address_id=ADDRESS_GID,
        factMemberNumber={"value": "M000123"},
        factPoints={"value": "120"},
        factRank=None,
    )
    api.post(ENDPOINT, json=answer({"customerByIdentifier": found_node}))

    found = shopify.find_customers_by_email(f" {EMAIL} ")

    body = sent(api)
    assert body["query"] == documents.FIND_CUSTOMER_BY_EMAIL
    assert "customerByIdentifier(identifier: {emailAddress: $email})" in body["query"]
    assert body["variables"] == {
        "email": EMAIL,
        "metafieldNamespace": "membersync",
        "registrationKey": "registration",
        **FACT_VARIABLES,
    }
    assert [(c.id, c.member_number, c.points, c.rank, c.address_id) for c in found] == [
        (GID, "M000123", 120, None, ADDRESS_GID)
    ]
    assert found[0].email == "Hanako.Yamada@Example.com" and found[0].phone == "+819012345678"
    # customer, its email, phone and address objects, the three fact metafields
    assert limiter.acquired == [8.0]


def test_find_by_email_with_no_customer_is_an_empty_list(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customerByIdentifier": None}))

    assert shopify.find_customers_by_email(EMAIL) == []


def test_find_by_email_never_answers_a_customer_holding_another_address(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customerByIdentifier": node(email="someone.else@example.com")}))

    assert shopify.find_customers_by_email(EMAIL) == []


def test_a_customer_without_email_phone_or_address_maps_to_nones(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customer": node(email=None, phone=None)}))

    customer = shopify.get_customer(GID)

    assert customer is not None
    assert (customer.email, customer.phone, customer.address_id) == (None, None, None)


def test_get_customer_reads_the_member_number(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    facts = {
        "factMemberNumber": {"value": "M000123"},
        "factPoints": {"value": "7"},
        "factRank": {"value": "Gold"},
    }
    api.post(ENDPOINT, json=answer({"customer": node(**facts)}))

    customer = shopify.get_customer(GID)

    body = sent(api)
    assert body["query"] == documents.GET_CUSTOMER
    assert body["variables"] == {"id": GID, **FACT_VARIABLES}
    assert customer is not None
    assert (customer.member_number, customer.points, customer.rank) == ("M000123", 7, "Gold")
    assert limiter.acquired == [8.0]


def test_get_customer_that_does_not_exist_is_none(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customer": None}))

    assert shopify.get_customer("gid://shopify/Customer/999") is None


# --- update_customer / set_member_number -------------------------------------------------------


def test_update_sends_the_id_and_only_the_given_fields(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    api.post(ENDPOINT, json=answer({"customerUpdate": {"customer": node(lastName="Sato"), "userErrors": []}}))

    customer = shopify.update_customer(GID, last_name="Sato", phone=None)

    body = sent(api)
    assert body["query"] == documents.UPDATE_CUSTOMER
    assert body["variables"] == {"input": {"id": GID, "lastName": "Sato", "phone": None}}
    assert customer.last_name == "Sato"
    assert limiter.acquired == [10.0]


def test_update_of_the_address_changes_the_default_address(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    updated = node(lastName="Sato", address_id=ADDRESS_GID)
    api.post(ENDPOINT, json=answer({"customerUpdate": {"customer": updated, "userErrors": []}}))
    changed = {"address": {"id": ADDRESS_GID}, "userErrors": []}
    api.post(ENDPOINT, json=answer({"customerAddressUpdate": changed}))

    customer = shopify.update_customer(GID, last_name="Sato", postal_code="150-0002")

    assert sent(api)["variables"] == {"input": {"id": GID, "lastName": "Sato"}}
    address = sent(api, 1)
    assert address["query"] == documents.UPDATE_CUSTOMER_ADDRESS
    assert address["variables"] == {
        "customerId": GID,
        "addressId": ADDRESS_GID,
        "address": {"countryCode": "JP", "zip": "150-0002"},
    }
    assert customer.address_id == ADDRESS_GID


def test_update_of_the_address_alone_adds_one_when_there_is_none(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json=answer({"customer": node()}))
    api.post(ENDPOINT, json=address_created())

    customer = shopify.update_customer(GID, address="東京都渋谷区神宮前1-2-3")

    assert [sent(api, index)["query"] for index in (0, 1)] == [
        documents.GET_CUSTOMER,
        documents.ADD_CUSTOMER_ADDRESS,
    ]
    assert sent(api, 1)["variables"]["address"] == {
        "countryCode": "JP",
        "address1": "東京都渋谷区神宮前1-2-3",
    }
    assert customer.address_id == ADDRESS_GID


def test_update_refuses_unknown_or_no_fields_without_sending(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    with pytest.raises(TypeError, match="birthday"):
        shopify.update_customer(GID, birthday="2000-01-01")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        shopify.update_customer(GID)
    assert len(api.calls) == 0


def test_update_of_a_missing_customer_is_not_found(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    user_errors = [{"field": ["id"], "message": "Customer does not exist"}]
    api.post(ENDPOINT, json=answer({"customerUpdate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(NotFoundError):
        shopify.update_customer("gid://shopify/Customer/999", first_name="Hanako")


def test_update_to_a_taken_email_is_email_taken(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    user_errors = [{"field": ["email"], "message": "Email has already been taken"}]
    api.post(ENDPOINT, json=answer({"customerUpdate": {"customer": None, "userErrors": user_errors}}))

    with pytest.raises(EmailTaken):
        shopify.update_customer(GID, email=EMAIL)


def test_set_member_number_writes_one_text_metafield(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    definitions_exist(api)
    metafield = {"id": "gid://shopify/Metafield/7", "namespace": "app--1--membersync", "key": "member_number"}
    api.post(ENDPOINT, json=answer({"metafieldsSet": {"metafields": [metafield], "userErrors": []}}))

    shopify.set_member_number(GID, "M000123")

    body = sent(api, 3)  # after the three metafield definitions
    assert body["query"] == documents.SET_METAFIELDS
    assert body["variables"] == {
        "metafields": [
            {
                "ownerId": GID,
                "namespace": "$app:membersync",
                "key": "member_number",
                "type": "single_line_text_field",
                "value": "M000123",
            }
        ]
    }


def test_set_member_number_user_errors_name_field_and_code(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    user_errors = [
        {
            "field": ["metafields", "0", "ownerId"],
            "message": "Owner does not exist.",
            "code": "INVALID_VALUE",
            "elementIndex": 0,
        }
    ]
    definitions_exist(api)
    api.post(ENDPOINT, json=answer({"metafieldsSet": {"metafields": None, "userErrors": user_errors}}))

    with pytest.raises(PermanentError, match=r"metafields\.0\.ownerId \[INVALID_VALUE\]") as raised:
        shopify.set_member_number(GID, "M000123")
    assert "M000123" not in str(raised.value)


# --- throttling --------------------------------------------------------------------------------


def test_throttled_as_http_200_waits_until_the_bucket_holds_the_request(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    api.post(ENDPOINT, json=answer(errors=[THROTTLED], extensions={"cost": cost(17, 2, actual=None)}))

    with pytest.raises(ThrottledError) as raised:
        shopify.find_customers_by_email(EMAIL)

    assert raised.value.retry_after == pytest.approx((17 - 2) / 100.0)
    assert raised.value.status == 200
    assert limiter.observed == [{"available": 2.0, "capacity": 2000.0, "per_second": 100.0}]


def test_throttled_as_http_429_reads_the_same_body(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    api.post(
        ENDPOINT, status=429, json=answer(errors=[THROTTLED], extensions={"cost": cost(10, 0, actual=None)})
    )

    with pytest.raises(ThrottledError) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")

    assert raised.value.retry_after == pytest.approx(0.1)
    assert raised.value.status == 429
    assert limiter.observed[0]["available"] == 0.0
    assert limiter.paused == []


def test_a_429_retry_after_header_wins_and_pauses_the_shared_limit(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    api.post(
        ENDPOINT,
        status=429,
        headers={"Retry-After": "4"},
        json=answer(errors=[THROTTLED], extensions={"cost": cost(10, 0, actual=None)}),
    )

    with pytest.raises(ThrottledError) as raised:
        shopify.get_customer(GID)

    assert raised.value.retry_after == 4.0
    assert limiter.paused == [4.0]


def test_a_429_without_shopifys_body_is_classified_by_the_http_layer(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    api.post(ENDPOINT, status=429, headers={"Retry-After": "2"}, body="Too Many Requests")

    with pytest.raises(ThrottledError) as raised:
        shopify.get_customer(GID)

    assert raised.value.retry_after == 2.0 and raised.value.status == 429
    assert limiter.paused == [2.0]


def test_throttled_without_a_throttle_status_waits_one_second(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, json={"errors": [THROTTLED]})

    with pytest.raises(ThrottledError) as raised:
        shopify.get_customer(GID)

    assert raised.value.retry_after == 1.0


def test_our_own_budget_refuses_before_anything_is_sent(
    shopify: ShopifyClient, api: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    limiter.refuse = True

    with pytest.raises(RateLimited):
        shopify.get_customer(GID)
    assert len(api.calls) == 0


# --- other failures ----------------------------------------------------------------------------


def test_access_denied_is_permanent(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    denied = {
        "message": "Access denied for customers field. Required access: `read_customers` access scope.",
        "extensions": {"code": "ACCESS_DENIED"},
    }
    api.post(ENDPOINT, json=answer({"customers": None}, errors=[denied]))

    with pytest.raises(PermanentError, match="ACCESS_DENIED"):
        shopify.find_customers_by_email(EMAIL)


def test_graphql_error_messages_lose_the_values_they_quote(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    invalid = {
        "message": f'Variable $input of type CustomerInput! was provided invalid value for email ("{EMAIL}")',
        "extensions": {"code": "INVALID_VARIABLE"},
    }
    api.post(ENDPOINT, json=answer(errors=[invalid]))

    with pytest.raises(PermanentError) as raised:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")

    assert type(raised.value) is PermanentError
    assert "INVALID_VARIABLE" in str(raised.value) and EMAIL not in str(raised.value)


def test_internal_server_error_in_the_body_is_transient(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    failure = {"message": "Internal error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    api.post(ENDPOINT, json={"errors": [failure]})

    with pytest.raises(TransientError) as raised:
        shopify.get_customer(GID)
    assert not isinstance(raised.value, ThrottledError)


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (401, '{"errors":"[API] Invalid API key or access token"}', PermanentError),
        (403, '{"errors":"Forbidden"}', PermanentError),
        (400, '{"errors":{"query":"Required parameter missing or invalid"}}', PermanentError),
        (500, '{"errors":[{"message":"Internal error"}]}', TransientError),
        (502, "<html>502 Bad Gateway</html>", TransientError),
        (503, "<html>503 Service Unavailable</html>", TransientError),
    ],
)
def test_http_failures_keep_the_http_layers_classification(
    shopify: ShopifyClient,
    api: responses.RequestsMock,
    status: int,
    body: str,
    error_class: type[Exception],
) -> None:
    api.post(ENDPOINT, status=status, body=body)

    with pytest.raises(error_class) as raised:
        shopify.get_customer(GID)
    assert not isinstance(raised.value, ThrottledError)


def test_a_404_is_permanent_not_a_missing_customer(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(ENDPOINT, status=404, json={"errors": "Not Found"})

    with pytest.raises(PermanentError, match="SHOPIFY_API_VERSION") as raised:
        shopify.get_customer(GID)
    assert not isinstance(raised.value, NotFoundError)


def test_connection_failure_is_transient(shopify: ShopifyClient, api: responses.RequestsMock) -> None:
    api.post(ENDPOINT, body=requests.ConnectionError("refused"))

    with pytest.raises(TransientError):
        shopify.get_customer(GID)


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "[]", '{"extensions": {}}'])
def test_a_200_without_data_is_transient(
    shopify: ShopifyClient, api: responses.RequestsMock, body: str
) -> None:
    api.post(ENDPOINT, body=body, content_type="application/json")

    with pytest.raises(TransientError):
        shopify.get_customer(GID)


# --- from_settings -----------------------------------------------------------------------------


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "shopify_admin_url": None,
        "shopify_shop": "membersync-test.myshopify.com",
        "shopify_access_token": Secret(TOKEN),
        "shopify_api_version": "2026-10",
        "http_connect_timeout_seconds": 1.5,
        "http_read_timeout_seconds": 7.0,
    }
    return Settings(**{**values, **overrides})


def test_from_settings_calls_the_shop_with_the_token_and_timeouts(api: responses.RequestsMock) -> None:
    limiter = RecordingLimiter()
    client = ShopifyClient.from_settings(settings(), limiter=limiter)
    api.post(ENDPOINT, json=answer({"customer": None}))

    assert client.get_customer(GID) is None

    sent(api)
    assert client.http.timeouts.connect == 1.5 and client.http.timeouts.read == 7.0
    assert client.http.limiter is limiter


def test_from_settings_prefers_the_admin_url(api: responses.RequestsMock) -> None:
    client = ShopifyClient.from_settings(settings(shopify_admin_url="http://127.0.0.1:8011"))
    api.post("http://127.0.0.1:8011/admin/api/2026-10/graphql.json", json=answer({"customer": None}))

    assert client.get_customer(GID) is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"shopify_access_token": Secret("")}, "SHOPIFY_ACCESS_TOKEN"),
        ({"shopify_shop": ""}, "SHOPIFY_SHOP"),
    ],
)
def test_from_settings_without_credentials_refuses_to_call(
    api: responses.RequestsMock, overrides: dict[str, Any], named: str
) -> None:
    client = ShopifyClient.from_settings(settings(**overrides))

    with pytest.raises(PermanentError, match=named):
        client.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    assert len(api.calls) == 0


def test_from_settings_asks_for_2026_10_by_default(api: responses.RequestsMock) -> None:
    client = ShopifyClient.from_settings(
        Settings.from_env(environ={"SHOPIFY_SHOP": "membersync-test.myshopify.com"})
    )

    assert client.path == "/admin/api/2026-10/graphql.json"


# --- the version that served the answer --------------------------------------------------------


def mismatches(requested: str, served: str) -> float:
    return VERSION_MISMATCH.labels(requested=requested, served=served)._value.get()


def test_an_answer_from_another_version_is_counted_and_warned_about_once(
    limiter: RecordingLimiter,
    api: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(versions, "_warned", set())  # a fresh process as far as warnings go
    http = HttpClient(system="shopify", base_url=BASE_URL, limiter=limiter)
    retired = ShopifyClient(http, api_version="2025-01")
    served = {"X-Shopify-API-Version": "2026-01"}
    retired_endpoint = f"{BASE_URL}/admin/api/2025-01/graphql.json"
    api.post(retired_endpoint, json=answer({"customer": None}), headers=served)
    api.post(retired_endpoint, json=answer({"customer": None}), headers=served)
    before = mismatches("2025-01", "2026-01")

    with caplog.at_level("WARNING", logger="connectors.shopify.versions"):
        assert retired.get_customer(GID) is None
        assert retired.get_customer(GID) is None

    assert mismatches("2025-01", "2026-01") == before + 2
    warnings = [record.getMessage() for record in caplog.records if record.name == versions.__name__]
    assert warnings == [
        "Shopify served Admin API version 2026-01 for a request to 2025-01 (a retired or unknown "
        "version); set SHOPIFY_API_VERSION to a supported one"
    ]


def test_a_failed_answer_from_another_version_is_counted_too(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    api.post(
        ENDPOINT,
        status=401,
        json={"errors": "[API] Invalid API key"},
        headers={"X-Shopify-API-Version": "2027-01"},
    )
    before = mismatches("2026-10", "2027-01")

    with pytest.raises(PermanentError):
        shopify.get_customer(GID)

    assert mismatches("2026-10", "2027-01") == before + 1


@pytest.mark.parametrize("headers", [{"X-Shopify-API-Version": "2026-10"}, {}])
def test_an_answer_from_the_requested_version_or_without_the_header_counts_nothing(
    shopify: ShopifyClient, api: responses.RequestsMock, headers: dict[str, str]
) -> None:
    api.post(ENDPOINT, json=answer({"customer": None}), headers=headers)
    total = sum(sample.value for metric in VERSION_MISMATCH.collect() for sample in metric.samples)

    assert shopify.get_customer(GID) is None

    assert sum(sample.value for metric in VERSION_MISMATCH.collect() for sample in metric.samples) == total


# --- member facts: app-owned metafields, their definitions, chunks of 25 ----------------------


def created_definition(key: str, type_name: str) -> dict[str, Any]:
    return {
        "metafieldDefinitionCreate": {
            "createdDefinition": {
                "id": "gid://shopify/MetafieldDefinition/1",
                "namespace": "app--1--membersync",
                "key": key,
                "type": {"name": type_name},
            },
            "userErrors": [],
        }
    }


def test_member_facts_define_their_metafields_once_then_write_only_the_facts_given(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    for key, type_name in documents.MEMBER_FACT_TYPES.items():
        api.post(ENDPOINT, json=answer(created_definition(key, type_name)))
    set_answer = answer({"metafieldsSet": {"metafields": [], "userErrors": []}})
    api.post(ENDPOINT, json=set_answer)
    api.post(ENDPOINT, json=set_answer)

    shopify.set_member_facts(GID, Facts(points=120, rank="Gold"))
    shopify.set_member_facts(GID, Facts(points=130))
    shopify.set_member_facts(GID, Facts())  # nothing to write: nothing sent

    definitions = [sent(api, index) for index in range(3)]
    assert {body["query"] for body in definitions} == {documents.CREATE_METAFIELD_DEFINITION}
    assert [body["variables"]["definition"] for body in definitions] == [
        {"namespace": "$app:membersync", "key": key, "name": name, "type": type_name, "ownerType": "CUSTOMER"}
        for (key, type_name), name in zip(
            documents.MEMBER_FACT_TYPES.items(), ["Member number", "Points", "Member rank"], strict=True
        )
    ]
    first, second = sent(api, 3), sent(api, 4)
    assert first["query"] == documents.SET_METAFIELDS
    assert first["variables"]["metafields"] == [
        {
            "ownerId": GID,
            "namespace": "$app:membersync",
            "key": "points",
            "type": "number_integer",
            "value": "120",
        },
        {
            "ownerId": GID,
            "namespace": "$app:membersync",
            "key": "rank",
            "type": "single_line_text_field",
            "value": "Gold",
        },
    ]
    assert [entry["value"] for entry in second["variables"]["metafields"]] == ["130"]
    assert len(api.calls) == 5  # the definitions were not asked again


def test_a_definition_refused_for_another_reason_fails_and_is_tried_again_next_time(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    refused = {"field": ["definition", "type"], "message": "Type is not included.", "code": "INCLUSION"}
    api.post(
        ENDPOINT,
        json=answer({"metafieldDefinitionCreate": {"createdDefinition": None, "userErrors": [refused]}}),
    )
    with pytest.raises(PermanentError, match=r"definition\.type \[INCLUSION\]"):
        shopify.set_member_facts(GID, Facts(points=1))
    assert len(api.calls) == 1  # nothing was written untyped

    definitions_exist(api)
    api.post(ENDPOINT, json=answer({"metafieldsSet": {"metafields": [], "userErrors": []}}))
    shopify.set_member_facts(GID, Facts(points=1))
    assert sent(api, 4)["query"] == documents.SET_METAFIELDS


def test_set_metafields_sends_at_most_25_per_call(
    shopify: ShopifyClient, api: responses.RequestsMock
) -> None:
    definitions_exist(api)
    for _ in range(3):
        api.post(ENDPOINT, json=answer({"metafieldsSet": {"metafields": [], "userErrors": []}}))
    metafields = [
        {
            "ownerId": f"gid://shopify/Customer/{number}",
            "namespace": "$app:membersync",
            "key": "points",
            "type": "number_integer",
            "value": str(number),
        }
        for number in range(60)
    ]

    shopify.set_metafields(metafields)

    chunks = [sent(api, index)["variables"]["metafields"] for index in range(3, 6)]
    assert [len(chunk) for chunk in chunks] == [25, 25, 10]
    assert [entry["value"] for chunk in chunks for entry in chunk] == [str(n) for n in range(60)]


def test_the_connectors_fact_names_are_the_ownership_maps() -> None:
    from registrations import owned_fields

    assert documents.MEMBER_FACTS_NAMESPACE == owned_fields.SHOPIFY_APP_NAMESPACE
    assert dict(owned_fields.SHOPIFY_FACT_KEYS) == documents.MEMBER_FACT_KEYS
    assert dict(owned_fields.SHOPIFY_FACT_TYPES) == documents.MEMBER_FACT_TYPES
