"""The ops console's pure helpers: a dead letter's reason, percentiles, and the replay hint naming the
console. (The address it searches by is `canonical_email`: tests/unit/test_email_address.py.)"""

from __future__ import annotations

import pytest

from registrations.dead_letters import dead_letter_reason
from registrations.hints import dead_letter_summary, replay_hint
from registrations.ops_queries import percentile


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("retries_exhausted: hubspot POST /crm/v3/...: HTTP 502: INTERNAL_ERROR", "retries_exhausted"),
        ("permanent: HTTP 403: refused", "permanent"),
        ("ambiguous_match: 2 members", "ambiguous_match"),
        ("worker_lost: WorkerLostError", "worker_lost"),
        ("no colon at all", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_a_dead_letters_reason_is_the_text_before_the_first_colon(message: str | None, reason: str) -> None:
    assert dead_letter_reason(message) == reason


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert percentile([], 0.5) is None


def test_the_replay_hint_names_the_console_the_cli_and_flower() -> None:
    hint = replay_hint(17)
    assert "/ops/dead-letters/17" in hint
    assert "membersync dlq replay 17" in hint
    assert 'POST /api/task/async-apply/membersync.replay {"args": ["17"]}' in hint
    assert "/ops/dead-letters/17" in dead_letter_summary("hubspot", "r-1", 17, "permanent")
