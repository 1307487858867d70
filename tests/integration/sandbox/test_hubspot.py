"""The HubSpot emulator over real sockets: contacts, list, batch upsert, search, errors, limits, faults."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from sandbox.hubspot import ContactBook, HubSpotSettings, create_app

AUTH = {"Authorization": "Bearer pat-sandbox"}


@dataclass
class HubSpot:
    """A running emulator, called with the sandbox token."""

    url: str

    def call(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return requests.request(method, f"{self.url}/crm/v3/objects/contacts{path}", headers=AUTH, **kwargs)

    def create(self, email: str | None = "taro@example.jp", **properties: Any) -> requests.Response:
        return self.call("POST", json={"properties": {"email": email, "firstname": "Taro", **properties}})

    def search(self, **body: Any) -> requests.Response:
        return self.call("POST", "/search", json=body)

    def upsert_many(self, count: int, start: int = 0) -> None:
        for first in range(start, start + count, 100):
            inputs = [
                {"id": f"m{n}@example.jp", "idProperty": "email", "properties": {"firstname": f"M{n}"}}
                for n in range(first, min(first + 100, start + count))
            ]
            self.call("POST", "/batch/upsert", json={"inputs": inputs}).raise_for_status()

    def list_all(self, **params: Any) -> list[dict[str, Any]]:
        """Every page of GET /crm/v3/objects/contacts, following paging.next.after."""
        pages: list[dict[str, Any]] = []
        while True:
            response = self.call("GET", params=params)
            assert response.status_code == 200, response.text
            pages.append(response.json())
            if "paging" not in pages[-1]:
                return pages
            params = {**params, "after": pages[-1]["paging"]["next"]["after"]}


def start_hubspot(serve, **overrides: Any) -> HubSpot:
    return HubSpot(serve(create_app(HubSpotSettings(**overrides))).url)


@pytest.fixture
def hubspot(serve) -> HubSpot:
    return start_hubspot(serve, requests_per_window=10_000, search_per_second=10_000)


def assert_error(response: requests.Response, status: int, category: str) -> dict[str, Any]:
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error" and body["category"] == category and body["message"]
    uuid.UUID(body["correlationId"])
    return body


def test_create_answers_201_with_hubspot_shape(hubspot):
    response = hubspot.create(lastname="Yamada", phone="+81 90 0000 0000")
    assert response.status_code == 201
    contact = response.json()
    assert contact["id"] == "1" and contact["archived"] is False
    assert contact["createdAt"].endswith("Z") and contact["updatedAt"]
    properties = contact["properties"]
    assert properties["hs_object_id"] == "1" and properties["email"] == "taro@example.jp"
    assert properties["createdate"] == contact["createdAt"] and properties["lastmodifieddate"]
    assert properties["phone"] == "+81 90 0000 0000"


def test_known_email_conflicts_case_insensitively(hubspot):
    hubspot.create()
    body = assert_error(hubspot.create(email="TARO@Example.JP"), 409, "CONFLICT")
    assert body["message"] == "Contact already exists. Existing ID: 1"


def test_auth_failures(serve, hubspot):
    url = f"{hubspot.url}/crm/v3/objects/contacts/1"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic cGF0LXNhbmRib3g="}):
        assert_error(requests.get(url, headers=headers), 401, "INVALID_AUTHENTICATION")


def test_invalid_properties_are_validation_errors(hubspot):
    body = assert_error(hubspot.create(favourite="x"), 400, "VALIDATION_ERROR")
    assert body["errors"][0]["name"] == "favourite"
    assert_error(hubspot.create(email="not-an-address"), 400, "VALIDATION_ERROR")
    assert_error(hubspot.create(hs_object_id="7"), 400, "VALIDATION_ERROR")
    assert_error(hubspot.call("POST", json={"properties": []}), 400, "VALIDATION_ERROR")


def test_read_by_id_or_email_selecting_properties(hubspot):
    hubspot.create(lastname="Yamada", phone="1")
    default = hubspot.call("GET", "/1").json()
    assert set(default["properties"]) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    }  # fmt: skip
    selected = hubspot.call("GET", "/TARO@example.jp", params={"idProperty": "email", "properties": "phone"})
    assert selected.json()["id"] == "1" and selected.json()["properties"]["phone"] == "1"
    assert "firstname" not in selected.json()["properties"]
    assert_error(hubspot.call("GET", "/99"), 404, "OBJECT_NOT_FOUND")
    assert_error(hubspot.call("GET", "/x@y.jp", params={"idProperty": "email"}), 404, "OBJECT_NOT_FOUND")


def test_patch_updates_and_guards_email(hubspot):
    hubspot.create()
    hubspot.create(email="hanako@example.jp")
    updated = hubspot.call("PATCH", "/1", json={"properties": {"lastname": "Sato"}})
    assert updated.status_code == 200 and updated.json()["properties"]["lastname"] == "Sato"
    assert hubspot.call("GET", "/1").json()["properties"]["firstname"] == "Taro"
    conflict = hubspot.call("PATCH", "/1", json={"properties": {"email": "HANAKO@example.jp"}})
    assert_error(conflict, 409, "CONFLICT")
    assert_error(hubspot.call("PATCH", "/9", json={"properties": {}}), 404, "OBJECT_NOT_FOUND")


def test_batch_upsert_creates_updates_and_reports_per_input_errors(hubspot):
    hubspot.create()
    inputs = [
        {"id": "Taro@example.jp", "idProperty": "email", "properties": {"lastname": "Yamada"}},
        {"id": "new@example.jp", "idProperty": "email", "properties": {"firstname": "New"}},
    ]
    response = hubspot.call("POST", "/batch/upsert", json={"inputs": inputs})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE" and body["startedAt"] and body["completedAt"]
    assert [(r["id"], r["new"]) for r in body["results"]] == [("1", False), ("2", True)]
    assert hubspot.call("GET", "/1").json()["properties"]["email"] == "taro@example.jp"
    partial = hubspot.call(
        "POST",
        "/batch/upsert",
        json={
            "inputs": [*inputs, {"id": "bad@example.jp", "idProperty": "email", "properties": {"nope": "1"}}]
        },
    )
    assert partial.status_code == 207
    assert partial.json()["numErrors"] == 1 and partial.json()["errors"][0]["category"] == "VALIDATION_ERROR"
    assert len(partial.json()["results"]) == 2
    assert_error(hubspot.call("POST", "/batch/upsert", json={"inputs": []}), 400, "VALIDATION_ERROR")
    assert_error(hubspot.call("POST", "/batch/upsert", json={"inputs": inputs * 2}), 400, "VALIDATION_ERROR")


def test_search_filter_groups_paging_and_properties(hubspot):
    for number in range(5):
        hubspot.create(email=f"m{number}@example.jp", lastname="Even" if number % 2 == 0 else "Odd")
    by_email = hubspot.search(
        filterGroups=[{"filters": [{"propertyName": "email", "operator": "EQ", "value": "M3@EXAMPLE.JP"}]}],
        properties=["email"],
    ).json()
    assert by_email["total"] == 1 and by_email["results"][0]["properties"]["email"] == "m3@example.jp"
    assert "paging" not in by_email
    either = hubspot.search(
        filterGroups=[
            {"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "odd"}]},
            {
                "filters": [
                    {"propertyName": "lastname", "operator": "EQ", "value": "Even"},
                    {"propertyName": "email", "operator": "EQ", "value": "m0@example.jp"},
                ]
            },
        ],
        limit=2,
    ).json()
    assert either["total"] == 3
    assert [contact["id"] for contact in either["results"]] == ["1", "2"]
    rest = hubspot.search(filterGroups=[], limit=2, after=either["paging"]["next"]["after"]).json()
    assert [contact["id"] for contact in rest["results"]] == ["3", "4"]
    assert_error(hubspot.search(limit=201), 400, "VALIDATION_ERROR")
    bad_operator = [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]
    assert_error(hubspot.search(filterGroups=bad_operator), 400, "VALIDATION_ERROR")


def test_ten_second_window_trips_with_real_body_and_recovers(serve):
    hubspot = start_hubspot(serve, requests_per_window=3, window_ms=500)
    responses = [hubspot.call("GET", "/1") for _ in range(4)]
    assert [r.status_code for r in responses] == [404, 404, 404, 429]
    assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert responses[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500"
    assert int(responses[2].headers["X-HubSpot-RateLimit-Daily-Remaining"]) < int(
        responses[2].headers["X-HubSpot-RateLimit-Daily"]
    )
    body = responses[3].json()
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    time.sleep(0.55)
    assert hubspot.call("GET", "/1").status_code == 404


def test_search_has_its_own_lower_limit(serve):
    hubspot = start_hubspot(serve, search_per_second=2)
    assert [hubspot.search().status_code for _ in range(3)] == [200, 200, 429]
    assert hubspot.call("GET", "/1").status_code == 404  # other calls are not held back


def test_faults_take_hubspot_shapes(hubspot):
    faults = f"{hubspot.url}/_sandbox/faults"
    requests.post(faults, json={"error_rate": 1})
    assert hubspot.create().status_code >= 500
    requests.post(faults, json={"throttle_rate": 1})
    throttled = hubspot.create()
    assert throttled.status_code == 429 and throttled.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert "X-HubSpot-RateLimit-Remaining" in throttled.headers
    requests.post(faults, json={"timeout_after_commit_rate": 1})
    with pytest.raises(requests.Timeout):
        hubspot.call("POST", json={"properties": {"email": "taro@example.jp"}}, timeout=0.3)
    requests.post(f"{hubspot.url}/_sandbox/faults", json={})
    assert_error(hubspot.create(), 409, "CONFLICT")  # the timed-out create was stored


def test_concurrent_upserts_of_one_email_make_one_contact(hubspot):
    item = {"inputs": [{"id": "same@example.jp", "idProperty": "email", "properties": {}}]}
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: hubspot.call("POST", "/batch/upsert", json=item).json(), range(30)))
        creates = list(pool.map(lambda n: hubspot.create(email=f"c{n}@example.jp").status_code, range(40)))
    assert sorted(result["results"][0]["new"] for result in results) == [False] * 29 + [True]
    assert creates == [201] * 40
    contacts = requests.get(f"{hubspot.url}/_sandbox/state").json()["contacts"]
    assert len(contacts) == 41


def test_reset_empties_contacts(hubspot):
    hubspot.create()
    requests.post(f"{hubspot.url}/_sandbox/reset")
    state = requests.get(f"{hubspot.url}/_sandbox/state").json()
    assert state["contacts"] == [] and state["requests"] == {}
    assert hubspot.create().status_code == 201


def test_list_pages_through_every_contact_once(hubspot):
    hubspot.upsert_many(250)
    pages = hubspot.list_all(limit=100)
    assert [len(page["results"]) for page in pages] == [100, 100, 50]
    ids = [contact["id"] for page in pages for contact in page["results"]]
    assert ids == [str(n) for n in range(1, 251)]
    emails = {contact["properties"]["email"] for page in pages for contact in page["results"]}
    assert emails == {f"m{n}@example.jp" for n in range(250)}
    first = pages[0]["results"][0]
    assert set(first) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert first["archived"] is False and first["properties"]["hs_object_id"] == "1"
    assert set(first["properties"]) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    }  # fmt: skip
    cursor = pages[0]["paging"]["next"]
    assert cursor["after"] == "101"
    assert cursor["link"].startswith(f"{hubspot.url}/crm/v3/objects/contacts?")
    assert requests.get(cursor["link"], headers=AUTH, timeout=5).json() == pages[1]


def test_list_defaults_to_ten_and_ends_without_paging(hubspot):
    assert hubspot.call("GET").json() == {"results": []}
    hubspot.upsert_many(20)
    first = hubspot.call("GET").json()
    assert len(first["results"]) == 10 and first["paging"]["next"]["after"] == "11"
    last = hubspot.call("GET", params={"after": "11"}).json()
    assert len(last["results"]) == 10 and "paging" not in last  # exactly a full last page
    assert hubspot.call("GET", params={"after": "500"}).json() == {"results": []}
    assert hubspot.call("GET", params={"archived": "true"}).json() == {"results": []}


def test_list_selects_properties_comma_separated_or_repeated(hubspot):
    hubspot.create(lastname="Yamada", phone="+81 90")
    always = {"createdate", "hs_object_id", "lastmodifieddate"}
    for params in ({"properties": "email,phone"}, {"properties": ["email", "phone"]}):
        (contact,) = hubspot.call("GET", params=params).json()["results"]
        assert set(contact["properties"]) == {"email", "phone", *always}
        assert contact["properties"]["phone"] == "+81 90"
    (contact,) = hubspot.call("GET", params={"properties": "nickname"}).json()["results"]
    assert contact["properties"]["nickname"] is None


@pytest.mark.parametrize(
    "params",
    [{"limit": "101"}, {"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"limit": "9" * 5000},
     {"after": "abc"}, {"after": "9" * 5000}, {"archived": "maybe"}],
)  # fmt: skip
def test_list_refuses_bad_queries(hubspot, params):
    assert_error(hubspot.call("GET", params=params), 400, "VALIDATION_ERROR")


def test_list_needs_auth_and_counts_against_the_window(serve):
    hubspot = start_hubspot(serve, requests_per_window=3)
    url = f"{hubspot.url}/crm/v3/objects/contacts"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert_error(requests.get(url, headers=headers, timeout=5), 401, "INVALID_AUTHENTICATION")
    responses = [hubspot.call("GET") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[3].json()["policyName"] == "TEN_SECONDLY_ROLLING"
    counted = requests.get(f"{hubspot.url}/_sandbox/state", timeout=5).json()["requests"]
    assert counted["list_contacts"] == 6


def test_list_takes_injected_faults(hubspot):
    faults = f"{hubspot.url}/_sandbox/faults"
    requests.post(faults, json={"error_rate": 1}, timeout=5)
    assert_error(hubspot.call("GET"), 502, "INTERNAL_ERROR")
    requests.post(faults, json={"throttle_rate": 1}, timeout=5)
    assert hubspot.call("GET").json()["policyName"] == "TEN_SECONDLY_ROLLING"
    requests.post(faults, json={"timeout_after_commit_rate": 1}, timeout=5)
    assert hubspot.call("GET", timeout=2).status_code == 200  # a read has no write to lose


def test_list_is_stable_under_concurrent_inserts(hubspot):
    hubspot.upsert_many(250)
    done = threading.Event()

    def insert_more() -> None:
        for first in range(250, 550, 50):
            hubspot.upsert_many(50, start=first)
        done.set()

    writer = threading.Thread(target=insert_more)
    writer.start()
    ids = [int(c["id"]) for page in hubspot.list_all(limit=7) for c in page["results"]]
    writer.join()
    assert done.is_set()
    assert ids == sorted(set(ids)) and ids[:250] == list(range(1, 251))  # nobody twice, nobody skipped
    assert ids == list(range(1, len(ids) + 1))


def test_list_reads_one_page_of_100k_contacts(monkeypatch):
    book = ContactBook(HubSpotSettings())
    for number in range(100_000):
        book.store.insert({"properties": {"email": f"m{number}@example.jp"}, "archived": False})
    reads: list[str] = []
    get = book.store.get

    def counted_get(record_id: str) -> Any:
        reads.append(record_id)
        return get(record_id)

    monkeypatch.setattr(book.store, "get", counted_get)
    monkeypatch.setattr(book.store, "all", None)  # listing must never scan
    monkeypatch.setattr(book.store, "page", None)
    page, next_id = book.page(99_901, 100)
    assert [c["id"] for c in page] == [str(n) for n in range(99_901, 100_001)] and next_id is None
    assert len(reads) == 100
    reads.clear()
    page, next_id = book.page(50_000, 100)
    assert len(page) == 100 and next_id == 50_100 and len(reads) == 100
