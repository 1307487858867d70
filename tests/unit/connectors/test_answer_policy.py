"""What each vendor's AnswerPolicy makes of an answer, through HttpClient against `responses`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from connectors.errors import (
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from connectors.http import AnswerPolicy, HttpClient, credentials_refusal, json_body
from connectors.hubspot.answers import HubSpotPolicy
from connectors.shopify import EmailTaken, PhoneTaken, documents
from connectors.shopify.answers import ShopifyPolicy
from connectors.smaregi.answers import SmaregiPolicy
from connectors.smaregi.tokens import TokenPolicy

BASE = "https://vendor.test"
URL = f"{BASE}/things"
EMAIL = "hanako@example.com"


class RecordingLimiter:
    """A RateLimiter that lets everything through and remembers what it was told."""

    def __init__(self) -> None:
        self.acquired: list[float] = []
        self.observed: list[tuple[float, float | None, float | None]] = []
        self.paused: list[float] = []

    def acquire(self, cost: float = 1.0) -> None:
        self.acquired.append(cost)

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        self.observed.append((available, capacity, per_second))

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


def client(policy: AnswerPolicy, limiter: RecordingLimiter, system: str = "vendor") -> HttpClient:
    return HttpClient(system=system, base_url=BASE, limiter=limiter, policy=policy)


def failure(http: HttpClient, method: str = "POST", **kwargs: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as raised:
        http.request(method, "/things", **kwargs)
    return raised.value


# --- the default policy ---------------------------------------------------------------------------

DEFAULT_TABLE = [
    (400, PermanentError),
    (401, PermanentError),
    (403, PermanentError),
    (404, NotFoundError),
    (408, TransientError),
    (409, ConflictError),
    (422, PermanentError),
    (425, TransientError),
    (429, ThrottledError),
    (500, TransientError),
    (502, TransientError),
    (503, TransientError),
]


@pytest.mark.parametrize(("status", "error_class"), DEFAULT_TABLE)
def test_default_status_table(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, error_class: type[ConnectorError]
) -> None:
    mocked.post(URL, status=status, json={"detail": "what went wrong"})
    error = failure(client(AnswerPolicy(), limiter))
    assert type(error) is error_class and error.status == status and error.system == "vendor"
    assert str(error) == f"vendor POST /things: HTTP {status}: what went wrong"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"type": "about:blank", "title": "Bad Request", "detail": "limit is too big"}, "limit is too big"),
        ({"title": "Bad Request"}, "Bad Request"),
        ({"message": "no such thing", "category": "X"}, "no such thing"),
        ({"errors": ["first"]}, "['first']"),
        ("plain text", "plain text"),
    ],
)
def test_default_detail_reads_the_vendors_explanation(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, body: Any, detail: str
) -> None:
    mocked.post(URL, status=400, **({"json": body} if isinstance(body, dict) else {"body": body}))
    assert str(failure(client(AnswerPolicy(), limiter))).endswith(f": {detail}")


@pytest.mark.parametrize(
    ("header", "retry_after"), [("3", 3.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None)]
)
def test_retry_after_is_read_and_pauses_the_shared_limit(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, header: str | None, retry_after: float | None
) -> None:
    mocked.post(URL, status=429, headers={"Retry-After": header} if header else {})
    error = failure(client(AnswerPolicy(), limiter))
    assert isinstance(error, ThrottledError) and error.retry_after == retry_after
    assert limiter.paused == ([retry_after] if retry_after else [])


def test_a_call_may_name_its_own_success_statuses(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    mocked.get(URL, status=404)
    mocked.get(URL, status=201)
    http = client(AnswerPolicy(), limiter)
    assert http.request("GET", "/things", ok=(200, 404)).status_code == 404
    with pytest.raises(PermanentError):
        http.request("GET", "/things", ok=(200,))


def test_transport_failures_are_transient(mocked: responses.RequestsMock, limiter: RecordingLimiter) -> None:
    mocked.post(URL, body=requests.ReadTimeout("slow"))
    error = failure(client(AnswerPolicy(), limiter))
    assert type(error) is TransientError and "timed out" in str(error)


def test_a_refusal_sends_nothing_and_spends_no_budget(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    http = HttpClient(system="vendor", base_url=BASE, limiter=limiter, refusal="VENDOR_TOKEN is not set")
    error = failure(http)
    assert type(error) is PermanentError and str(error) == "vendor POST /things: VENDOR_TOKEN is not set"
    assert len(mocked.calls) == 0 and limiter.acquired == []


def test_credentials_refusal_names_what_is_missing() -> None:
    assert credentials_refusal("Vendor", {"A": "x", "B": "y"}) is None
    assert credentials_refusal("Vendor", {"A": "", "B": "y"}) == "A is not set; refusing to call Vendor"
    both = credentials_refusal("Vendor", {"A": "", "B": None, "C": ""})
    assert both == "A, B and C are not set; refusing to call Vendor"


def test_using_swaps_the_policy_but_shares_the_rest(limiter: RecordingLimiter) -> None:
    plain = HttpClient(
        system="hubspot", base_url=BASE, limiter=limiter, headers={"Authorization": "Bearer t"}
    )
    hubspot = plain.using(HubSpotPolicy)
    assert isinstance(hubspot.policy, HubSpotPolicy) and not isinstance(plain.policy, HubSpotPolicy)
    assert hubspot.session is plain.session and hubspot.limiter is limiter
    assert hubspot.using(HubSpotPolicy) is hubspot
    assert hubspot.using(HubSpotPolicy, refusal="no").refusal == "no" and hubspot.refusal is None


# --- json_body --------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "[]", "{}", '"text"', '{"other": 1}'])
def test_json_body_refuses_what_is_not_the_expected_object(mocked: responses.RequestsMock, body: str) -> None:
    mocked.get(URL, body=body, content_type="application/json")
    response = requests.get(URL, timeout=1)
    with pytest.raises(TransientError) as raised:
        json_body(response, "vendor get thing", required=("id",))
    assert raised.value.system == "vendor" and str(raised.value).startswith("vendor get thing: the answer ")


def test_json_body_reads_objects_and_arrays(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json={"id": 1})
    mocked.get(URL, json=[{"id": 1}])
    mocked.get(URL, json=[1, 2])
    assert json_body(requests.get(URL, timeout=1), "vendor get", required=("id",)) == {"id": 1}
    assert json_body(requests.get(URL, timeout=1), "vendor list", array=True) == [{"id": 1}]
    with pytest.raises(TransientError, match="not a JSON array of objects"):
        json_body(requests.get(URL, timeout=1), "vendor list", array=True)


# --- HubSpot ----------------------------------------------------------------------------------------

LIMIT_HEADERS = {
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "42",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}


@pytest.mark.parametrize(("status", "error_class"), DEFAULT_TABLE)
def test_hubspot_status_table_names_categories_only(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, error_class: type[ConnectorError]
) -> None:
    body = {"status": "error", "message": f"Contact {EMAIL} is odd", "category": "SOME_CATEGORY"}
    mocked.post(URL, status=status, json=body)
    error = failure(client(HubSpotPolicy(), limiter, "hubspot"))
    assert type(error) is error_class and "@" not in str(error)


def test_hubspot_headers_are_observed_on_successes_and_failures(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    mocked.get(URL, json={"results": []}, headers=LIMIT_HEADERS)
    mocked.get(URL, status=503, headers={**LIMIT_HEADERS, "X-HubSpot-RateLimit-Remaining": "0"})
    mocked.get(URL, json={}, headers={"X-HubSpot-RateLimit-Max": "x"})  # unreadable: nothing learnt
    http = client(HubSpotPolicy(), limiter, "hubspot")
    http.request("GET", "/things")
    with pytest.raises(TransientError):
        http.request("GET", "/things")
    http.request("GET", "/things")
    assert [available for available, _, _ in limiter.observed] == [42.0, 0.0]
    assert limiter.observed[0][1:] == (10.0, pytest.approx(80 / 11))


@pytest.mark.parametrize(
    ("policy", "header", "retry_after", "paused"),
    [("DAILY", None, 3600.0, [3600.0]), ("SECONDLY", None, 1.0, []), ("DAILY", "7", 7.0, [7.0])],
)
def test_hubspot_429_waits_by_its_policy(
    mocked: responses.RequestsMock,
    limiter: RecordingLimiter,
    policy: str,
    header: str | None,
    retry_after: float,
    paused: list[float],
) -> None:
    body = {"status": "error", "category": "RATE_LIMITS", "policyName": policy}
    mocked.post(URL, status=429, json=body, headers={"Retry-After": header} if header else {})
    error = failure(client(HubSpotPolicy(), limiter, "hubspot"))
    assert isinstance(error, ThrottledError) and error.retry_after == retry_after
    assert limiter.paused == paused and str(error).endswith(f"HTTP 429: {policy}")


def test_hubspot_409_names_the_existing_contact(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    body = {"status": "error", "category": "CONFLICT", "message": "Contact already exists. Existing ID: 123"}
    mocked.post(URL, status=409, json=body)
    error = failure(client(HubSpotPolicy(), limiter, "hubspot"))
    assert isinstance(error, ConflictError) and error.existing_id == "123"
    assert str(error) == "hubspot POST /things: HTTP 409: CONFLICT (existing id 123)"


# --- Smaregi ----------------------------------------------------------------------------------------

CODE_TAKEN = {
    "title": "Bad Request",
    "detail": "Invalid parameters: customerCode.",
    "invalid-params": [{"name": "customerCode", "reason": "4346996870082686 is already used"}],
}


@pytest.mark.parametrize(("status", "error_class"), DEFAULT_TABLE)
def test_smaregi_status_table_quotes_titles_and_field_names_only(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, error_class: type[ConnectorError]
) -> None:
    body = {"title": "Trouble", "detail": f"{EMAIL} is odd", "invalid-params": [{"name": "mailAddress"}]}
    mocked.get(URL, status=status, json=body)
    error = failure(client(SmaregiPolicy(), limiter, "smaregi"), "GET")
    assert type(error) is error_class
    assert str(error) == f"smaregi GET /things: HTTP {status}: Trouble (invalid: mailAddress)"


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [(400, CODE_TAKEN, PermanentError), (422, CODE_TAKEN, PermanentError), (409, {}, ConflictError)],
)
def test_smaregi_refusals_are_classified_by_status_never_by_wording(
    mocked: responses.RequestsMock,
    limiter: RecordingLimiter,
    status: int,
    body: dict[str, Any],
    error_class: type[ConnectorError],
) -> None:
    # Whatever a refusal says about the customerCode, no decision rests on it: the step looks the
    # code up. The error is the plain class of its status.
    mocked.post(URL, status=status, json=body)
    error = failure(client(SmaregiPolicy(), limiter, "smaregi"), json={"customerCode": "4346996870082686"})
    assert type(error) is error_class
    assert error.status == status


@pytest.mark.parametrize(
    ("status", "error_class"), [(400, PermanentError), (401, PermanentError), (500, TransientError)]
)
def test_smaregi_token_refusals_name_the_settings(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, error_class: type[ConnectorError]
) -> None:
    mocked.post(
        URL, status=status, json={"error": "invalid_client", "error_description": "secret-1 is wrong"}
    )
    error = failure(client(TokenPolicy(), limiter, "smaregi"))
    assert type(error) is error_class
    if error_class is PermanentError:
        assert "invalid_client" in str(error) and "SMAREGI_CLIENT_SECRET" in str(error)
        assert "secret-1" not in str(error)


# --- Shopify ----------------------------------------------------------------------------------------

THROTTLED = {"message": "Throttled", "extensions": {"code": "THROTTLED"}}


def throttle_status(available: float) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": 17,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": available,
                "restoreRate": 100.0,
            },
        }
    }


def graphql(document: str = documents.GET_CUSTOMER) -> dict[str, Any]:
    return {"query": document, "variables": {}}


@pytest.mark.parametrize(
    ("status", "error_class"),
    [*((status, error) for status, error in DEFAULT_TABLE if status != 404), (404, PermanentError)],
)
def test_shopify_status_table(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, error_class: type[ConnectorError]
) -> None:
    mocked.post(URL, status=status, json={"errors": "Something"})
    error = failure(client(ShopifyPolicy(), limiter, "shopify"), json=graphql())
    assert type(error) is error_class and str(error).startswith("shopify GetCustomer: HTTP ")
    if status == 404:  # the endpoint, not a customer, is missing
        assert "SHOPIFY_API_VERSION" in str(error)


@pytest.mark.parametrize(("status", "retry_after"), [(200, (17 - 5) / 100.0), (429, (17 - 5) / 100.0)])
def test_shopify_throttled_in_a_200_or_a_429_waits_by_the_throttle_status(
    mocked: responses.RequestsMock, limiter: RecordingLimiter, status: int, retry_after: float
) -> None:
    mocked.post(URL, status=status, json={"errors": [THROTTLED], "extensions": throttle_status(5)})
    error = failure(client(ShopifyPolicy(), limiter, "shopify"), json=graphql(), cost=17)
    assert isinstance(error, ThrottledError) and error.status == status
    assert error.retry_after == pytest.approx(retry_after)
    assert limiter.observed == [(5.0, 2000.0, 100.0)] and limiter.paused == []


def test_shopify_429_retry_after_wins_and_pauses(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    body = {"errors": [THROTTLED], "extensions": throttle_status(0)}
    mocked.post(URL, status=429, json=body, headers={"Retry-After": "4"})
    error = failure(client(ShopifyPolicy(), limiter, "shopify"), json=graphql())
    assert isinstance(error, ThrottledError) and error.retry_after == 4.0 and limiter.paused == [4.0]


def test_shopify_every_clean_answer_reports_the_bucket(
    mocked: responses.RequestsMock, limiter: RecordingLimiter
) -> None:
    mocked.post(URL, json={"data": {"customer": None}, "extensions": throttle_status(1990)})
    client(ShopifyPolicy(), limiter, "shopify").request("POST", "/things", json=graphql())
    assert limiter.observed == [(1990.0, 2000.0, 100.0)]


@pytest.mark.parametrize(
    ("user_errors", "error_class", "where"),
    [
        ([{"field": ["email"], "message": "Email has already been taken"}], EmailTaken, "customerCreate"),
        ([{"field": ["phone"], "message": "Phone has already been taken"}], PhoneTaken, "customerCreate"),
        ([{"field": ["id"], "message": "Customer does not exist"}], NotFoundError, "customerCreate"),
        ([{"field": ["metafields", "0", "value"], "code": "INVALID"}], PermanentError, "metafieldsSet"),
    ],
)
def test_shopify_user_errors_in_a_200(
    mocked: responses.RequestsMock,
    limiter: RecordingLimiter,
    user_errors: list[dict[str, Any]],
    error_class: type[ConnectorError],
    where: str,
) -> None:
    mocked.post(URL, json={"data": {where: {"userErrors": user_errors}}})
    error = failure(client(ShopifyPolicy(), limiter, "shopify"), json=graphql(documents.CREATE_CUSTOMER))
    assert type(error) is error_class and str(error).startswith(f"shopify {where}: ")


@pytest.mark.parametrize(
    ("body", "error_class"),
    [
        ({"errors": [{"message": "boom", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}, TransientError),
        (
            {"errors": [{"message": f'bad "{EMAIL}"', "extensions": {"code": "INVALID_VARIABLE"}}]},
            PermanentError,
        ),
        ({"extensions": {}}, TransientError),
        ({"data": None}, TransientError),
    ],
)
def test_shopify_graphql_failures_in_a_200(
    mocked: responses.RequestsMock,
    limiter: RecordingLimiter,
    body: dict[str, Any],
    error_class: type[ConnectorError],
) -> None:
    mocked.post(URL, json=body)
    error = failure(client(ShopifyPolicy(), limiter, "shopify"), json=graphql())
    assert type(error) is error_class and error.status == 200 and EMAIL not in str(error)
