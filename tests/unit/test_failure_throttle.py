"""The sign-in throttle never runs the (slow, scrypt) password check for a blocked guesser."""

from __future__ import annotations

from config.credentials import FailureThrottle


def test_a_blocked_client_costs_no_password_check() -> None:
    throttle = FailureThrottle(None, b"k" * 32, limit="3/minute")
    asked: list[str] = []

    def wrong() -> bool:
        asked.append("checked")
        return False

    verdicts = [throttle.check("203.0.113.9", "alice", wrong) for _ in range(10)]
    assert [verdict.allowed for verdict in verdicts] == [False] * 10
    assert [verdict.retry_after is not None for verdict in verdicts] == [False] * 3 + [True] * 7
    assert asked == ["checked"] * 3  # the seven blocked attempts ran no check at all


def test_a_right_pair_passes_when_nothing_is_blocked() -> None:
    throttle = FailureThrottle(None, b"k" * 32, limit="3/minute")
    assert throttle.check("203.0.113.10", "bob", lambda: True).allowed
    assert throttle.check("203.0.113.10", "bob", True).allowed
