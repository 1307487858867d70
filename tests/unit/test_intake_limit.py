"""The public intake's sliding-window counter (app.limits.IntakeLimit), counted in process memory."""

from __future__ import annotations

from app.limits import IntakeLimit


def test_a_window_allows_its_amount_and_refuses_without_counting_the_refusal() -> None:
    limit = IntakeLimit("3/minute", None)
    verdicts = [limit.hit("api", "client", now=600.0 + n) for n in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]
    # Full on its own: wait for the next window (it starts at 660).
    assert verdicts[3].retry_after == 660 - 603 and verdicts[3].reset_at == 660
    # Another client and another endpoint have their own allowance.
    assert limit.hit("api", "other", now=605.0).allowed
    assert limit.hit("form", "client", now=605.0).allowed


def test_the_last_window_weighs_by_its_overlap() -> None:
    limit = IntakeLimit("4/minute", None)
    for n in range(4):
        assert limit.hit("api", "client", now=659.0 + n / 10).allowed
    # 15 s into the next window three quarters of the last one still count: floor(4 * 0.75) = 3.
    assert limit.hit("api", "client", now=675.0).allowed
    refused = limit.hit("api", "client", now=675.0)
    assert not refused.allowed
    # One more fits once the last window weighs less than 3 of 4: from 660 + 60 * (1 - 3/4) = 675 on
    # it is 3 + 1; the refusal says how long until floor(4 * overlap) + 1 < 4, i.e. overlap < 3/4.
    assert 1 <= refused.retry_after <= 15
    later = limit.hit("api", "client", now=675.0 + refused.retry_after)
    assert later.allowed


def test_an_unreachable_redis_counts_in_memory() -> None:
    limit = IntakeLimit("2/minute", "redis://127.0.0.1:1/0")
    assert [limit.hit("api", "client", now=60.0).allowed for _ in range(3)] == [True, True, False]
