"""The writes a plan asks for, through the same connectors (and so the same rate limits) as the steps.

Every write first checks the fence (`RunLock.check`): a run that lost its lock stops before it writes.
A write that fails is recorded in the report (system, action, vendor id, error class) and the run
goes on with the next person; the next run finds the same drift and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from config.email_address import canonical_email
from connectors.errors import ConnectorError, ThrottledError
from connectors.shopify.mapping import fact_metafields, fact_values
from connectors.smaregi import SmaregiMember
from connectors.smaregi.members import member_code
from registrations.directory import MemberDirectory
from registrations.owned_fields import MemberFacts
from registrations.reconcile.patience import Patience
from registrations.reconcile.plan import (
    CreateCustomer,
    CreateMember,
    SetFacts,
    UpdateMember,
    UpsertContact,
    Write,
)
from registrations.reconcile.report import Report

log = logging.getLogger(__name__)

# A member code held by somebody else's member: the next salt, at most this many times.
CODE_ATTEMPTS = 3
# HubSpot's batch upsert takes 100 inputs; metafieldsSet 25 metafields (3 facts a customer).
CONTACTS_PER_CALL = 100
METAFIELDS_PER_CALL = 25
FACT_OWNERS_PER_CALL = METAFIELDS_PER_CALL // 3


@dataclass
class Done:
    """What a write returned that the run needs (a created member, a created customer)."""

    member: SmaregiMember | None = None
    customer_id: str | None = None


class Writer:
    """Carries out writes for one run."""

    def __init__(
        self,
        connectors: Any,
        *,
        directory: MemberDirectory,
        code_key: bytes,
        check_fence: Callable[[], None],
        report: Report,
        patience: Patience,
        on_write: Callable[[Write], None] | None = None,
        batching: bool = True,
    ) -> None:
        self.connectors = connectors
        self.directory = directory
        self.code_key = code_key
        self.check_fence = check_fence
        self.report = report
        self.patience = patience
        self.on_write = on_write
        # Without batching each record is its own request (tests count records by requests).
        self.contacts_per_call = CONTACTS_PER_CALL if batching else 1
        self.fact_owners_per_call = FACT_OWNERS_PER_CALL if batching else 1
        self._contacts: list[UpsertContact] = []
        self._facts: list[SetFacts] = []

    def apply(self, write: Write) -> Done | None:
        """Carry out one write (a contact upsert or a facts write may wait for its batch); None when it
        failed (recorded in the report)."""
        if isinstance(write, UpsertContact):
            self._batch_contact(write)
            return Done()
        if isinstance(write, SetFacts) and self._batches_facts():
            self._batch_facts(write)
            return Done()
        self.check_fence()
        try:
            done = self.patience.call(lambda: self._apply(write))
        except ConnectorError as error:
            log.warning(
                "reconciliation: %s write %s failed: %s",
                write.system,
                type(write).__name__,
                type(error).__name__,
            )
            self.report.failed(write.system, type(write).__name__, _subject(write), error)
            return None
        if self.on_write is not None:
            self.on_write(write)
        return done

    # --- batches: HubSpot upserts up to 100 contacts a call, metafieldsSet 25 metafields a call -----

    def flush(self) -> None:
        """Send what the batches hold (the run calls this at its end; an interrupted run's batch is
        simply not sent, and the next run finds the same drift)."""
        self._flush_contacts()
        self._flush_facts()

    def _batch_contact(self, write: UpsertContact) -> None:
        if any(held.email == write.email for held in self._contacts):
            self._flush_contacts()  # one address once per batch (HubSpot refuses the batch otherwise)
        self._contacts.append(write)
        if len(self._contacts) >= self.contacts_per_call:
            self._flush_contacts()

    def _flush_contacts(self) -> None:
        batch, self._contacts = self._contacts, []
        if not batch:
            return
        self.check_fence()
        hubspot = self.connectors.hubspot
        inputs = [{**write.properties, "email": write.email} for write in batch]
        try:
            self.patience.call(lambda: hubspot.upsert_contacts(inputs))
        except ConnectorError as error:
            log.warning(
                "reconciliation: a hubspot batch of %d upserts failed: %s", len(batch), type(error).__name__
            )
            for write in batch:
                self.report.failed("hubspot", type(write).__name__, "", error)
            return
        self.report.api_calls["hubspot"] += 1
        for _ in batch:
            self.report.wrote("hubspot", calls=0)
        self._written(batch)

    def _written(self, batch: Sequence[Write]) -> None:
        """Tell the hook about writes done (all counted first: the hook may stop the run)."""
        if self.on_write is not None:
            for write in batch:
                self.on_write(write)

    def _batches_facts(self) -> bool:
        return hasattr(self.connectors.shopify, "set_metafields")

    def _batch_facts(self, write: SetFacts) -> None:
        self._facts.append(write)
        if len(self._facts) >= self.fact_owners_per_call:
            self._flush_facts()

    def _flush_facts(self) -> None:
        batch, self._facts = self._facts, []
        if not batch:
            return
        self.check_fence()
        shopify = self.connectors.shopify
        metafields = [
            entry for write in batch for entry in fact_metafields(write.customer_id, fact_values(write.facts))
        ]
        try:
            self.patience.call(lambda: shopify.set_metafields(metafields))
        except ConnectorError as error:
            log.warning(
                "reconciliation: a shopify batch of %d fact writes failed: %s",
                len(batch),
                type(error).__name__,
            )
            for write in batch:
                self.report.failed("shopify", type(write).__name__, write.customer_id, error)
            return
        self.report.api_calls["shopify"] += -(-len(metafields) // METAFIELDS_PER_CALL)
        for _ in batch:
            self.report.wrote("shopify", calls=0)
        self._written(batch)

    def _apply(self, write: Write) -> Done:
        if isinstance(write, CreateMember):
            member = self._create_member(write)
            self.directory.record([member])
            return Done(member=member)
        if isinstance(write, UpdateMember):
            self.connectors.smaregi.update_member(write.customer_id, **write.changes)
            self.report.wrote("smaregi")
            return Done()
        if isinstance(write, SetFacts):
            self._set_facts(write.customer_id, write.facts, write.changed)
            return Done()
        if isinstance(write, UpsertContact):
            self.connectors.hubspot.upsert_contact(email=write.email, properties=write.properties)
            self.report.wrote("hubspot")
            return Done()
        if isinstance(write, CreateCustomer):
            profile = write.profile
            customer = self.connectors.shopify.create_customer(
                email=profile.email or write.email,
                first_name=profile.first_name or "",
                last_name=profile.last_name or "",
                phone=profile.phone,
                postal_code=profile.postal_code,
                address=profile.address,
            )
            self.report.wrote("shopify", calls=2 if (profile.postal_code or profile.address) else 1)
            return Done(customer_id=customer.id)
        raise TypeError(f"not a reconciliation write: {write!r}")

    def _create_member(self, write: CreateMember) -> SmaregiMember:
        """Create the member under its deterministic code; a member that already holds the code for
        this address (a lost answer, an interrupted run) is taken instead of a second card."""
        smaregi = self.connectors.smaregi
        profile = write.profile
        for salt in range(CODE_ATTEMPTS):
            code = write.code if salt == 0 else member_code(write.email, key=self.code_key, salt=salt)
            try:
                member: SmaregiMember = smaregi.create_member(
                    customer_code=code,
                    last_name=profile.last_name or "",
                    first_name=profile.first_name or "",
                    mail_address=profile.email or write.email,
                    phone_number=profile.phone,
                    post_code=profile.postal_code,
                    address=profile.address,
                )
                self.report.wrote("smaregi")
                return member
            except ThrottledError:
                raise  # nothing was written: waited out and asked again (Patience)
            except ConnectorError:
                self.report.api_calls["smaregi"] += 2
                found = smaregi.find_member_by_code(code)
                if found is None:
                    raise
                if canonical_email(found.mail_address or "") == write.email:
                    self.report.wrote("smaregi", calls=0)
                    return found  # our own member: its answer was lost
        raise ConnectorError(
            "smaregi: every member code for this address is held by another member", system="smaregi"
        )

    def _set_facts(self, customer_id: str, facts: MemberFacts, changed: tuple[str, ...]) -> None:
        shopify = self.connectors.shopify
        if hasattr(shopify, "set_member_facts"):
            shopify.set_member_facts(customer_id, facts)
        elif "member_number" in changed and facts.member_number:
            shopify.set_member_number(customer_id, facts.member_number)
        else:
            return  # nothing this connector can write yet
        self.report.wrote("shopify")


def _subject(write: Write) -> str:
    """A vendor id naming what a failed write was about (never an address)."""
    if isinstance(write, (UpdateMember, SetFacts)):
        return write.customer_id
    if isinstance(write, CreateMember):
        return write.code
    return ""
