"""Tasks of change propagation: a Shopify customer's change pushed to its mirrors, and the sweep.

`membersync.shopify.customer_changed` takes a change id only (`registrations/changes.py`): it claims
the change, re-reads the customer through the Shopify API and writes only the drift to Smaregi and
HubSpot (`registrations/propagation.py`). A transient failure is retried under Shopify's retry policy
(RETRY_POLICY_SHOPIFY) with full-jitter backoff; a permanent one, or the last attempt, dead-letters the
change (ops replay it like a step). The sweep, on beat, queues again a change the broker never got
(the webhook could not queue it, a replay from a process without a broker) or whose worker vanished.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from celery import shared_task

from connectors.errors import ConnectorError, TransientError
from registrations.changes import Changes
from registrations.models import utcnow
from registrations.propagation import ContactMirror, CustomerSource, MemberMirror, ProfilePropagation
from registrations.retry import retries_exhausted, retry_delay
from registrations.states import ChangeState

log = logging.getLogger(__name__)

CUSTOMER_CHANGED_TASK = "membersync.shopify.customer_changed"
SWEEP_TASK = "membersync.changes.sweep"


def queue_change(celery: Any, change_id: int) -> None:
    """Hand one change to the broker (ids only); raises when the broker does not take it."""
    celery.send_task(CUSTOMER_CHANGED_TASK, args=(change_id,))


@shared_task(name=CUSTOMER_CHANGED_TASK, bind=True, ignore_result=True, max_retries=None)
def customer_changed(self: Any, change_id: int) -> str | None:
    """Propagate one Shopify customer change; returns the recorded outcome (ids and field names)."""
    runtime = self.app.membersync
    changes = Changes(runtime.database)
    change = changes.claim(change_id)
    if change is None:
        return None  # finished already (a duplicate delivery of the task) or running elsewhere
    settings = runtime.settings
    connectors = runtime.connectors
    # The registry types each client by the pipeline's Protocol; these are the same real clients,
    # seen through the calls change propagation makes (get_customer, update_member, search).
    propagation = ProfilePropagation(
        runtime.database,
        cast(CustomerSource, connectors.shopify),
        cast(MemberMirror, connectors.smaregi) if settings.sync_smaregi_enabled else None,
        cast(ContactMirror, connectors.hubspot) if settings.sync_hubspot_enabled else None,
    )
    try:
        outcome = propagation.process(change.topic, change.subject)
    except TransientError as error:
        policy = settings.retry_policies["shopify"]
        elapsed = (utcnow() - change.received_at).total_seconds()
        if retries_exhausted(policy, change.attempts, elapsed):
            changes.dead_letter(change_id, error, reason="retries_exhausted", task_name=CUSTOMER_CHANGED_TASK)
            log.warning("change %s dead-lettered after %d attempts", change_id, change.attempts)
            return ChangeState.DEAD
        changes.retry(change_id, error)
        raise self.retry(countdown=retry_delay(policy, change.attempts), exc=error) from None
    except ConnectorError as error:
        changes.dead_letter(change_id, error, reason="permanent", task_name=CUSTOMER_CHANGED_TASK)
        log.warning("change %s dead-lettered: %s", change_id, type(error).__name__)
        return ChangeState.DEAD
    changes.finish(change_id, outcome.state, outcome.text)
    log.info("change %s %s: %s", change_id, outcome.state, outcome.text)
    return outcome.text


@shared_task(name=SWEEP_TASK, bind=True, ignore_result=True)
def sweep_changes(self: Any) -> int:
    """Beat: queue again the changes the broker never got or whose worker vanished."""
    changes = Changes(self.app.membersync.database)
    queued = []
    for change_id in changes.waiting_for_broker():
        queue_change(self.app, change_id)
        queued.append(change_id)
    changes.mark_queued(queued)
    return len(queued)
