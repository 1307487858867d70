"""HubSpotClient against `responses`: the exact requests it sends and the error of every failure shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from config.settings import Secret, Settings
from connectors.errors import ConflictError, PermanentError, ThrottledError, TransientError
from connectors.http import HttpClient
from connectors.hubspot import HubSpotClient, HubSpotContact

API = "https://api.hubspot.test"
CONTACTS = f"{API}/crm/objects/2026-09/contacts"  # HUBSPOT_API_VERSION's default
UPSERT = f"{CONTACTS}/batch/upsert"
SEARCH = f"{CONTACTS}/search"
EMAIL = "hanako@example.com"
LIMIT_HEADERS = {
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "42",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}


class RecordingLimiter:
    """A RateLimiter that lets everything through and remembers what it was told."""

    def __init__(self) -> None:
        self.observed: list[dict[str, float | None]] = []
        self.pauses: list[float] = []

    def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        self.observed.append({"available": available, "capacity": capacity, "per_second": per_second})

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def hubspot(limiter: RecordingLimiter) -> HubSpotClient:
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "test"}, hubspot_api_url=API, hubspot_access_token=Secret("pat-1")
    )
    return HubSpotClient.from_settings(settings, limiter=limiter)


def contact_json(contact_id: str = "101", email: str = EMAIL, **extra: Any) -> dict[str, Any]:
    return {
        "id": contact_id,
        "properties": {"email": email, "firstname": "Hanako", "hs_object_id": contact_id},
        "createdAt": "2025-01-01T00:00:00.000Z",
        "updatedAt": "2025-01-01T00:00:00.000Z",
        "archived": False,
        **extra,
    }


def error_json(status: int, category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": "c-1", "category": category, **extra}


def sent(mocked: responses.RequestsMock, index: int) -> requests.PreparedRequest:
    request: requests.PreparedRequest = mocked.calls[index].request
    return request


def json_body(request: requests.PreparedRequest) -> Any:
    assert request.body is not None
    return json.loads(request.body)


def query(request: requests.PreparedRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(str(request.url)).query)


# --- requests -----------------------------------------------------------------------------------------


def test_upsert_contact_sends_one_input_keyed_by_email(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(UPSERT, json={"status": "COMPLETE", "results": [contact_json(new=True)]})

    contact = hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako", "lastname": "Yamada"})

    assert contact == HubSpotContact(
        "101", EMAIL, {"email": EMAIL, "firstname": "Hanako", "hs_object_id": "101"}, created=True
    )
    request = sent(mocked, 0)
    assert request.method == "POST" and request.url == UPSERT
    assert request.headers["Authorization"] == "Bearer pat-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json_body(request) == {
        "inputs": [
            {
                "id": EMAIL,
                "idProperty": "email",
                "properties": {"firstname": "Hanako", "lastname": "Yamada", "email": EMAIL},
            }
        ]
    }


def test_upsert_of_an_existing_contact_is_not_created(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(UPSERT, json={"status": "COMPLETE", "results": [contact_json(new=False)]})
    assert hubspot.upsert_contact(email=EMAIL, properties={}).created is False


def test_upsert_contacts_goes_in_batches_of_one_hundred(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        inputs = json_body(request)["inputs"]
        results = [contact_json(str(i), item["id"], new=True) for i, item in enumerate(inputs)]
        return 200, {}, json.dumps({"status": "COMPLETE", "results": results})

    mocked.add_callback(responses.POST, UPSERT, callback=answer)
    contacts = [{"email": f"member{i}@example.com"} for i in range(250)]

    upserted = hubspot.upsert_contacts(contacts)

    assert [len(json_body(call.request)["inputs"]) for call in mocked.calls] == [100, 100, 50]
    assert len(upserted) == 250 and all(contact.created for contact in upserted)


def test_upsert_refuses_inputs_without_or_with_repeated_emails(hubspot: HubSpotClient) -> None:
    with pytest.raises(ValueError):
        hubspot.upsert_contacts([{"firstname": "Hanako"}])
    with pytest.raises(ValueError):
        hubspot.upsert_contacts([{"email": EMAIL}, {"email": "Hanako@Example.com"}])


def test_create_contact(mocked: responses.RequestsMock, hubspot: HubSpotClient) -> None:
    mocked.post(CONTACTS, status=201, json=contact_json())

    contact = hubspot.create_contact({"email": EMAIL, "firstname": "Hanako"})

    assert contact.id == "101" and contact.email == EMAIL and contact.created is False
    assert json_body(sent(mocked, 0)) == {"properties": {"email": EMAIL, "firstname": "Hanako"}}


def test_get_contact_and_a_missing_one(mocked: responses.RequestsMock, hubspot: HubSpotClient) -> None:
    mocked.get(f"{CONTACTS}/101", json=contact_json())
    mocked.get(f"{CONTACTS}/102", status=404, json=error_json(404, "OBJECT_NOT_FOUND", "resource not found"))

    contact = hubspot.get_contact("101")

    assert contact is not None and contact.properties["firstname"] == "Hanako"
    assert query(sent(mocked, 0)) == [("properties", "email,firstname,lastname,phone")]
    assert hubspot.get_contact("102") is None


def test_search_by_email_follows_paging(mocked: responses.RequestsMock, hubspot: HubSpotClient) -> None:
    mocked.post(SEARCH, json={"total": 2, "results": [contact_json("1")], "paging": {"next": {"after": "1"}}})
    mocked.post(SEARCH, json={"total": 2, "results": [contact_json("2")]})

    found = hubspot.search_contacts_by_email(EMAIL)

    assert [contact.id for contact in found] == ["1", "2"]
    first = {
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": EMAIL}]}],
        "properties": ["email", "firstname", "lastname", "phone"],
        "limit": 200,
    }
    assert sent(mocked, 0).method == "POST" and sent(mocked, 0).url == SEARCH
    assert json_body(sent(mocked, 0)) == first
    assert json_body(sent(mocked, 1)) == {**first, "after": "1"}


def test_iter_contacts_pages_through_the_list_endpoint(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.get(CONTACTS, json={"results": [contact_json("1")], "paging": {"next": {"after": "1"}}})
    mocked.get(CONTACTS, json={"results": [contact_json("2")]})

    assert [contact.id for contact in hubspot.iter_contacts(properties=("email",), page_size=1)] == ["1", "2"]
    assert query(sent(mocked, 0)) == [("limit", "1"), ("properties", "email"), ("archived", "false")]
    assert query(sent(mocked, 1)) == [
        ("limit", "1"),
        ("properties", "email"),
        ("archived", "false"),
        ("after", "1"),
    ]


# --- rate-limit headers -------------------------------------------------------------------------------


def test_every_answer_corrects_the_shared_limit(
    mocked: responses.RequestsMock, hubspot: HubSpotClient, limiter: RecordingLimiter
) -> None:
    mocked.get(f"{CONTACTS}/101", json=contact_json(), headers=LIMIT_HEADERS)
    mocked.get(
        f"{CONTACTS}/102",
        status=500,
        json=error_json(500, "INTERNAL_ERROR", "oops"),
        headers={**LIMIT_HEADERS, "X-HubSpot-RateLimit-Remaining": "41"},
    )
    mocked.get(f"{CONTACTS}/103", json=contact_json("103"))  # no headers: nothing to learn

    hubspot.get_contact("101")
    with pytest.raises(TransientError):
        hubspot.get_contact("102")
    hubspot.get_contact("103")

    # A plan of 100 per 10 s becomes a bucket that never exceeds 100 in any rolling window.
    bucket = {"capacity": 10.0, "per_second": pytest.approx(80 / 11)}
    assert limiter.observed == [{"available": 42.0, **bucket}, {"available": 41.0, **bucket}]


# --- failures -----------------------------------------------------------------------------------------


def test_a_409_is_a_conflict_naming_the_existing_contact(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(
        CONTACTS, status=409, json=error_json(409, "CONFLICT", "Contact already exists. Existing ID: 123")
    )
    with pytest.raises(ConflictError) as conflict:
        hubspot.create_contact({"email": EMAIL})
    assert conflict.value.existing_id == "123" and conflict.value.status == 409
    assert "123" in str(conflict.value) and "@" not in str(conflict.value)


def test_a_partial_batch_with_invalid_input_is_permanent(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(
        UPSERT,
        status=207,
        json={
            "status": "COMPLETE",
            "results": [contact_json("1", "taro@example.com", new=True)],
            "numErrors": 1,
            "errors": [
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"Property values were not valid: {EMAIL}",
                    "context": {"ids": [EMAIL]},
                }
            ],
        },
    )
    with pytest.raises(PermanentError) as refused:
        hubspot.upsert_contacts([{"email": "taro@example.com"}, {"email": EMAIL}])
    message = str(refused.value)
    assert "VALIDATION_ERROR" in message and "inputs [1]" in message and "@" not in message


def test_a_partial_batch_with_transient_categories_is_transient(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(
        UPSERT,
        status=207,
        json={
            "status": "COMPLETE",
            "results": [],
            "errors": [{"status": "error", "category": "RATE_LIMITS", "context": {"ids": [EMAIL]}}],
        },
    )
    with pytest.raises(TransientError):
        hubspot.upsert_contact(email=EMAIL, properties={})


def test_validation_errors_are_permanent_and_quote_no_personal_data(
    mocked: responses.RequestsMock, hubspot: HubSpotClient
) -> None:
    mocked.post(
        CONTACTS,
        status=400,
        json=error_json(400, "VALIDATION_ERROR", f"Property values were not valid: Email {EMAIL} is invalid"),
    )
    with pytest.raises(PermanentError) as refused:
        hubspot.create_contact({"email": EMAIL})
    assert type(refused.value) is PermanentError and refused.value.status == 400
    assert "VALIDATION_ERROR" in str(refused.value) and "@" not in str(refused.value)


def test_a_401_is_permanent(mocked: responses.RequestsMock, hubspot: HubSpotClient) -> None:
    mocked.post(UPSERT, status=401, json=error_json(401, "INVALID_AUTHENTICATION", "Authentication failed"))
    with pytest.raises(PermanentError) as refused:
        hubspot.upsert_contact(email=EMAIL, properties={})
    assert refused.value.status == 401 and "INVALID_AUTHENTICATION" in str(refused.value)


@pytest.mark.parametrize(
    ("policy", "retry_after_header", "retry_after", "pauses"),
    [
        ("TEN_SECONDLY_ROLLING", None, 1.0, [1.0]),
        ("TEN_SECONDLY_ROLLING", "3", 3.0, [3.0]),
        ("DAILY", None, 3600.0, [3600.0]),
        ("SECONDLY", None, 1.0, []),  # the search endpoint's own limit: other calls go on
    ],
)
def test_429_is_throttled_by_policy(
    mocked: responses.RequestsMock,
    hubspot: HubSpotClient,
    limiter: RecordingLimiter,
    policy: str,
    retry_after_header: str | None,
    retry_after: float,
    pauses: list[float],
) -> None:
    headers = {"Retry-After": retry_after_header} if retry_after_header else {}
    body = error_json(
        429, "RATE_LIMITS", "You have reached your limit.", errorType="RATE_LIMIT", policyName=policy
    )
    mocked.post(SEARCH, status=429, json=body, headers=headers)
    with pytest.raises(ThrottledError) as throttled:
        hubspot.search_contacts_by_email(EMAIL)
    assert throttled.value.retry_after == retry_after and limiter.pauses == pauses
    assert policy in str(throttled.value)


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 502, "json": {"status": "error", "category": "INTERNAL_ERROR", "message": "x"}},
        {"status": 503, "body": "<html>unavailable</html>"},
        {"body": requests.ConnectTimeout("connect timed out")},
        {"body": requests.ReadTimeout("read timed out")},
        {"body": requests.ConnectionError("connection reset")},
    ],
)
def test_server_errors_and_timeouts_are_transient(
    mocked: responses.RequestsMock, hubspot: HubSpotClient, failure: dict[str, Any]
) -> None:
    mocked.post(UPSERT, **failure)
    with pytest.raises(TransientError) as failed:
        hubspot.upsert_contact(email=EMAIL, properties={})
    assert not isinstance(failed.value, ThrottledError)


def test_without_a_token_nothing_is_sent(mocked: responses.RequestsMock) -> None:
    hubspot = HubSpotClient.from_settings(Settings.from_env(environ={}))  # production: no token
    with pytest.raises(PermanentError) as refused:
        hubspot.upsert_contact(email=EMAIL, properties={})
    assert "HUBSPOT_ACCESS_TOKEN" in str(refused.value)
    assert len(mocked.calls) == 0


def test_direct_construction_uses_the_given_http_client(mocked: responses.RequestsMock) -> None:
    http = HttpClient(system="hubspot", base_url=API, headers={"Authorization": "Bearer pat-2"})
    mocked.get(f"{CONTACTS}/5", json=contact_json("5"))
    assert HubSpotClient(http).get_contact("5") is not None
    assert sent(mocked, 0).headers["Authorization"] == "Bearer pat-2"
