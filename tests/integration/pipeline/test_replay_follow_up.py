"""Over sockets, with a real worker: a replay whose Smaregi success reopens the email step (the member
number the welcome could not carry) gets that email out at once, not after the 15-minute stalled
sweep (there is no beat here at all).

Found by the chaos suite (issue 17). The replay queues [smaregi, hubspot]; Smaregi's success reopens
the email step and queues [hubspot, email]. The two HubSpot deliveries meet: one holds the step and
the other's chain ends there. When the follow-up's was the one that ended, the replay's chain ended
with HubSpot and nobody ran the email step. With HubSpot slowed down they meet for every
registration; before the fix, 5 of 24 registrations waited. The deterministic account of one such
meeting is tests/unit/test_replay_reopened_step_queued.py.
"""

from __future__ import annotations

import time
from typing import Any

from registrations.dead_letters import DeadLetters
from registrations.models import Registration
from tests.support.pipeline import Pipeline, person

COUNT = 24


def numbers_mailed(pipeline: Pipeline, ids: list[str]) -> dict[str, bool]:
    """Whether each registration's member number has reached it by mail."""
    with pipeline.database.session() as session:
        mailed = {}
        for registration_id in ids:
            registration = session.get(Registration, registration_id)
            assert registration is not None
            mailed[registration_id] = registration.member_number_mailed_at is not None
        return mailed


def test_a_replay_mails_the_member_number_without_waiting_for_the_sweep(
    pipeline: Pipeline, sandbox: Any
) -> None:
    one_try = "attempts=1,base=0.1,cap=0.1,budget=60"
    pipeline.configure(RETRY_POLICY_SMAREGI=one_try, RETRY_POLICY_HUBSPOT=one_try)
    sandbox.faults("smaregi", error_rate=1.0)
    sandbox.faults("hubspot", error_rate=1.0)
    pipeline.start_worker(concurrency=8)  # no beat: no relay, no stalled sweep
    ids = [pipeline.register(person(number)) for number in range(COUNT)]
    # Smaregi and HubSpot dead-lettered; the welcome went out without the number.
    assert set(pipeline.wait_settled(ids, timeout=90).values()) == {"partial"}
    assert not any(numbers_mailed(pipeline, ids).values())
    sandbox.faults("smaregi")
    sandbox.faults("hubspot", latency_ms=400)  # back, slowly: the two HubSpot deliveries meet

    letters = DeadLetters(pipeline.celery().membersync.database)  # publishes after each commit
    for registration_id in ids:
        letters.replay(registration_id)
    deadline = time.monotonic() + 40
    while not all(numbers_mailed(pipeline, ids).values()) and time.monotonic() < deadline:
        time.sleep(0.3)

    waiting = [registration_id for registration_id, done in numbers_mailed(pipeline, ids).items() if not done]
    assert not waiting, pipeline.describe_unsettled(waiting)
    assert set(pipeline.wait_settled(ids, timeout=30).values()) == {"synced"}
