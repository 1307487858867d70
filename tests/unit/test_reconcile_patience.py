"""Reconciliation waits out rate limits instead of failing, renewing its lock during long waits."""

from __future__ import annotations

import pytest

from connectors.errors import RateLimited
from registrations.reconcile.lock import FenceLost
from registrations.reconcile.patience import Patience


def test_a_throttled_call_is_asked_again_after_the_wait_it_named() -> None:
    slept: list[float] = []
    answers = iter([RateLimited("spent", system="hubspot", retry_after=2.0), "page"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    patience = Patience(sleep=slept.append)
    assert patience.call(call) == "page"
    assert slept == [2.0] and patience.waited == 2.0


def test_a_long_wait_is_sliced_with_a_heartbeat_and_a_lost_fence_stops_it() -> None:
    slept: list[float] = []
    beats = iter([None, FenceLost("a newer run")])

    def beat() -> None:
        outcome = next(beats)
        if outcome is not None:
            raise outcome

    def throttled() -> None:
        raise RateLimited("spent", system="smaregi", retry_after=100.0)

    with pytest.raises(FenceLost):
        Patience(sleep=slept.append, beat=beat).call(throttled)
    assert slept == [30.0, 30.0]


def test_throttling_past_the_limit_is_a_failure() -> None:
    def throttled() -> None:
        raise RateLimited("spent", system="shopify", retry_after=400.0)

    with pytest.raises(RateLimited):
        Patience(sleep=lambda seconds: None, limit=600.0).call(throttled)
