"""Tasks that push a Smaregi member's facts to the mirrors, and find the members a transaction moved.

    membersync.smaregi.mirror_member          one member (customerId): re-read, write each mirror's
                                              drift (`registrations.mirror`)
    membersync.smaregi.transactions_reread    a `pos:transactions` webhook's transactionHeadIds: the
                                              transactions are read to learn their members, whose
                                              directory rows are re-read (and mirrored after)

Arguments are Smaregi ids only (no personal data). A transient vendor failure retries with a backoff;
a refusal fails the task in the worker's log (Smaregi does not resend, and the nightly reconciliation
repairs whatever a lost mirror missed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
from celery import current_app, shared_task

from connectors.errors import TransientError
from registrations.mirror import MemberMirror
from tasks.directory import REREAD_TASK

log = logging.getLogger(__name__)

MIRROR_TASK = "membersync.smaregi.mirror_member"
TRANSACTIONS_TASK = "membersync.smaregi.transactions_reread"
# One mirror run at a time per member, so an older read never overwrites a newer one (two webhooks
# for one sale, pos:customers and pos:transactions, arrive together). Longer than a run can take.
MIRROR_LOCK = "membersync:lock:smaregi-mirror:{customer_id}"
MIRROR_LOCK_SECONDS = 120
MIRROR_LOCK_WAIT_SECONDS = 60
RETRIES = {
    "autoretry_for": (TransientError,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


def queue_mirrors(customer_ids: Iterable[str], app: Any = None) -> int:
    """Queue one mirror task per member (deduplicated); how many were queued."""
    sender = app or current_app
    ids = list(dict.fromkeys(str(customer_id) for customer_id in customer_ids))
    for customer_id in ids:
        sender.send_task(MIRROR_TASK, args=(customer_id,))
    return len(ids)


@shared_task(name=MIRROR_TASK, bind=True, ignore_result=True, **RETRIES)
def mirror_member(self: Any, customer_id: str) -> dict[str, object]:
    """Push one Smaregi member's member number, points and rank to Shopify and HubSpot (drift only)."""
    runtime = self.app.membersync
    connectors = runtime.connectors
    lock = runtime.redis.lock(
        MIRROR_LOCK.format(customer_id=customer_id),
        timeout=MIRROR_LOCK_SECONDS,
        blocking_timeout=MIRROR_LOCK_WAIT_SECONDS,
    )
    if not lock.acquire():
        raise TransientError(f"smaregi member {customer_id}: another mirror run holds it", system="smaregi")
    try:
        report = MemberMirror(connectors.smaregi, connectors.shopify, connectors.hubspot).mirror(customer_id)
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("the mirror of smaregi member %s outlived its lock", customer_id)
    log.info(
        "smaregi mirror of member %s: shopify %s %s, hubspot %s %s",
        customer_id,
        report.shopify,
        ",".join(report.shopify_facts) or "-",
        report.hubspot,
        ",".join(report.hubspot_facts) or "-",
    )
    return report.as_json()


@shared_task(name=TRANSACTIONS_TASK, bind=True, ignore_result=True, **RETRIES)
def reread_transactions(self: Any, transaction_head_ids: list[str]) -> dict[str, int]:
    """Learn the members of a `pos:transactions` webhook's transactions and re-read them.

    Their directory rows are re-read by the directory's own task, which queues their mirrors.
    """
    smaregi = self.app.membersync.connectors.smaregi
    customer_ids = smaregi.transaction_customer_ids(transaction_head_ids)
    if customer_ids:
        self.app.send_task(REREAD_TASK, args=(customer_ids,))
    return {"transactions": len(transaction_head_ids), "members": len(customer_ids)}
