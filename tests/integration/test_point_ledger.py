"""The point ledger with the real Smaregi connector against the emulator over a socket: a bonus whose
answer is lost after Smaregi committed it is settled from the member's transactions, and one that
never reached Smaregi is sent again, each moving the points exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config.settings import Secret, Settings
from connectors.smaregi import SmaregiClient, member_code
from registrations.database import Database
from registrations.points import SIGNUP_BONUS, PointLedger
from registrations.states import PointMovementState
from sandbox.common import ThreadedServer
from sandbox.smaregi import SmaregiSettings, create_app

pytestmark = pytest.mark.integration

BONUS = 300
EMAIL = "hanako@example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(create_app(SmaregiSettings(rate_per_second=1000)), port=0) as running:
        yield running


@pytest.fixture
def url(server: ThreadedServer) -> Iterator[str]:
    requests.post(f"{server.url}/_sandbox/reset", timeout=5).raise_for_status()
    yield server.url
    requests.post(f"{server.url}/_sandbox/faults", json={}, timeout=5).raise_for_status()


def client(url: str) -> SmaregiClient:
    # The test is about a lost answer: a short read timeout, so it is lost in a second.
    settings = Settings(
        environment="test",
        smaregi_api_url=url,
        smaregi_id_url=url,
        smaregi_contract_id="sandbox",
        smaregi_client_id="sandbox-client",
        smaregi_client_secret=Secret("sandbox-secret"),
        smaregi_scopes="pos.customers:read pos.customers:write pos.transactions:read",
        http_read_timeout_seconds=1.0,
    )
    return SmaregiClient.from_settings(settings)


def faults(url: str, **body: Any) -> None:
    requests.post(f"{url}/_sandbox/faults", json=body, timeout=5).raise_for_status()


def smaregi_state(url: str) -> dict[str, Any]:
    state: dict[str, Any] = requests.get(f"{url}/_sandbox/state", timeout=5).json()
    return state


def new_member(smaregi: SmaregiClient) -> str:
    member = smaregi.create_member(
        customer_code=member_code(EMAIL, key=b"k"), mail_address=EMAIL, last_name="山田", first_name="花子"
    )
    return member.customer_id


def test_a_bonus_whose_answer_is_lost_after_commit_is_applied_exactly_once(
    url: str, database: Database
) -> None:
    smaregi = client(url)
    customer_id = new_member(smaregi)
    ledger = PointLedger(database)
    movement_id = ledger.plan(SIGNUP_BONUS, None, customer_id, BONUS)
    faults(url, timeout_after_commit_rate=1, faulted_paths="/point/add$")

    unclear = ledger.apply(movement_id, smaregi)
    assert unclear is not None and unclear.state == PointMovementState.UNCLEAR

    applied = ledger.apply(movement_id, smaregi)  # the retry reads the transactions first

    state = smaregi_state(url)
    [transaction] = state["transactions"]
    assert applied is not None and applied.state == PointMovementState.APPLIED
    assert applied.transaction_head_ids == (transaction["transactionHeadId"],)
    assert state["customers"][0]["point"] == str(BONUS)
    assert state["requests"]["add_points"] == 1


def test_a_bonus_that_never_reached_smaregi_is_sent_again_once(url: str, database: Database) -> None:
    smaregi = client(url)
    customer_id = new_member(smaregi)
    ledger = PointLedger(database, settle_seconds=1)
    movement_id = ledger.plan(SIGNUP_BONUS, None, customer_id, BONUS)
    faults(url, error_rate=1, faulted_paths="/point/add$")  # a 5xx: unclear to us, nothing written

    unclear = ledger.apply(movement_id, smaregi)
    assert unclear is not None and unclear.state == PointMovementState.UNCLEAR
    faults(url)
    time.sleep(1)  # "not there" is trusted a moment after the last send
    applied = ledger.apply(movement_id, smaregi)

    state = smaregi_state(url)
    assert applied is not None and applied.state == PointMovementState.APPLIED and applied.attempts == 2
    assert [t["point"] for t in state["transactions"]] == [str(BONUS)]
    assert state["customers"][0]["point"] == str(BONUS) and ledger.applied_total(customer_id) == BONUS
