"""What HttpClient sends itself (not through Session.request): headers, body, query, ids, no cookies."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses

from connectors import http
from connectors.errors import PermanentError
from connectors.http import HttpClient

BASE = "https://vendor.test"
URL = f"{BASE}/things"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def client() -> HttpClient:
    return HttpClient(system="vendor", base_url=BASE, headers={"Authorization": "Bearer token"})


def test_a_call_carries_the_client_headers_its_own_and_a_compact_json_body(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(URL, json={"ok": True})
    client().request("POST", "/things", json={"name": "花子", "points": [1, 2]}, headers={"X-Extra": "1"})
    sent = mocked.calls[0].request
    assert sent.headers["Authorization"] == "Bearer token"
    assert sent.headers["User-Agent"] == http.USER_AGENT
    assert sent.headers["X-Extra"] == "1"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == b'{"name":"\\u82b1\\u5b50","points":[1,2]}'
    assert json.loads(sent.body) == {"name": "花子", "points": [1, 2]}
    assert sent.headers["Content-Length"] == str(len(sent.body))


def test_the_query_drops_none_as_requests_does(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json={"ok": True})
    client().request("GET", "/things", params={"email": "a+b@example.com", "after": None, "p": ["x", None]})
    assert mocked.calls[0].request.url == f"{URL}?email=a%2Bb%40example.com&p=x"


def test_request_ids_differ_per_call_and_per_process(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json={"ok": True})
    mocked.get(URL, json={"ok": True})
    api = client()
    api.request("GET", "/things")
    api.request("GET", "/things")
    first, second = (call.request.headers["X-Request-Id"] for call in mocked.calls)
    assert first != second
    prefix = http._request_ids.prefix
    http._request_ids.reset()  # what a forked child does
    assert http._request_ids.prefix != prefix
    assert not http._request_ids.next().startswith(prefix)


def test_a_cookie_a_vendor_sets_is_never_sent_back(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json={"ok": True}, headers={"Set-Cookie": "lb=abc; Path=/"})
    mocked.get(URL, json={"ok": True})
    api = client()
    api.request("GET", "/things")
    api.request("GET", "/things")
    assert "Cookie" not in mocked.calls[1].request.headers
    assert not api.session.cookies


def test_an_api_call_answered_with_a_redirect_fails_instead_of_following_it(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(URL, status=301, headers={"Location": f"{BASE}/elsewhere"})
    with pytest.raises(PermanentError, match="HTTP 301"):
        client().request("POST", "/things", json={"a": 1})
    assert len(mocked.calls) == 1
