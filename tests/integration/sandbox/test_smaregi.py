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
    # No e-mail filter exists: an unknown parameter is ignored, as real APIs commonly do.
    ignored = smaregi.call("GET", params={"mail_address": "nobody@example.jp"}).json()
    assert [member["customerCode"] for member in ignored] == ["A", "B"]


def test_list_pages_by_number_without_a_link_header_and_documented_filters(smaregi):
    for number in range(5):
        smaregi.create(customerCode=f"C{number}", customerNo=f"N{number}")
    first = smaregi.call("GET", params={"limit": 2})
    assert [member["customerCode"] for member in first.json()] == ["C0", "C1"]
    assert "Link" not in first.headers  # Smaregi documents none: a short page is the last
    third = smaregi.call("GET", params={"limit": 2, "page": 3})
    assert [member["customerCode"] for member in third.json()] == ["C4"]
    assert len(smaregi.call("GET").json()) == 5  # default limit 100
    assert [m["customerId"] for m in smaregi.call("GET", params={"customer_code": "C3"}).json()] == ["4"]
    assert [m["customerId"] for m in smaregi.call("GET", params={"customer_no": "N1"}).json()] == ["2"]
    by_ids = smaregi.call("GET", params={"customer_id-from": "2", "customer_id-to": "3"}).json()
    assert [m["customerId"] for m in by_ids] == ["2", "3"]
    assert smaregi.call("GET", params={"customer_code": "nobody"}).json() == []
    newest_first = smaregi.call("GET", params={"sort": "customerId:desc", "limit": 2}).json()
    assert [m["customerId"] for m in newest_first] == ["5", "4"]
    for bad in (
        {"limit": 1001},
        {"limit": 0},
        {"page": 0},
        {"sort": "mailAddress"},
        {"customer_id-from": "x"},
    ):
        refused = smaregi.call("GET", params=bad)
        assert refused.status_code == 400 and refused.json()["invalid-params"], bad


def test_update_time_range_filters_and_is_31_days_at_most(smaregi):
    smaregi.create(customerCode="A")
    stamp = smaregi.call("GET", "/1").json()["updDateTime"]
    assert stamp.endswith("+09:00")
    since = smaregi.call("GET", params={"upd_date_time-from": stamp}).json()
    assert [m["customerCode"] for m in since] == ["A"]
    later = smaregi.call("GET", params={"upd_date_time-from": "2099-01-01T00:00:00+09:00"}).json()
    assert later == []
    too_long = smaregi.call(
        "GET",
        params={
            "upd_date_time-from": "2026-01-01T00:00:00+09:00",
            "upd_date_time-to": "2026-02-01T00:00:01+09:00",
        },
    )
    assert too_long.status_code == 400
    assert too_long.json()["invalid-params"][0]["name"] == "upd_date_time-from"
    assert too_long.json()["type"] and too_long.json()["title"] and too_long.json()["status"] == 400
    old_watermark = smaregi.call("GET", params={"upd_date_time-from": "2020-01-01T00:00:00+09:00"})
    assert old_watermark.status_code == 400  # without an end the range ends now
    within = smaregi.call(
        "GET",
        params={
            "upd_date_time-from": "2026-01-01T00:00:00+09:00",
            "upd_date_time-to": "2026-02-01T00:00:00+09:00",
        },
    )
    assert within.status_code == 200


def test_real_field_limits(smaregi):
    too_long = {"address": "a" * 86, "postCode": "1" * 11, "phoneNumber": "1" * 21, "lastName": "a" * 86}
    for name, value in too_long.items():
        refused = smaregi.create(**{name: value})
        assert refused.status_code == 400, name
        assert refused.json()["invalid-params"][0]["name"] == name
    fits = smaregi.create(address="a" * 85, postCode="150-0001", phoneNumber="03-1234-5678")
    assert fits.status_code == 200
    assert smaregi.create(customerCode="C" * 21).status_code == 400
    assert smaregi.create(customerCode="会員").status_code == 400


def test_contract_refusals_are_injected_through_faults_and_cleared(smaregi):
    faults = f"{smaregi.url}/_sandbox/faults"
    assert requests.post(faults, json={"required_fields": ["entryDate"]}).status_code == 200
    refused = smaregi.create()
    assert refused.status_code == 400
    assert refused.json()["invalid-params"] == [
        {"name": "entryDate", "reason": "is required by this contract"}
    ]
    assert smaregi.create(entryDate="2026-11-29").status_code == 200
    assert requests.post(faults, json={"plan_without_customers_api": True}).status_code == 200
    no_api = smaregi.call("GET")
    assert no_api.status_code == 403 and no_api.json()["status"] == 403 and no_api.json()["title"]
    state = requests.get(f"{smaregi.url}/_sandbox/state").json()
    assert state["refusals"] == {
        "required_fields": [],
        "plan_without_customers_api": True,
        "faulted_paths": None,
    }
    assert requests.post(faults, json={"required_fields": "entryDate"}).status_code == 400
    assert requests.post(faults, json={"mail_filter": True}).status_code == 400
    requests.post(faults, json={})
    assert smaregi.call("GET").status_code == 200


def test_delete_removes_a_member(smaregi):
    smaregi.create(customerCode="A")
    assert smaregi.call("DELETE", "/1").status_code == 204
    assert smaregi.call("GET", "/1").status_code == 404
    assert smaregi.call("DELETE", "/1").status_code == 404
    assert smaregi.create(customerCode="A").status_code == 200  # the code is free again


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


def test_points_move_relatively_never_below_zero_and_each_movement_is_a_transaction(smaregi):
    smaregi.create()
    added = smaregi.call("POST", "/1/point/add", json={"point": "100"})
    assert added.status_code == 200
    assert added.json()["point"] == "100" and added.json()["transactionHeadIds"] == ["1"]
    assert set(added.json()) == {
        "customerId",
        "point",
        "mile",
        "pointExpireDate",
        "updDateTime",
        "transactionHeadIds",
    }
    assert smaregi.call("POST", "/1/point/add", json={"point": "-30"}).json()["point"] == "70"
    below_zero = smaregi.call("POST", "/1/point/add", json={"point": "-71"})
    assert below_zero.status_code == 400 and below_zero.json()["invalid-params"][0]["name"] == "point"
    assert smaregi.call("POST", "/1/point/add", json={"point": 5}).status_code == 400  # strings only
    assert smaregi.call("POST", "/1/point/add", json={"point": "0"}).status_code == 400
    assert smaregi.call("POST", "/9/point/add", json={"point": "1"}).status_code == 404
    # No single absolute set: it is not in Smaregi's pages.
    assert smaregi.call("PATCH", "/1/point", json={"point": "100"}).status_code >= 400
    assert smaregi.call("GET", "/1").json()["point"] == "70"

    state = requests.get(f"{smaregi.url}/_sandbox/state", timeout=5).json()
    moved = [
        (t["transactionHeadId"], t["transactionHeadDivision"], t["customerId"], t["point"])
        for t in state["transactions"]
    ]
    assert moved == [("1", "6", "1", "100"), ("2", "7", "1", "30")]  # the refusals made none


def transactions_token(smaregi: Smaregi) -> str:
    answer = fetch_token(smaregi.url, scope="pos.customers:read pos.customers:write pos.transactions:read")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_transactions_list_by_period_division_and_code_with_their_own_scope(smaregi):
    smaregi.create()
    smaregi.create(customerCode="C2")
    for path, point in (("/1", "10"), ("/2", "20"), ("/1", "-5")):
        assert smaregi.call("POST", f"{path}/point/add", json={"point": point}).status_code == 200
    url = f"{smaregi.url}/sandbox/pos/transactions"
    yesterday = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 86400))
    period = {"transaction_date_time-from": yesterday}

    def listed(token: str, **params: str) -> requests.Response:
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, params=params, timeout=5)

    assert listed(smaregi.token, **period).status_code == 403  # pos.customers scopes only
    token = transactions_token(smaregi)
    every = listed(token, **period).json()
    assert [(t["customerId"], t["transactionHeadDivision"], t["point"]) for t in every] == [
        ("1", "6", "10"),
        ("2", "6", "20"),
        ("1", "7", "5"),
    ]
    assert [t["transactionHeadId"] for t in listed(token, **period, customer_code="C1").json()] == ["1", "3"]
    assert [
        t["transactionHeadId"] for t in listed(token, **period, transaction_head_division="7").json()
    ] == ["3"]
    assert [
        t["transactionHeadId"]
        for t in listed(token, **period, sort="transactionHeadId:desc", limit="2").json()
    ] == ["3", "2"]
    assert listed(token, **period, limit="2", page="2").json()[0]["transactionHeadId"] == "3"
    future = {
        "transaction_date_time-from": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 60))
    }
    assert listed(token, **future).json() == []
    assert listed(token).status_code == 400  # a period is required
    too_long = {
        "transaction_date_time-from": "2026-01-01T00:00:00+09:00",
        "transaction_date_time-to": "2026-03-01T00:00:00+09:00",
    }
    assert listed(token, **too_long).status_code == 400


def test_faults_can_be_kept_to_one_path_and_a_held_point_add_has_moved_the_points(smaregi):
    smaregi.create()
    faults = f"{smaregi.url}/_sandbox/faults"
    answer = requests.post(
        faults, json={"timeout_after_commit_rate": 1, "faulted_paths": "/point/add$"}, timeout=5
    )
    assert answer.status_code == 200 and answer.json()["faults"]["faulted_paths"] == "/point/add$"
    assert smaregi.call("GET", "/1").status_code == 200  # other paths answer
    with pytest.raises(requests.Timeout):
        smaregi.call("POST", "/1/point/add", json={"point": "50"}, timeout=0.5)
    assert smaregi.call("GET", "/1").json()["point"] == "50"  # committed: only the answer was lost
    assert requests.post(faults, json={"faulted_paths": "("}, timeout=5).status_code == 400
    requests.post(faults, json={}, timeout=5)  # lets the held answer go
    assert len(requests.get(f"{smaregi.url}/_sandbox/state", timeout=5).json()["transactions"]) == 1


class SteppedClock:
    """A clock that moves only when told: a burst is one instant however slow the host is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reads_and_writes_have_their_own_budgets_by_default(serve):
    # Smaregi's sandbox figures: 10 reads/s, 4 writes/s
    smaregi = start_smaregi(serve, clock=SteppedClock())
    writes = [smaregi.create(customerCode=f"W{n}").status_code for n in range(5)]
    assert writes == [200, 200, 200, 200, 429]
    reads = [smaregi.call("GET").status_code for _ in range(11)]
    assert reads == [200] * 10 + [429]  # the writes took nothing from the reads


def test_rate_limit_answers_429_with_retry_after_then_recovers(serve):
    clock = SteppedClock()
    smaregi = start_smaregi(serve, read_per_second=3, clock=clock)
    statuses = [smaregi.call("GET").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = smaregi.call("GET")
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["status"] == 429
    clock.now += 0.99
    assert smaregi.call("GET").status_code == 429  # the window rolls, it isn't reset each second
    clock.now += 0.02
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


def test_a_timeout_after_commit_fault_holds_only_writes_carried_out(smaregi):
    smaregi.create(customerCode="K1")
    requests.post(f"{smaregi.url}/_sandbox/faults", json={"timeout_after_commit_rate": 1}, timeout=5)
    try:
        # Reads and refused calls wrote nothing: answered at once (a held one would time out here).
        assert smaregi.call("GET").status_code == 200
        assert smaregi.call("GET", "/1").status_code == 200
        assert smaregi.create(customerCode="K1").status_code == 400  # the code is taken
        assert smaregi.call("POST", json={"lastName": "a"}).status_code == 400
        assert smaregi.call("PATCH", "/99", json={"lastName": "a"}).status_code == 404
        with pytest.raises(requests.Timeout):
            smaregi.call("POST", json={"customerCode": "K2", "lastName": "a", "firstName": "b"}, timeout=0.5)
    finally:
        requests.post(f"{smaregi.url}/_sandbox/faults", json={}, timeout=5)  # lets the held answer go
    state = requests.get(f"{smaregi.url}/_sandbox/state", timeout=5).json()
    assert [member["customerCode"] for member in state["customers"]] == ["K1", "K2"]
    assert state["requests"]["fault.timeout_after_commit"] == 6


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


def test_bulk_points_are_accepted_at_once_applied_a_moment_later_and_reported_to_the_callback(smaregi, serve):
    from flask import Flask, request

    received: list[dict[str, Any]] = []
    catcher = Flask("callback")

    @catcher.post("/done")
    def done() -> str:
        received.append(request.get_json(force=True))
        return ""

    callback = f"{serve(catcher).url}/done"
    smaregi.create()
    smaregi.create(customerCode="C2")
    assert smaregi.call("POST", "/2/point/add", json={"point": "80"}).status_code == 200
    bulk = f"{smaregi.url}/sandbox/pos/customers/point/bulk"
    headers = {"Authorization": f"Bearer {smaregi.token}"}
    body = {
        "customerPoints": [{"customerId": "1", "point": "120"}, {"customerId": "2", "point": "30"}],
        "callbackUrl": callback,
    }

    accepted = requests.patch(bulk, json=body, headers=headers, timeout=5)

    assert accepted.status_code == 200 and accepted.json() == {"requestId": 1, "callbackUrl": callback}
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    state = requests.get(f"{smaregi.url}/_sandbox/state", timeout=5).json()
    assert [m["point"] for m in state["customers"]] == ["120", "30"]
    assert [
        (t["customerId"], t["transactionHeadDivision"], t["point"]) for t in state["transactions"][1:]
    ] == [
        ("1", "6", "120"),
        ("2", "7", "50"),
    ]
    assert received == [
        {
            "requestId": 1,
            "result": [
                {"customerId": "1", "transactionHeadIds": ["2"]},
                {"customerId": "2", "transactionHeadIds": ["3"]},
            ],
        }
    ]
    too_many = {**body, "customerPoints": [{"customerId": "1", "point": "1"}] * 101}
    assert requests.patch(bulk, json=too_many, headers=headers, timeout=5).status_code == 400
    no_callback = {"customerPoints": body["customerPoints"]}
    assert requests.patch(bulk, json=no_callback, headers=headers, timeout=5).status_code == 400
    unknown = {**body, "customerPoints": [{"customerId": "9", "point": "1"}]}
    assert requests.patch(bulk, json=unknown, headers=headers, timeout=5).status_code == 400
    negative = {**body, "customerPoints": [{"customerId": "1", "point": "-1"}]}
    assert requests.patch(bulk, json=negative, headers=headers, timeout=5).status_code == 400


def test_points_past_their_expiry_date_are_expired_first_in_a_transaction_of_their_own(smaregi):
    smaregi.create()
    first = smaregi.call("POST", "/1/point/add", json={"point": "100", "pointExpireDate": "2020-01-31"})
    assert first.json()["pointExpireDate"] == "2020-01-31" and first.json()["point"] == "100"

    refused = smaregi.call("POST", "/1/point/add", json={"point": "-1"})  # expired to 0 first
    assert refused.status_code == 400
    added = smaregi.call("POST", "/1/point/add", json={"point": "10", "pointExpireDate": "2099-12-31"})

    assert added.json()["point"] == "10" and added.json()["transactionHeadIds"] == ["2", "3"]
    state = requests.get(f"{smaregi.url}/_sandbox/state", timeout=5).json()
    assert [(t["transactionHeadDivision"], t["point"]) for t in state["transactions"]] == [
        ("6", "100"),
        ("8", "100"),
        ("6", "10"),
    ]
    assert smaregi.call("POST", "/1/point/add", json={"point": "-10"}).json()["point"] == "0"  # not expired
