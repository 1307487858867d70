"""Faults with `ttl_seconds` clear themselves: a fault switched on beside a running dev cannot stay on."""

from __future__ import annotations

import threading
import time

import requests

from sandbox.common import FaultConfig, FaultConfigError
from sandbox.common.faults import Fault, FaultInjector
from sandbox.smaregi import create_app


def wait_until(condition, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_configuration_with_a_ttl_clears_itself_and_lets_held_requests_go() -> None:
    injector = FaultInjector()
    injector.configure(FaultConfig.parse({"error_rate": 1, "ttl_seconds": 0.3}))
    assert injector.decide() is Fault.ERROR
    held = threading.Thread(target=injector.hang)
    held.start()
    assert wait_until(lambda: injector.config == FaultConfig())
    held.join(2)
    assert not held.is_alive() and injector.decide() is Fault.NONE


def test_a_later_configuration_is_not_cleared_by_an_earlier_ttl() -> None:
    injector = FaultInjector()
    injector.configure(FaultConfig.parse({"error_rate": 1, "ttl_seconds": 0.2}))
    injector.configure(FaultConfig.parse({"throttle_rate": 1}))
    time.sleep(0.5)
    assert injector.config.throttle_rate == 1.0


def test_a_ttl_must_be_a_positive_number() -> None:
    for wrong in (0, -1, "60", True):
        try:
            FaultConfig.parse({"error_rate": 1, "ttl_seconds": wrong})
        except FaultConfigError:
            continue
        raise AssertionError(f"accepted ttl_seconds={wrong!r}")


def test_smaregi_refusals_set_with_a_ttl_expire_with_the_faults(serve) -> None:
    url = serve(create_app()).url
    body = {"required_fields": ["entryDate"], "error_rate": 0.5, "ttl_seconds": 0.3}
    answer = requests.post(f"{url}/_sandbox/faults", json=body, timeout=5)
    assert answer.status_code == 200 and answer.json()["faults"]["ttl_seconds"] == 0.3

    def state() -> dict:
        return dict(requests.get(f"{url}/_sandbox/state", timeout=5).json())

    assert state()["refusals"]["required_fields"] == ["entryDate"]
    assert wait_until(lambda: state()["refusals"]["required_fields"] == [])
    assert state()["faults"]["error_rate"] == 0.0
