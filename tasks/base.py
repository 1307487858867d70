"""The base class of every pipeline step: database session, idempotent skip, status bookkeeping."""

from __future__ import annotations

from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from tasks.models import Registration, SyncStep
from tasks.pipeline import derive_status
from tasks.runtime import Runtime


class StepTask(Task):
    """A step of the pipeline for one system; subclasses set `system` and implement `sync`."""

    abstract = True
    system: str = ""
    # A message that keeps killing workers is redelivered forever without a bound of our own.
    acks_late = True
    reject_on_worker_lost = True

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.membersync
        return runtime

    def run_step(self, registration_id: str) -> dict[str, Any]:
        """Run the step once for `registration_id`; a finished step returns at once."""
        with self.runtime.database.session() as session:
            registration = session.get(Registration, registration_id)
            if registration is None:
                return {"registration_id": registration_id, "state": "missing"}
            step = registration.step(self.system)
            if step.state in {"succeeded", "skipped", "dead"}:
                return {"registration_id": registration_id, "state": step.state}
            if not self.runtime.settings.enabled_systems()[self.system]:
                step.state = "skipped"
            else:
                self.sync(session, registration, step)
            registration.status = derive_status(registration.steps)
            return {"registration_id": registration_id, "state": step.state}

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        """Bring `registration` into this task's system and record the outcome on `step`."""
        raise NotImplementedError
