"""The consent step starts done: a new registration has nothing decided (double opt-in), so its first
chain is the four vendor steps; the owner's confirmation reopens the consent step, which then runs."""

from __future__ import annotations

from registrations import confirmations
from tests.support.world import World


def test_a_new_registration_runs_four_steps_and_a_confirmation_runs_the_consent_step(world: World) -> None:
    registration_id = world.accept(accepts_marketing=True)
    registration = world.registration(registration_id)
    consent = registration.step("consent")
    assert (consent.state, consent.attempts) == ("succeeded", 0)
    assert consent.note is not None and "until the owner confirms" in consent.note
    assert registration.status == "accepted"
    for system in ("shopify", "smaregi", "hubspot", "email"):
        world.run(system, registration_id)
    assert world.registration(registration_id).status == "synced"
    assert world.shopify.count("update_marketing_consent") == 0  # nobody is opted in unasked

    with world.publishing.session() as session:
        asked = confirmations.requested(session, registration_id, confirmations.MARKETING)
        assert asked is not None
        confirmations.decide(session, asked.id, accept=True)
    assert world.published[-1] == (registration_id, ["consent"])
    world.run_published()
    after = world.registration(registration_id)
    assert (after.step("consent").state, after.step("consent").attempts) == ("succeeded", 1)
    assert after.status == "synced"
    assert world.shopify.count("update_marketing_consent") == 1
