"""An admin's HubSpot validation rule refusing the contact write: the HubSpot step dead-letters at once
with the reason `validation_rule_refused` (no retries), and the chain goes on."""

from __future__ import annotations

from connectors.hubspot import ValidationRuleRefused
from registrations.dead_letters import dead_letter_reason
from tests.support.world import World


def test_a_validation_rule_refusal_dead_letters_the_hubspot_step_with_its_reason(world: World) -> None:
    refusal = ValidationRuleRefused(
        "hubspot POST /crm/objects/2026-09/contacts/batch/upsert: inputs [0] failed: VALIDATION_ERROR: "
        "property phone refused by a validation rule the HubSpot portal's admin configured",
        system="hubspot",
        status=207,
    )
    world.hubspot.fail_next("upsert_contact", refusal)
    registration_id = world.accept()
    for system in ("shopify", "smaregi", "hubspot"):
        world.run(system, registration_id)

    step = world.registration(registration_id).step("hubspot")
    assert (step.state, step.attempts) == ("dead", 1)
    [letter] = world.dead_letters()
    assert dead_letter_reason(letter.message) == "validation_rule_refused"
    assert "property phone" in (letter.message or "")
