"""SmaregiClient against the sandbox Smaregi emulator over a real socket, built from Settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.errors import PermanentError, ThrottledError, TransientError
from connectors.http import HttpClient
from connectors.smaregi import SmaregiClient, member_code
from sandbox.common import ThreadedServer
from sandbox.smaregi import SmaregiSettings, create_app

pytestmark = pytest.mark.integration

EMAIL = "hanako.yamada@example.com"
KEY = b"test-member-code-key"


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "smaregi_api_url": url,
        "smaregi_id_url": url,  # the emulator serves the token endpoint on the API's host
        "smaregi_contract_id": "sandbox",
        "smaregi_client_id": "sandbox-client",
        "smaregi_client_secret": Secret("sandbox-secret"),
        "http_read_timeout_seconds": 5.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def smaregi_server() -> Iterator[ThreadedServer]:
    # A generous rate limit: these tests are about behaviour, the throttling test has its own server.
    with ThreadedServer(create_app(SmaregiSettings(rate_per_second=1000)), port=0) as server:
        yield server


@pytest.fixture
def smaregi_url(smaregi_server: ThreadedServer) -> str:
    requests.post(f"{smaregi_server.url}/_sandbox/reset", timeout=5).raise_for_status()
    return smaregi_server.url


@pytest.fixture
def smaregi(smaregi_url: str) -> SmaregiClient:
    return SmaregiClient.from_settings(settings_for(smaregi_url))


def request_counts(url: str) -> dict[str, int]:
    counts: dict[str, int] = requests.get(f"{url}/_sandbox/state", timeout=5).json()["requests"]
    return counts


def test_one_token_serves_many_calls(smaregi: SmaregiClient, smaregi_url: str) -> None:
    for _ in range(3):
        assert smaregi.list_members() == []
    smaregi.find_member_by_code("0")
    counts = request_counts(smaregi_url)
    assert counts["issue_token"] == 1 and counts["list_members"] == 4


def test_worker_threads_share_one_token_request(smaregi: SmaregiClient, smaregi_url: str) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: smaregi.find_member_by_code("0"), range(16)))
    assert answers == [None] * 16
    assert request_counts(smaregi_url)["issue_token"] == 1


def test_create_then_find_by_code_id_and_update_time(smaregi: SmaregiClient) -> None:
    code = member_code(EMAIL, key=KEY)
    created = smaregi.create_member(
        customer_code=code,
        mail_address=EMAIL,
        last_kana="ヤマダ",
        first_kana="ハナコ",
        phone_number="09012345678",
        sex="2",
        birth_date="1990-04-01",
        mail_receive_flag=True,
        last_name="山田",
        first_name="花子",
    )
    assert created.customer_code == code and created.mail_address == EMAIL and created.point == "0"

    assert created.updated_at is not None
    assert smaregi.list_members(updated_from=created.updated_at) == [created]
    assert smaregi.find_member_by_code(code) == created
    assert smaregi.get_member(created.customer_id) == created
    assert smaregi.get_member("999999") is None
    assert smaregi.find_member_by_code(member_code(EMAIL, key=KEY, salt=1)) is None


def test_a_refused_create_of_a_taken_code_is_settled_by_looking_the_code_up(smaregi: SmaregiClient) -> None:
    code = member_code(EMAIL, key=KEY)
    first = smaregi.create_member(customer_code=code, mail_address=EMAIL, last_name="山田", first_name="花子")
    with pytest.raises(PermanentError):  # what the refusal says is not read
        smaregi.create_member(customer_code=code, mail_address=EMAIL, last_name="山田", first_name="花子")
    assert smaregi.find_member_by_code(code) == first


def test_a_lost_create_answer_is_recovered_through_the_code(smaregi_url: str, smaregi: SmaregiClient) -> None:
    client = SmaregiClient.from_settings(settings_for(smaregi_url, http_read_timeout_seconds=0.5))
    client.list_members()  # the token first: the fault below would hold it too
    code = member_code(EMAIL, key=KEY)
    faults = f"{smaregi_url}/_sandbox/faults"
    requests.post(faults, json={"timeout_after_commit_rate": 1.0}, timeout=5).raise_for_status()
    try:
        with pytest.raises(TransientError):
            client.create_member(customer_code=code, mail_address=EMAIL, last_name="山田", first_name="花子")
    finally:
        requests.post(faults, json={}, timeout=5).raise_for_status()  # lets the held answer go

    with pytest.raises(PermanentError):
        smaregi.create_member(customer_code=code, mail_address=EMAIL, last_name="山田", first_name="花子")
    stored = smaregi.find_member_by_code(code)
    assert stored is not None and stored.mail_address == EMAIL
    assert len(smaregi.list_members()) == 1


def test_update_and_points(smaregi: SmaregiClient) -> None:
    member = smaregi.create_member(
        customer_code=member_code(EMAIL, key=KEY), mail_address=EMAIL, last_name="山田", first_name="花子"
    )

    updated = smaregi.update_member(member.customer_id, first_name="華子", mail_receive_flag=False)
    assert updated.first_name == "華子" and updated.customer_code == member.customer_code

    added = smaregi.add_points(member.customer_id, 100)
    subtracted = smaregi.add_points(member.customer_id, -30)
    assert (added.point, subtracted.point) == (100, 70)
    stored = smaregi.get_member(member.customer_id)
    assert stored is not None and stored.point == "70" and stored.points == 70
    with pytest.raises(PermanentError):
        smaregi.add_points(member.customer_id, -71)  # never below zero


def test_every_point_movement_is_a_transaction_read_back_with_its_own_scope(smaregi_url: str) -> None:
    scopes = "pos.customers:read pos.customers:write pos.transactions:read"
    smaregi = SmaregiClient.from_settings(settings_for(smaregi_url, smaregi_scopes=scopes))
    member = smaregi.create_member(
        customer_code=member_code(EMAIL, key=KEY), mail_address=EMAIL, last_name="山田", first_name="花子"
    )
    since = datetime.now(UTC) - timedelta(seconds=5)
    added = smaregi.add_points(member.customer_id, 100)
    subtracted = smaregi.add_points(member.customer_id, -30)

    moved = smaregi.point_transactions(member.customer_id, since=since)
    assert [(t.transaction_head_id, t.division, t.point) for t in moved] == [
        (added.transaction_head_ids[0], "6", 100),
        (subtracted.transaction_head_ids[0], "7", 30),
    ]
    assert smaregi.point_transactions(member.customer_id, since=since, division="7") == moved[1:]
    assert smaregi.point_transactions("424242", since=since) == []


def test_an_email_filter_is_not_a_thing_smaregi_has(smaregi: SmaregiClient, smaregi_url: str) -> None:
    for email in (EMAIL, "taro@example.com"):
        smaregi.create_member(
            customer_code=member_code(email, key=KEY), mail_address=email, last_name="山田", first_name="花子"
        )
    token = requests.post(
        f"{smaregi_url}/app/sandbox/token",
        auth=("sandbox-client", "sandbox-secret"),
        data={"grant_type": "client_credentials", "scope": "pos.customers:read"},
        timeout=5,
    ).json()["access_token"]
    ignored = requests.get(
        f"{smaregi_url}/sandbox/pos/customers",
        params={"mail_address": EMAIL},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert len(ignored.json()) == 2  # an unknown filter is ignored, so it can never be relied on


def test_iter_members_follows_every_page(smaregi: SmaregiClient) -> None:
    emails = [f"member{i}@example.com" for i in range(5)]
    for email in emails:
        smaregi.create_member(
            customer_code=member_code(email, key=KEY), mail_address=email, last_name="山田", first_name="花子"
        )
    assert sorted(member.mail_address or "" for member in smaregi.iter_members(page_size=2)) == emails


def test_a_missing_member_or_bad_field_is_permanent(smaregi: SmaregiClient) -> None:
    with pytest.raises(PermanentError):
        smaregi.add_points("424242", 1)
    with pytest.raises(PermanentError) as refused:
        smaregi.create_member(
            customer_code=member_code(EMAIL, key=KEY),
            mail_address=EMAIL,
            sex="x",
            last_name="山田",
            first_name="花子",
        )
    assert "sex" in str(refused.value) and "@" not in str(refused.value)


def test_an_expired_token_is_replaced_after_one_401() -> None:
    emulator = create_app(SmaregiSettings(token_expires_in=1, rate_per_second=1000))
    frozen = time.monotonic()
    with ThreadedServer(emulator, port=0) as server:
        client = SmaregiClient(
            HttpClient(system="smaregi", base_url=server.url),
            HttpClient(system="smaregi", base_url=server.url),
            contract_id="sandbox",
            client_id="sandbox-client",
            client_secret="sandbox-secret",
            scopes="pos.customers:read pos.customers:write",
            clock=lambda: frozen,  # our clock stands still: the token looks fresh after it expired
        )
        client.list_members()
        time.sleep(1.2)
        assert client.list_members() == []
        counts = request_counts(server.url)
    assert counts["issue_token"] == 2 and counts["list_members"] == 3  # one refused, one retried


def test_wrong_credentials_are_permanent(smaregi_url: str) -> None:
    client = SmaregiClient.from_settings(settings_for(smaregi_url, smaregi_client_secret=Secret("wrong")))
    with pytest.raises(PermanentError) as refused:
        client.list_members()
    assert "invalid_client" in str(refused.value) and "wrong" not in str(refused.value)


def test_the_rate_limit_answers_429_with_retry_after() -> None:
    with ThreadedServer(create_app(SmaregiSettings(read_per_second=3)), port=0) as server:
        client = SmaregiClient.from_settings(settings_for(server.url))
        with pytest.raises(ThrottledError) as throttled:
            for _ in range(10):
                client.find_member_by_code("0")
    assert throttled.value.status == 429 and throttled.value.retry_after is not None
    assert throttled.value.retry_after >= 1


def test_the_default_buckets_keep_within_the_sandbox_read_and_write_budgets(clean_redis: str) -> None:
    import redis

    from connectors.tokenbucket import client_limiters

    # Production defaults on both sides: the emulator's 10 reads/s and 4 writes/s, our buckets sized
    # from SMAREGI_READ/WRITE_RATE_PER_SECOND's defaults. Ten writes and thirty reads as fast as the
    # buckets allow: never a 429 from the vendor.
    with ThreadedServer(create_app(SmaregiSettings()), port=0) as server:
        settings = settings_for(server.url)
        limiters = client_limiters(settings, redis.Redis.from_url(clean_redis))["smaregi"]
        client = SmaregiClient.from_settings(settings, **limiters)

        def patiently(call: Any) -> Any:
            while True:
                try:
                    return call()
                except ThrottledError as error:
                    assert error.status is None, "the vendor answered 429"  # ours: RateLimited
                    time.sleep(error.retry_after or 0.05)

        for number in range(10):
            email = f"m{number}@example.com"
            patiently(
                lambda email=email: client.create_member(
                    customer_code=member_code(email, key=KEY),
                    mail_address=email,
                    last_name="山田",
                    first_name="花子",
                )
            )
        for _ in range(30):
            patiently(lambda: client.list_members(limit=1))
        counts = request_counts(server.url)
    assert counts["create_member"] == 10 and counts["list_members"] == 30
