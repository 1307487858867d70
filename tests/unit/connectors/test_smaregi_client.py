"""SmaregiClient against `responses`: the exact requests it sends and the error of every failure shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from config.settings import Secret, Settings
from connectors.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from connectors.http import HttpClient
from connectors.smaregi import SmaregiClient, SmaregiMember, member_code
from connectors.smaregi.points import PointBalance

API = "https://api.smaregi.test"
ID = "https://id.smaregi.test"
CONTRACT = "c123"
TOKEN_URL = f"{ID}/app/{CONTRACT}/token"
CUSTOMERS = f"{API}/{CONTRACT}/pos/customers"
SCOPES = "pos.customers:read pos.customers:write"
EMAIL = "hanako@example.com"
KEY = b"test-member-code-key"


class RecordingLimiter:
    """A RateLimiter that lets everything through and remembers what it was told."""

    def __init__(self) -> None:
        self.acquired = 0.0
        self.pauses: list[float] = []

    def acquire(self, cost: float = 1.0) -> None:
        self.acquired += cost

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        return None

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def smaregi(clock: Clock, limiter: RecordingLimiter) -> SmaregiClient:
    return SmaregiClient(
        HttpClient(system="smaregi", base_url=API, limiter=limiter),
        HttpClient(system="smaregi", base_url=ID),
        contract_id=CONTRACT,
        client_id="client-1",
        client_secret="secret-1",
        scopes=SCOPES,
        clock=clock,
    )


def token_answer(mocked: responses.RequestsMock, token: str = "tok-1", expires_in: int = 3600) -> None:
    mocked.post(TOKEN_URL, json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


def member_json(
    customer_id: str = "7", code: str = "4346996870082686", email: str | None = EMAIL
) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "customerCode": code,
        "lastName": "山田",
        "firstName": "花子",
        "mailAddress": email,
        "point": "0",
    }


def sent(mocked: responses.RequestsMock, index: int) -> requests.PreparedRequest:
    request: requests.PreparedRequest = mocked.calls[index].request
    return request


def query(request: requests.PreparedRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(str(request.url)).query)


def url_without_query(request: requests.PreparedRequest) -> str:
    parts = urlsplit(str(request.url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def json_body(request: requests.PreparedRequest) -> Any:
    assert request.body is not None
    return json.loads(request.body)


# --- the token --------------------------------------------------------------------------------------


def test_token_request_is_the_client_credentials_grant(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.get(CUSTOMERS, json=[])

    smaregi.find_member_by_code("123")

    grant = sent(mocked, 0)
    assert grant.method == "POST" and grant.url == TOKEN_URL
    assert grant.headers["Authorization"] == "Basic " + base64.b64encode(b"client-1:secret-1").decode()
    assert grant.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(str(grant.body))) == {"grant_type": "client_credentials", "scope": SCOPES}
    assert sent(mocked, 1).headers["Authorization"] == "Bearer tok-1"


def test_token_is_cached_until_a_minute_before_it_expires(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, clock: Clock
) -> None:
    token_answer(mocked, "tok-1")
    mocked.get(CUSTOMERS, json=[])
    for _ in range(3):
        smaregi.find_member_by_code("123")
    clock.now += 3600 - 60 - 1
    smaregi.find_member_by_code("123")
    assert [call.request.url for call in mocked.calls].count(TOKEN_URL) == 1

    token_answer(mocked, "tok-2")
    clock.now += 2  # inside the last minute: replaced before it can die on the way
    smaregi.find_member_by_code("123")
    assert [call.request.url for call in mocked.calls].count(TOKEN_URL) == 2
    assert sent(mocked, len(mocked.calls) - 1).headers["Authorization"] == "Bearer tok-2"


def test_short_lived_token_is_refreshed_a_tenth_of_its_life_early(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, clock: Clock
) -> None:
    token_answer(mocked, "tok-1", expires_in=100)
    mocked.get(CUSTOMERS, json=[])
    smaregi.find_member_by_code("123")
    clock.now += 89
    smaregi.find_member_by_code("123")
    token_answer(mocked, "tok-2", expires_in=100)
    clock.now += 2
    smaregi.find_member_by_code("123")
    assert [call.request.url for call in mocked.calls].count(TOKEN_URL) == 2


def test_a_401_refreshes_the_token_once_and_retries_once(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked, "tok-old")
    mocked.get(CUSTOMERS, status=401, json={"title": "Unauthorized", "status": 401})
    token_answer(mocked, "tok-new")
    mocked.get(CUSTOMERS, json=[member_json()])

    member = smaregi.find_member_by_code("4346996870082686")

    assert member is not None and member.customer_id == "7"
    assert [str(call.request.url).split("?")[0] for call in mocked.calls] == [
        TOKEN_URL,
        CUSTOMERS,
        TOKEN_URL,
        CUSTOMERS,
    ]
    assert sent(mocked, 3).headers["Authorization"] == "Bearer tok-new"


def test_a_second_401_is_a_permanent_error(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.get(CUSTOMERS, status=401, json={"title": "Unauthorized", "status": 401})
    with pytest.raises(PermanentError) as refused:
        smaregi.find_member_by_code("123")
    assert refused.value.status == 401 and type(refused.value) is PermanentError
    assert len(mocked.calls) == 4  # token, call, token, call: no third try


@pytest.mark.parametrize(
    ("status", "oauth_error"), [(401, "invalid_client"), (400, "invalid_scope"), (404, "invalid_request")]
)
def test_a_refused_token_request_is_permanent_and_names_the_settings(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, status: int, oauth_error: str
) -> None:
    mocked.post(TOKEN_URL, status=status, json={"error": oauth_error, "error_description": "no"})
    with pytest.raises(PermanentError) as refused:
        smaregi.find_member_by_code("123")
    assert type(refused.value) is PermanentError and refused.value.status == status
    message = str(refused.value)
    assert oauth_error in message and "SMAREGI_CLIENT_ID" in message and "SMAREGI_CLIENT_SECRET" in message
    assert "secret-1" not in message
    assert len(mocked.calls) == 1


def test_a_failing_token_endpoint_is_transient(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    mocked.post(TOKEN_URL, status=503, body="maintenance")
    with pytest.raises(TransientError):
        smaregi.find_member_by_code("123")
    mocked.post(TOKEN_URL, json={"token_type": "Bearer"})  # a 200 without a token
    with pytest.raises(TransientError):
        smaregi.find_member_by_code("123")


def test_missing_credentials_refuse_every_call(mocked: responses.RequestsMock) -> None:
    settings = Settings.from_env(environ={})  # production defaults: no Smaregi credentials
    smaregi = SmaregiClient.from_settings(settings)
    with pytest.raises(PermanentError) as refused:
        smaregi.list_members()
    assert "SMAREGI_CLIENT_ID" in str(refused.value) and "SMAREGI_CLIENT_SECRET" in str(refused.value)
    assert len(mocked.calls) == 0


def test_from_settings_uses_the_configured_hosts_and_credentials(mocked: responses.RequestsMock) -> None:
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "test"},
        smaregi_api_url=API,
        smaregi_id_url=ID,
        smaregi_contract_id=CONTRACT,
        smaregi_client_id="client-9",
        smaregi_client_secret=Secret("secret-9"),
    )
    token_answer(mocked)
    mocked.get(CUSTOMERS, json=[])
    SmaregiClient.from_settings(settings).find_member_by_code("1")
    expected = "Basic " + base64.b64encode(b"client-9:secret-9").decode()
    assert sent(mocked, 0).headers["Authorization"] == expected
    assert url_without_query(sent(mocked, 1)) == CUSTOMERS


# --- finding members ----------------------------------------------------------------------------------


def test_there_is_no_email_search_and_no_email_ever_goes_into_a_url() -> None:
    # Smaregi documents no e-mail filter; the directory matches people instead.
    assert not hasattr(SmaregiClient, "find_members_by_email")


def test_list_members_sends_only_documented_parameters(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    record = {**member_json("1", "A1", "Hanako@Example.com"), "updDateTime": "2026-11-29T10:00:05+09:00"}
    mocked.get(CUSTOMERS, json=[record], headers={"Link": f'<{CUSTOMERS}?page=2>; rel="next"'})

    since = datetime(2026, 11, 29, 1, 0, 0, 123456, tzinfo=UTC)
    found = smaregi.list_members(page=3, limit=500, updated_from=since, sort="updDateTime:desc")

    assert [member.customer_id for member in found] == ["1"]
    assert found[0].updated_at == datetime(2026, 11, 29, 1, 0, 5, tzinfo=UTC)
    request = sent(mocked, 1)
    assert request.method == "GET" and url_without_query(request) == CUSTOMERS
    # Japan time with its offset, to the second (the '+' encoded, never read as a space).
    assert query(request) == [
        ("page", "3"),
        ("limit", "500"),
        ("upd_date_time-from", "2026-11-29T10:00:00+09:00"),
        ("sort", "updDateTime:desc"),
    ]
    assert "%2B09%3A00" in str(request.url)
    assert len(mocked.calls) == 2  # a Link header is not followed: Smaregi documents none
    with pytest.raises(ValueError):
        smaregi.list_members(limit=501)  # sources disagree on 1000 or 500: never above 500


def test_find_by_code(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.get(CUSTOMERS, json=[member_json(code="4346996870082686")])
    mocked.get(CUSTOMERS, json=[])

    member = smaregi.find_member_by_code("4346996870082686")
    assert member == SmaregiMember("7", "4346996870082686", EMAIL, "山田", "花子", "0", points=0)
    assert query(sent(mocked, 1)) == [("customer_code", "4346996870082686")]
    assert smaregi.find_member_by_code("0000000000000000") is None


def test_get_member_and_a_missing_one(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.get(f"{CUSTOMERS}/7", json=member_json())
    mocked.get(
        f"{CUSTOMERS}/8", status=404, json={"title": "Not Found", "detail": "Customer 8", "status": 404}
    )

    member = smaregi.get_member("7")
    assert member is not None and member.customer_code == "4346996870082686"
    assert smaregi.get_member("8") is None


def test_iter_members_counts_pages_until_a_short_one(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.get(CUSTOMERS, json=[member_json("1"), member_json("2", "B")])
    mocked.get(CUSTOMERS, json=[member_json("3", "C")])

    assert [member.customer_id for member in smaregi.iter_members(page_size=2)] == ["1", "2", "3"]
    assert query(sent(mocked, 1)) == [("page", "1"), ("limit", "2")]
    assert query(sent(mocked, 2)) == [("page", "2"), ("limit", "2")]


def test_reads_and_writes_take_from_their_own_buckets(mocked: responses.RequestsMock, clock: Clock) -> None:
    reads, writes = RecordingLimiter(), RecordingLimiter()
    smaregi = SmaregiClient(
        HttpClient(system="smaregi", base_url=API, limiter=reads),
        HttpClient(system="smaregi", base_url=ID),
        contract_id=CONTRACT,
        client_id="client-1",
        client_secret="secret-1",
        scopes=SCOPES,
        clock=clock,
        write_limiter=writes,
    )
    token_answer(mocked)
    mocked.get(CUSTOMERS, json=[])
    mocked.post(CUSTOMERS, json=member_json())
    mocked.patch(f"{CUSTOMERS}/7", status=429, json={"status": 429}, headers={"Retry-After": "3"})
    smaregi.find_member_by_code("1")
    smaregi.create_member(customer_code="1", last_name="山田", first_name="花子", mail_address=EMAIL)
    with pytest.raises(ThrottledError):
        smaregi.update_member("7", phone_number="0312345678")
    assert (reads.acquired, writes.acquired) == (1, 2)
    assert writes.pauses == [3.0] and reads.pauses == []  # a write's 429 pauses the write bucket


# --- writing members ----------------------------------------------------------------------------------


def test_create_member_sends_every_value_as_a_string(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.post(CUSTOMERS, json=member_json())

    member = smaregi.create_member(
        customer_code="4346996870082686",
        last_name="山田",
        first_name="花子",
        mail_address=EMAIL,
        last_kana="ヤマダ",
        first_kana="ハナコ",
        phone_number="09012345678",
        post_code="1500001",
        sex="2",
        birth_date="1990-04-01",
        mail_receive_flag=True,
    )

    assert member.customer_id == "7"
    request = sent(mocked, 1)
    assert request.method == "POST" and request.url == CUSTOMERS
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json_body(request) == {
        "customerCode": "4346996870082686",
        "lastName": "山田",
        "firstName": "花子",
        "mailAddress": EMAIL,
        "lastKana": "ヤマダ",
        "firstKana": "ハナコ",
        "phoneNumber": "09012345678",
        "postCode": "1500001",
        "sex": "2",
        "birthDate": "1990-04-01",
        "mailReceiveFlag": "1",
    }


@pytest.mark.parametrize(
    ("status", "error_class"), [(400, PermanentError), (409, ConflictError), (422, PermanentError)]
)
def test_a_refused_create_is_an_error_of_its_status_whatever_it_says(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, status: int, error_class: type[Exception]
) -> None:
    token_answer(mocked)
    mocked.post(
        CUSTOMERS,
        status=status,
        json={
            "type": "about:blank",
            "title": "Bad Request",
            "detail": f"{EMAIL}: customerCode 4346996870082686 is already used",
            "status": status,
            "invalid-params": [{"name": "customerCode", "reason": "4346996870082686 is already used"}],
        },
    )
    with pytest.raises(PermanentError) as refused:
        smaregi.create_member(
            customer_code="4346996870082686", last_name="山田", first_name="花子", mail_address=EMAIL
        )
    assert type(refused.value) is error_class and refused.value.status == status
    assert EMAIL not in str(refused.value)


def test_other_validation_problems_are_permanent_and_quote_no_personal_data(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.post(
        CUSTOMERS,
        status=400,
        json={
            "type": "about:blank",
            "title": "Bad Request",
            "detail": f"{EMAIL} is not a valid mail address",
            "status": 400,
            "invalid-params": [{"name": "mailAddress", "reason": f"{EMAIL} is not valid"}],
        },
    )
    with pytest.raises(PermanentError) as refused:
        smaregi.create_member(customer_code="1", last_name="山田", first_name="花子", mail_address=EMAIL)
    assert type(refused.value) is PermanentError and refused.value.status == 400
    assert "mailAddress" in str(refused.value) and "@" not in str(refused.value)


def test_update_member_patches_the_given_fields(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.patch(f"{CUSTOMERS}/7", json=member_json())

    smaregi.update_member("7", phone_number="0312345678", mail_receive_flag=False, address=None)

    request = sent(mocked, 1)
    assert request.method == "PATCH" and request.url == f"{CUSTOMERS}/7"
    assert json_body(request) == {"phoneNumber": "0312345678", "mailReceiveFlag": "0"}
    with pytest.raises(TypeError):
        smaregi.update_member("7", nickname="x")


@pytest.mark.parametrize(("receive", "flag"), [(True, "1"), (False, "0")])
def test_set_mail_receive_flag_patches_only_the_flag(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, receive: bool, flag: str
) -> None:
    token_answer(mocked)
    mocked.patch(f"{CUSTOMERS}/7", json={**member_json(), "mailReceiveFlag": flag})

    member = smaregi.set_mail_receive_flag("7", receive)

    request = sent(mocked, 1)
    assert request.method == "PATCH" and request.url == f"{CUSTOMERS}/7"
    assert json_body(request) == {"mailReceiveFlag": flag}
    assert member.mail_receive_flag is receive


def test_set_mail_receive_flag_of_an_unknown_member_is_not_found(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.patch(f"{CUSTOMERS}/404", status=404, json={"title": "Not Found", "status": 404})

    with pytest.raises(NotFoundError):
        smaregi.set_mail_receive_flag("404", True)


def test_add_points_posts_strings_and_reads_the_transactions_it_made(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.post(
        f"{CUSTOMERS}/7/point/add",
        json={
            "customerId": "7",
            "point": "125",
            "mile": None,
            "pointExpireDate": "2027-12-31",
            "updDateTime": "2026-12-06T10:00:00+09:00",
            "transactionHeadIds": ["881", "882"],
        },
    )

    result = smaregi.add_points("7", -5, expire_date=date(2027, 12, 31))

    assert (sent(mocked, 1).method, sent(mocked, 1).url) == ("POST", f"{CUSTOMERS}/7/point/add")
    assert json_body(sent(mocked, 1)) == {"point": "-5", "pointExpireDate": "2027-12-31"}
    assert result.customer_id == "7" and result.point == 125
    assert result.transaction_head_ids == ("881", "882")
    assert result.updated_at == datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    assert not hasattr(smaregi, "set_points")  # no single absolute set: not in Smaregi's pages


def test_a_refused_subtraction_is_permanent(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.post(f"{CUSTOMERS}/7/point/add", status=400, json={"title": "Bad Request", "status": 400})
    with pytest.raises(PermanentError):
        smaregi.add_points("7", -500)


def transaction_json(
    head_id: str, customer_id: str = "7", division: str = "6", point: str = "100"
) -> dict[str, Any]:
    return {
        "transactionHeadId": head_id,
        "transactionDateTime": "2026-12-06T10:00:05+09:00",
        "transactionHeadDivision": division,
        "customerId": customer_id,
        "point": point,
    }


def test_point_transactions_pages_the_documented_period_and_keeps_the_members_own(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    full_page = [transaction_json(str(n), customer_id="8" if n % 2 else "7") for n in range(1, 3)]
    mocked.get(f"{API}/{CONTRACT}/pos/transactions", json=full_page)
    mocked.get(f"{API}/{CONTRACT}/pos/transactions", json=[transaction_json("3", division="1")])
    since = datetime(2026, 12, 6, 0, 59, tzinfo=UTC)

    found = smaregi.point_transactions(
        "7", since=since, until=datetime(2026, 12, 6, 1, 30, tzinfo=UTC), division="6", page_size=2
    )

    assert [(t.transaction_head_id, t.point, t.division) for t in found] == [("2", 100, "6")]
    assert found[0].transacted_at == datetime(2026, 12, 6, 1, 0, 5, tzinfo=UTC)
    first, second = query(sent(mocked, 1)), query(sent(mocked, 2))
    assert sent(mocked, 1).url.startswith(f"{API}/{CONTRACT}/pos/transactions?")
    assert ("transaction_date_time-from", "2026-12-06T09:59:00+09:00") in first
    assert ("transaction_date_time-to", "2026-12-06T10:30:00+09:00") in first
    assert ("transaction_head_division", "6") in first and ("sort", "transactionDateTime") in first
    assert ("page", "1") in first and ("page", "2") in second and ("limit", "2") in second


def test_point_transactions_read_a_long_span_in_31_day_windows(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.get(f"{API}/{CONTRACT}/pos/transactions", json=[])
    mocked.get(f"{API}/{CONTRACT}/pos/transactions", json=[transaction_json("9", division="7", point="40")])

    found = smaregi.point_transactions(
        "7", since=datetime(2026, 10, 1, tzinfo=UTC), until=datetime(2026, 11, 15, tzinfo=UTC)
    )

    assert [(t.transaction_head_id, t.division, t.point) for t in found] == [("9", "7", 40)]
    windows = [dict(query(sent(mocked, n))) for n in (1, 2)]
    assert windows[0]["transaction_date_time-to"] < windows[1]["transaction_date_time-from"]
    assert "transaction_head_division" not in windows[0]  # every point division, checked here


def test_bulk_points_are_absolute_at_most_one_hundred_and_answer_a_request_id(
    mocked: responses.RequestsMock, smaregi: SmaregiClient
) -> None:
    token_answer(mocked)
    mocked.patch(
        f"{CUSTOMERS}/point/bulk", json={"requestId": 4711, "callbackUrl": "https://example.com/done"}
    )
    balances = [PointBalance("7", 120, date(2027, 3, 31)), PointBalance("8", 0)]

    request_id = smaregi.set_points_bulk(balances, "https://example.com/done")

    assert request_id == 4711
    assert (sent(mocked, 1).method, sent(mocked, 1).url) == ("PATCH", f"{CUSTOMERS}/point/bulk")
    assert json_body(sent(mocked, 1)) == {
        "customerPoints": [
            {"customerId": "7", "point": "120", "pointExpireDate": "2027-03-31"},
            {"customerId": "8", "point": "0"},
        ],
        "callbackUrl": "https://example.com/done",
    }
    with pytest.raises(ValueError):
        smaregi.set_points_bulk([PointBalance("7", 1)] * 101, "https://example.com/done")
    with pytest.raises(ValueError):
        smaregi.set_points_bulk([], "https://example.com/done")
    with pytest.raises(ValueError):
        smaregi.set_points_bulk(balances, "ftp://example.com/done")
    with pytest.raises(ValueError):
        PointBalance("7", -1)
    with pytest.raises(ValueError):
        PointBalance("seven", 1)
    assert len(mocked.calls) == 2  # nothing refused here reached Smaregi


# --- failures -----------------------------------------------------------------------------------------


def test_a_missing_member_is_not_found(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.post(f"{CUSTOMERS}/9/point/add", status=404, json={"title": "Not Found", "status": 404})
    with pytest.raises(NotFoundError):
        smaregi.add_points("9", 1)


def test_429_is_throttled_with_retry_after_and_pauses_the_limit(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, limiter: RecordingLimiter
) -> None:
    token_answer(mocked)
    mocked.get(
        CUSTOMERS,
        status=429,
        json={"title": "Too Many Requests", "status": 429},
        headers={"Retry-After": "2"},
    )
    with pytest.raises(ThrottledError) as throttled:
        smaregi.list_members()
    assert throttled.value.retry_after == 2.0 and limiter.pauses == [2.0]
    assert EMAIL not in str(throttled.value) and "hanako" not in str(throttled.value)


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"title": "Internal Server Error", "status": 500}},
        {"status": 502, "body": "<html>bad gateway</html>"},
        {"body": requests.ConnectTimeout("connect timed out")},
        {"body": requests.ReadTimeout("read timed out")},
        {"body": requests.ConnectionError("connection refused")},
    ],
)
def test_server_errors_and_timeouts_are_transient(
    mocked: responses.RequestsMock, smaregi: SmaregiClient, failure: dict[str, Any]
) -> None:
    token_answer(mocked)
    mocked.post(CUSTOMERS, **failure)
    with pytest.raises(TransientError) as failed:
        smaregi.create_member(customer_code="1", last_name="山田", first_name="花子", mail_address=EMAIL)
    assert not isinstance(failed.value, ThrottledError)


def test_a_malformed_success_is_transient(mocked: responses.RequestsMock, smaregi: SmaregiClient) -> None:
    token_answer(mocked)
    mocked.get(CUSTOMERS, body="<html>maintenance</html>")
    with pytest.raises(TransientError):
        smaregi.list_members()


# --- member codes -------------------------------------------------------------------------------------


def test_member_code_is_sixteen_digits_keyed_from_the_normalised_email() -> None:
    code = member_code(EMAIL, key=KEY)
    assert len(code) == 16 and code.isdigit()
    assert member_code("  Hanako@Example.COM ", key=KEY) == code
    # Pinned: a changed derivation would make a lost create undetectable across a deploy.
    assert code == "3940031686299186"
    assert member_code(EMAIL, key=KEY, salt=1) not in {code, member_code(EMAIL, key=KEY, salt=2)}
    assert member_code("taro@example.com", key=KEY) != code
    with pytest.raises(ValueError):
        member_code(EMAIL, key=KEY, salt=-1)
    with pytest.raises(ValueError):
        member_code(EMAIL, key=b"")


def test_member_code_cannot_be_computed_from_the_email_alone() -> None:
    import hashlib

    ours = member_code(EMAIL, key=KEY)
    # What anyone could compute knowing only the address (the unkeyed derivation of earlier releases).
    for salt in range(3):
        unkeyed = hashlib.sha256(f"{EMAIL}\n{salt}".encode()).digest()
        assert str(int.from_bytes(unkeyed[:8], "big") % 10**16).zfill(16) != ours
    assert member_code(EMAIL, key=b"another-key") != ours
