"""The shared sandbox parts: fault configuration and reproducibility, held requests, the indexed store."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask, Response, jsonify

from sandbox.common import (
    DuplicateKeyError,
    Fault,
    FaultConfig,
    FaultInjector,
    RecordStore,
    answer_at_once,
    drawn_fault,
    install_controls,
)


def tiny_emulator() -> tuple[Flask, RecordStore]:
    """An emulator with one write endpoint, enough to exercise the shared controls."""
    app = Flask("tiny")
    store = RecordStore(unique={"code": lambda record: record["code"]})

    def throttle() -> Response:
        response = jsonify({"error": "throttled"})
        response.status_code = 429
        return response

    install_controls(
        app, state=lambda: {"customers": store.all()}, reset=store.clear, render_throttle=throttle
    )

    @app.post("/members/<code>")
    def create_member(code: str) -> Response:
        return jsonify(store.insert({"code": code}))

    @app.get("/members")
    def list_members() -> Response:
        # A read writes nothing: it opts out of the timeout-after-commit hold.
        fault = drawn_fault()
        answer_at_once()
        return jsonify({"members": store.all(), "fault": fault.value})

    return app, store


@pytest.fixture
def tiny(serve) -> str:
    app, _ = tiny_emulator()
    return serve(app).url


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"throttle_rate": -0.1}, "throttle_rate"),
        ({"timeout_after_commit_rate": "half"}, "timeout_after_commit_rate"),
        ({"error_rate": True}, "error_rate"),
        ({"latency_ms": 2.5}, "latency_ms"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"seed": "abc"}, "seed"),
        ({"chaos": 1}, "chaos"),
        ([1, 2], "object"),
    ],
)
def test_fault_bodies_are_validated(tiny, body, complaint):
    response = requests.post(f"{tiny}/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert complaint in response.json()["error"]


def test_empty_body_clears_faults(tiny):
    requests.post(f"{tiny}/_sandbox/faults", json={"error_rate": 1})
    assert requests.post(f"{tiny}/members/a").status_code == 500
    requests.post(f"{tiny}/_sandbox/faults", json={})
    assert requests.post(f"{tiny}/members/a").status_code == 200
    state = requests.get(f"{tiny}/_sandbox/state").json()
    assert state["faults"] == FaultConfig().as_json()
    assert state["requests"] == {"create_member": 2, "fault.error": 1}


def test_same_seed_gives_the_same_fault_sequence(tiny):
    def run() -> list[int]:
        requests.post(f"{tiny}/_sandbox/reset")
        requests.post(f"{tiny}/_sandbox/faults", json={"error_rate": 0.3, "throttle_rate": 0.3, "seed": 7})
        return [requests.post(f"{tiny}/members/m{n}").status_code for n in range(30)]

    first = run()
    assert first == run()
    assert {200, 429, 500} <= set(first)


def test_decisions_follow_the_seed_and_the_rates():
    injector = FaultInjector()
    injector.configure(FaultConfig(error_rate=0.2, throttle_rate=0.2, timeout_after_commit_rate=0.2, seed=3))
    first = [injector.decide() for _ in range(200)]
    injector.configure(FaultConfig(error_rate=0.2, throttle_rate=0.2, timeout_after_commit_rate=0.2, seed=3))
    assert first == [injector.decide() for _ in range(200)]
    assert set(first) == set(Fault)
    injector.clear()
    assert {injector.decide() for _ in range(50)} == {Fault.NONE}


def test_latency_is_added_to_each_request(tiny):
    requests.post(f"{tiny}/_sandbox/faults", json={"latency_ms": 200})
    started = time.monotonic()
    assert requests.post(f"{tiny}/members/slow").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_timeout_after_commit_stores_the_write_and_reset_releases_the_request(tiny):
    requests.post(f"{tiny}/_sandbox/faults", json={"timeout_after_commit_rate": 1})
    with pytest.raises(requests.Timeout):
        requests.post(f"{tiny}/members/dup", timeout=0.3)
    assert [r["code"] for r in requests.get(f"{tiny}/_sandbox/state").json()["customers"]] == ["dup"]

    answered: list[int] = []
    patient = threading.Thread(
        target=lambda: answered.append(requests.post(f"{tiny}/members/late", timeout=30).status_code)
    )
    patient.start()
    time.sleep(0.3)
    assert answered == []  # still held
    requests.post(f"{tiny}/_sandbox/reset")
    patient.join(timeout=5)
    assert answered == [200]


def test_a_view_that_wrote_nothing_can_answer_at_once(tiny):
    requests.post(f"{tiny}/_sandbox/faults", json={"timeout_after_commit_rate": 1})
    read = requests.get(f"{tiny}/members", timeout=2)
    assert read.json()["fault"] == "timeout_after_commit"  # drawn, and seen by the view
    with pytest.raises(requests.Timeout):
        requests.post(f"{tiny}/members/held", timeout=0.3)  # a write without the opt-out is held
    requests.post(f"{tiny}/_sandbox/faults", json={})
    assert requests.get(f"{tiny}/members", timeout=2).json()["fault"] == "none"


def test_stopping_a_server_releases_held_requests(serve):
    app, _ = tiny_emulator()
    server = serve(app)
    requests.post(f"{server.url}/_sandbox/faults", json={"timeout_after_commit_rate": 1})
    outcome: list[Any] = []

    def wait_for_answer() -> None:
        try:
            outcome.append(requests.post(f"{server.url}/members/x", timeout=30).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_for_answer)
    waiter.start()
    time.sleep(0.2)
    server.stop()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and outcome


class CountingKey:
    """A key function that counts its calls, to show lookups never scan the records."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.calls = 0

    def __call__(self, record: dict[str, Any]) -> str | None:
        self.calls += 1
        return record.get(self.field)


def test_store_holds_100k_records_with_index_lookups_that_never_scan():
    by_code, by_email = CountingKey("code"), CountingKey("email")
    store = RecordStore(id_field="customerId", unique={"code": by_code}, multi={"email": by_email})
    for number in range(100_000):
        store.insert({"code": f"C{number}", "email": f"shared{number % 50_000}@example.jp"})
    assert len(store) == 100_000
    by_code.calls = by_email.calls = 0

    assert store.get("99999")["code"] == "C99998"
    assert store.find("code", "C54321")["customerId"] == "54322"
    assert [m["code"] for m in store.find_all("email", "shared7@example.jp")] == ["C7", "C50007"]
    assert store.find("code", "missing") is None
    assert by_code.calls == by_email.calls == 0  # answered from the indexes alone

    store.update("8", lambda member: {**member, "code": "RENAMED", "email": "new@example.jp"})
    # One update touches the key functions a fixed number of times, however many records there are.
    assert by_code.calls <= 3 and by_email.calls <= 3
    assert store.find("code", "C7") is None and store.find("code", "RENAMED")["customerId"] == "8"
    assert [m["code"] for m in store.find_all("email", "shared7@example.jp")] == ["C50007"]
    assert store.page(99_998, 10)[-1]["code"] == "C99999"


def test_store_keeps_unique_keys_unique_under_concurrent_writes():
    store = RecordStore(unique={"code": lambda record: record["code"]})

    def insert(code: str) -> str:
        try:
            return store.insert({"code": code})["id"]
        except DuplicateKeyError as exc:
            return f"duplicate of {exc.existing_id}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        distinct = list(pool.map(insert, [f"D{n}" for n in range(500)]))
        same = list(pool.map(insert, ["SAME"] * 100))
    assert len(set(distinct)) == 500
    winners = [outcome for outcome in same if not outcome.startswith("duplicate")]
    assert len(winners) == 1
    assert set(same) - set(winners) == {f"duplicate of {winners[0]}"}
    assert len(store) == 501
