"""The sign-up bonus with a real worker against the Smaregi emulator over sockets: its answer is lost
after Smaregi committed it (timeout after commit), and it is still applied exactly once."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from registrations.models import PointMovement
from registrations.states import PointMovementState
from tests.support.pipeline import Pipeline, person, wait_for

BONUS = 500
EMAIL = "member40@example.com"


def movement_states(pipeline: Pipeline) -> list[str]:
    with pipeline.database.session() as session:
        return list(session.scalars(select(PointMovement.state)))


def test_a_signup_bonus_whose_answer_is_lost_is_applied_exactly_once(
    pipeline: Pipeline, sandbox: Any
) -> None:
    pipeline.configure(
        SIGNUP_BONUS_POINTS=str(BONUS),
        SMAREGI_SCOPES="pos.customers:read pos.customers:write pos.transactions:read",
    )
    # Every point/add is committed by Smaregi and its answer never comes (the rest answers).
    faults = {"timeout_after_commit_rate": 1.0, "faulted_paths": "/point/add$"}
    requests.post(f"{sandbox.urls['smaregi']}/_sandbox/faults", json=faults, timeout=5).raise_for_status()
    pipeline.start_worker()

    registration_id = pipeline.register(person(40))

    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}
    wait_for(lambda: movement_states(pipeline) == [PointMovementState.APPLIED], what="the bonus applied")
    state = sandbox.state("smaregi")
    [member] = [m for m in state["customers"] if m["mailAddress"] == EMAIL]
    assert member["point"] == str(BONUS)  # the bonus, once
    moved = [t for t in state["transactions"] if t["customerId"] == member["customerId"]]
    assert [(t["transactionHeadDivision"], t["point"]) for t in moved] == [("6", str(BONUS))]
    assert state["requests"]["add_points"] == 1  # never sent again: the retry read the transactions
    assert state["requests"]["fault.timeout_after_commit"] == 1
    with pipeline.database.session() as session:
        [movement] = session.scalars(select(PointMovement))
        assert movement.transaction_head_ids == [moved[0]["transactionHeadId"]]
        assert movement.registration_id == registration_id and movement.attempts == 1
    sandbox.faults("smaregi")  # lets the held answer go
