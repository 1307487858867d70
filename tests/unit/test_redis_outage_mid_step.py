"""Redis going away in the middle of a step (a restart: the person lock and the rate limits live
there) is a transient failure: the step goes back to pending and is retried, instead of staying
`running` under a live worker, whose redelivered message is dropped as held until the 10-minute step
lease runs out (found by the chaos suite with the production step lease, issue 17).

In-process: SQLite, fakes, Celery eager (a retry runs at once).
"""

from __future__ import annotations

import redis

from tests.support.world import World

REFUSED = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_redis_refusing_mid_step_is_retried_not_left_running(world: World) -> None:
    registration_id = world.accept()
    world.run("shopify", registration_id)
    world.smaregi.fail_next("create_member", REFUSED)

    result = world.run("smaregi", registration_id)

    assert result.successful(), result.traceback
    step = world.registration(registration_id).step("smaregi")
    assert (step.state, step.attempts) == ("succeeded", 2)
    assert world.smaregi.count("create_member") == 2  # the refused call changed nothing
    assert len(world.smaregi.members) == 1


def test_redis_refusing_after_the_record_leaves_the_step_done(world: World) -> None:
    """Only the lock's release failed: the recorded outcome stands, nothing runs twice."""
    registration_id = world.accept()
    world.run("shopify", registration_id)
    locks = world.celery.membersync._locks
    real_hold = locks.hold

    class ReleaseFails:
        def __init__(self, email: str) -> None:
            self.inner = real_hold(email)

        def __enter__(self) -> None:
            self.inner.__enter__()

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)
            raise REFUSED

    locks.hold = ReleaseFails  # type: ignore[method-assign]
    result = world.run("smaregi", registration_id)

    assert result.successful(), result.traceback
    step = world.registration(registration_id).step("smaregi")
    assert (step.state, step.attempts) == ("succeeded", 1)
    assert world.smaregi.count("create_member") == 1
