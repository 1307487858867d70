"""The Smaregi emulator over real sockets: tokens, members, points, errors, rate limit, faults."""

from __future__ import annotations

import string
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.smaregi import SmaregiSettings, create_app

CREDENTIALS = ("sandbox-client", "sandbox-secret")


@dataclass
class Smaregi:
    """A running emulator and a bearer token for contract `sandbox`."""

    url: str
    token: str

    @property
    def customers(self) -> str:
        return f"{self.url}/sandbox/pos/customers"

    def call(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.customers + path, headers=headers, **kwargs)

    def create(self, **fields: str) -> requests.Response:
        return self.call(
            "POST", json={"customerCode": "C1", "lastName": "山田", "firstName": "太郎", **fields}
        )


def fetch_token(url: str, **form: str) -> requests.Response:
    data = {"grant_type": "client_credentials", "scope": "pos.customers:read pos.customers:write", **form}
    return requests.post(f"{url}/app/sandbox/token", auth=CREDENTIALS, data=data, timeout=5)


def start_smaregi(serve, **overrides: Any) -> Smaregi:
    server = serve(create_app(SmaregiSettings(**overrides)))
    return Smaregi(server.url, fetch_token(server.url).json()["access_token"])


@pytest.fixture
def smaregi(serve) -> Smaregi:
    return start_smaregi(serve, rate_per_second=10_000)


def test_token_endpoint_issues_a_bearer_token(serve):
    server = serve(create_app(SmaregiSettings(token_expires_in=1200)))
    body = fetch_token(server.url).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1200
    assert body["scope"] == "pos.customers:read pos.customers:write"
    assert body["access_token"]


def test_token_endpoint_rejects_bad_clients_grants_scopes_and_contracts(serve):
    url = serve(create_app()).url
    wrong = requests.post(
        f"{url}/app/sandbox/token", auth=("sandbox-client", "nope"), data={"grant_type": "client_credentials"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert (
        requests.post(f"{url}/app/sandbox/token", data={"grant_type": "client_credentials"}).status_code
        == 401
    )
    assert fetch_token(url, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert fetch_token(url, scope="pos.products:read").json()["error"] == "invalid_scope"
    unknown = requests.post(
        f"{url}/app/other/token", auth=CREDENTIALS, data={"grant_type": "client_credentials"}
    )
    assert unknown.status_code == 404


def test_api_requires_a_live_bearer_token_of_the_contract(serve):
    server = serve(create_app(SmaregiSettings(token_expires_in=1)))
    token = fetch_token(server.url).json()["access_token"]
    customers = f"{server.url}/sandbox/pos/customers"
    assert requests.get(customers, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    missing = requests.get(customers)
    assert missing.status_code == 401
    assert set(missing.json()) >= {"type", "title", "detail", "status"}
    assert requests.get(customers, headers={"Authorization": "Bearer forged"}).status_code == 401
    other_contract = f"{server.url}/other/pos/customers"
    assert requests.get(other_contract, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    time.sleep(1.05)
    assert requests.get(customers, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_read_only_token_cannot_write(serve):
    url = serve(create_app()).url
    token = fetch_token(url, scope="pos.customers:read").json()["access_token"]
    response = requests.post(
        f"{url}/sandbox/pos/customers",
        headers={"Authorization": f"Bearer {token}"},
        json={"customerCode": "C1", "lastName": "a", "firstName": "b"},
    )
    assert response.status_code == 403


def test_create_answers_the_stored_member(smaregi):
    response = smaregi.create(lastKana="ヤマダ", firstKana="タロウ", mailAddress="t@example.jp", sex="1")
    assert response.status_code == 200
    member = response.json()
    assert member["customerId"] == "1"
    assert member["customerCode"] == "C1"
    assert member["lastKana"] == "ヤマダ"
    assert member["point"] == "0"
    assert member["insDateTime"] and member["updDateTime"]
    assert smaregi.call("GET", "/1").json() == member
    assert smaregi.create(customerCode="C2").json()["customerId"] == "2"


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"customerCode": ""}, "customerCode"),
        ({"customerCode": "X" * 21}, "customerCode"),
        ({"customerCode": "会員1"}, "customerCode"),
        ({"lastName": "名" * 86}, "lastName"),
        ({"lastKana": "やまだ"}, "lastKana"),
        ({"phoneNumber": "0" * 21}, "phoneNumber"),
        ({"sex": "3"}, "sex"),
        ({"birthDate": "1990/01/02"}, "birthDate"),
        ({"birthDate": "1990-02-30"}, "birthDate"),
        ({"mailReceiveFlag": "yes"}, "mailReceiveFlag"),
        ({"point": "10"}, "point"),
        ({"favouriteColour": "blue"}, "favouriteColour"),
        ({"sex": 1}, "sex"),
    ],
)
def test_create_rejects_invalid_fields_with_problem_details(smaregi, fields, bad_field):
    response = smaregi.create(**fields)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["title"] and body["type"]
    assert bad_field in body["detail"]
    assert [entry["name"] for entry in body["invalid-params"]] == [bad_field]


def test_create_requires_code_and_names(smaregi):
    response = smaregi.call("POST", json={"lastName": "山田"})
    assert response.status_code == 400
    assert {entry["name"] for entry in response.json()["invalid-params"]} == {"customerCode", "firstName"}
    assert smaregi.call("POST", data="not json").status_code == 400


def test_customer_code_is_unique_but_mail_address_is_not(smaregi):
    assert smaregi.create(customerCode="A", mailAddress="same@example.jp").status_code == 200
    assert smaregi.create(customerCode="B", mailAddress="same@example.jp").status_code == 200
    duplicate = smaregi.create(customerCode="A")
    assert duplicate.status_code == 400
    assert duplicate.json()["invalid-params"][0]["name"] == "customerCode"
    shared = smaregi.call("GET", params={"mail_address": "same@example.jp"}).json()
    assert [member["customerCode"] for member in shared] == ["A", "B"]


def test_list_pages_with_link_header_and_filters(smaregi):
    for number in range(5):
        smaregi.create(customerCode=f"C{number}")
    first = smaregi.call("GET", params={"limit": 2})
    assert [member["customerCode"] for member in first.json()] == ["C0", "C1"]
    assert first.links["next"]["url"].endswith("limit=2&page=2")
    third = requests.get(
        first.links["next"]["url"].replace("page=2", "page=3"),
        headers={"Authorization": f"Bearer {smaregi.token}"},
    )
    assert [member["customerCode"] for member in third.json()] == ["C4"]
    assert "next" not in third.links
    assert smaregi.call("GET").json()[4]["customerCode"] == "C4"
    assert [m["customerId"] for m in smaregi.call("GET", params={"customer_code": "C3"}).json()] == ["4"]
    assert smaregi.call("GET", params={"customer_code": "nobody"}).json() == []
    assert smaregi.call("GET", params={"limit": 1001}).status_code == 400
    assert smaregi.call("GET", params={"page": 0}).status_code == 400


def test_patch_validates_and_keeps_codes_unique(smaregi):
    smaregi.create(customerCode="A")
    smaregi.create(customerCode="B")
    updated = smaregi.call("PATCH", "/1", json={"lastName": "佐藤", "mailReceiveFlag": "1"})
    assert updated.status_code == 200
    assert updated.json()["lastName"] == "佐藤" and updated.json()["firstName"] == "太郎"
    assert smaregi.call("PATCH", "/1", json={"customerCode": "B"}).status_code == 400
    assert smaregi.call("PATCH", "/1", json={"firstKana": "tarou"}).status_code == 400
    assert smaregi.call("PATCH", "/1", json={"customerCode": "A2"}).json()["customerCode"] == "A2"
    assert smaregi.call("GET", params={"customer_code": "A"}).json() == []
    missing = smaregi.call("PATCH", "/99", json={"lastName": "x"})
    assert missing.status_code == 404 and missing.json()["status"] == 404
    assert smaregi.call("GET", "/99").status_code == 404


def test_points_set_absolutely_and_add_relatively_never_below_zero(smaregi):
    smaregi.create()
    assert smaregi.call("PATCH", "/1/point", json={"point": "100"}).json()["point"] == "100"
    assert smaregi.call("POST", "/1/point/add", json={"point": "-30"}).json()["point"] == "70"
    below_zero = smaregi.call("POST", "/1/point/add", json={"point": "-71"})
    assert below_zero.status_code == 400
    assert smaregi.call("PATCH", "/1/point", json={"point": "-1"}).status_code == 400
    assert smaregi.call("PATCH", "/1/point", json={"point": 5}).status_code == 400
    assert smaregi.call("POST", "/9/point/add", json={"point": "1"}).status_code == 404
    assert smaregi.call("GET", "/1").json()["point"] == "70"


def test_rate_limit_answers_429_with_retry_after_then_recovers(serve):
    smaregi = start_smaregi(serve, rate_per_second=3)
    statuses = [smaregi.call("GET").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = smaregi.call("GET")
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["status"] == 429
    time.sleep(1.05)
    assert smaregi.call("GET").status_code == 200


def test_faults_error_throttle_and_timeout_after_commit(smaregi):
    faults = f"{smaregi.url}/_sandbox/faults"
    requests.post(faults, json={"error_rate": 1})
    assert smaregi.create().status_code == 500
    requests.post(faults, json={"throttle_rate": 1})
    throttled = smaregi.create()
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    requests.post(faults, json={"timeout_after_commit_rate": 1})
    with pytest.raises(requests.Timeout):
        smaregi.call("POST", json={"customerCode": "T", "lastName": "a", "firstName": "b"}, timeout=0.3)
    requests.post(faults, json={})
    state = requests.get(f"{smaregi.url}/_sandbox/state").json()
    assert [member["customerCode"] for member in state["customers"]] == ["T"]
    assert state["requests"]["fault.error"] == 1


def test_concurrent_creates_lose_nothing_and_one_code_wins_once(smaregi):
    with ThreadPoolExecutor(max_workers=16) as pool:
        distinct = list(pool.map(lambda n: smaregi.create(customerCode=f"D{n}").status_code, range(60)))
        same = list(pool.map(lambda _: smaregi.create(customerCode="SAME").status_code, range(30)))
    assert distinct == [200] * 60
    assert sorted(same) == [200] + [400] * 29
    customers = requests.get(f"{smaregi.url}/_sandbox/state").json()["customers"]
    assert len(customers) == 61
    assert len({member["customerId"] for member in customers}) == 61


def test_reset_empties_members_and_counters(smaregi):
    smaregi.create()
    requests.post(f"{smaregi.url}/_sandbox/reset")
    state = requests.get(f"{smaregi.url}/_sandbox/state").json()
    assert state["customers"] == [] and state["requests"] == {}
    assert smaregi.create().json()["customerId"] == "1"


# Anything outside full-width katakana and spaces.
not_katakana = st.text(min_size=1, max_size=10).filter(
    lambda text: any(not ("\u30a0" <= char <= "\u30ff" or char in "\u3000 ") for char in text)
)
non_string = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.text()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kana=not_katakana, field=st.sampled_from(["lastKana", "firstKana"]))
def test_create_never_accepts_non_katakana_kana(smaregi, kana, field):
    response = smaregi.create(customerCode="K", **{field: kana})
    assert response.status_code == 400


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=non_string,
    field=st.sampled_from(["customerCode", "lastName", "sex", "phoneNumber", "birthDate"]),
)
def test_create_never_accepts_non_string_values(smaregi, value, field):
    response = smaregi.call(
        "POST", json={"customerCode": "K", "lastName": "a", "firstName": "b", field: value}
    )
    assert response.status_code == 400
    assert {"name": field, "reason": "must be a string"} in response.json()["invalid-params"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=st.text(alphabet=string.printable[:95], min_size=1, max_size=20))
def test_create_accepts_any_printable_ascii_code_once(smaregi, code):
    requests.post(f"{smaregi.url}/_sandbox/reset")
    assert smaregi.create(customerCode=code).status_code == 200
    assert smaregi.call("GET", params={"customer_code": code}).json()[0]["customerCode"] == code
