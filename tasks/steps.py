"""The pipeline's step tasks, one per registered system, under their stable task names.

Each task is thin: `StepTask.run_step` claims the step, calls the system's domain step
(`registrations.steps.registry.STEP_CLASSES`) and records the outcome. The tasks are made from the
registry (`config.systems`), so a new system needs no code here.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.systems import SYSTEMS, System
from registrations.steps.registry import STEP_CLASSES
from tasks.base import StepTask


def _step_task(system: System) -> Any:
    step_class = STEP_CLASSES[system.name]
    base = type(f"{step_class.__name__}Task", (StepTask,), {"step_class": step_class})

    def run(self: StepTask, registration_id: str) -> dict[str, Any]:
        return self.run_step(registration_id)

    run.__name__ = system.task_name.rpartition(".")[2]
    run.__doc__ = step_class.__doc__
    return shared_task(name=system.task_name, bind=True, base=base)(run)


STEP_TASKS: dict[str, Any] = {system.name: _step_task(system) for system in SYSTEMS}

# The contract's task names, importable as functions (membersync.shopify.create_customer, ...).
create_customer = STEP_TASKS["shopify"]
upsert_member = STEP_TASKS["smaregi"]
upsert_contact = STEP_TASKS["hubspot"]
send_welcome = STEP_TASKS["email"]
