"""The four pipeline steps, registered under their CONTRACT.md task names.

Their connector calls arrive with the pipeline issue; until then a step is claimed (attempt counted,
task id recorded) and left pending, so nothing claims a sync that did not happen. Retries and dead
letters are already handled by the base class.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session

from tasks.base import StepTask
from tasks.models import Registration, SyncStep


class PendingStep(StepTask):
    """A step whose connector is not wired yet: it is seen, counted and left pending."""

    abstract = True

    def sync(self, session: Session, registration: Registration, step: SyncStep) -> None:
        step.state = "pending"


@shared_task(name="membersync.shopify.create_customer", bind=True, base=PendingStep, system="shopify")
def create_customer(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Create (or adopt) the Shopify customer: the customer master."""
    return self.run_step(registration_id)


@shared_task(name="membersync.smaregi.upsert_member", bind=True, base=PendingStep, system="smaregi")
def upsert_member(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Find or create the Smaregi POS member by email."""
    return self.run_step(registration_id)


@shared_task(name="membersync.hubspot.upsert_contact", bind=True, base=PendingStep, system="hubspot")
def upsert_contact(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Upsert the HubSpot contact by email."""
    return self.run_step(registration_id)


@shared_task(name="membersync.mail.send_welcome", bind=True, base=PendingStep, system="email")
def send_welcome(self: StepTask, registration_id: str) -> dict[str, Any]:
    """Send the welcome email carrying the member number."""
    return self.run_step(registration_id)
