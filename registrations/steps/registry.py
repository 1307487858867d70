"""Which step serves each registered system, by plain import (so a type checker and an IDE see it).

`config.systems` is the bottom layer and cannot import the steps, so the registry names each system
and this mapping gives it its step. `tests/unit/test_wiring.py` checks that it covers exactly the
registry's systems.
"""

from __future__ import annotations

from registrations.steps.base import Step
from registrations.steps.consent import ConsentStep
from registrations.steps.email import WelcomeEmailStep
from registrations.steps.hubspot import HubSpotContactStep
from registrations.steps.shopify import ShopifyCustomerStep
from registrations.steps.smaregi import SmaregiMemberStep

# Keyed by each step's own `system`, so the name is spelled once, on the step.
STEP_CLASSES: dict[str, type[Step]] = {
    step.system: step
    for step in (ShopifyCustomerStep, SmaregiMemberStep, HubSpotContactStep, WelcomeEmailStep, ConsentStep)
}
