"""One reconciliation run: take the lock, read the three systems, then plan and write person by person.

The run is resumable because nothing it writes is remembered between runs: every run re-reads the
systems and writes only what still differs from the ownership map, so work an interrupted run already
did is simply found in sync. A Smaregi member is created under the address's deterministic code (a
member whose create answer was lost is found by it), HubSpot contacts are upserted by e-mail, and
Shopify facts are set to absolute values: repeating any of them changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from connectors.errors import ConnectorError
from connectors.smaregi.members import member_code
from registrations.database import Database
from registrations.directory import MemberDirectory
from registrations.identities import identity_for
from registrations.models import ReconciliationRun, utcnow
from registrations.owned_fields import MemberFacts
from registrations.reconcile import walk_ins
from registrations.reconcile.lock import LOCK_SECONDS, FenceLost, RunLock
from registrations.reconcile.patience import Patience
from registrations.reconcile.plan import (
    CreateCustomer,
    CreateMember,
    Link,
    Outcome,
    PersonPlan,
    Policy,
    Write,
    plan_person,
)
from registrations.reconcile.records import Record, email_key, smaregi_record
from registrations.reconcile.report import Report
from registrations.reconcile.sources import hubspot_records, identity_records, load_smaregi, shopify_records
from registrations.reconcile.spill import Person, Spill
from registrations.reconcile.writes import Writer
from registrations.states import ReconciliationStatus

log = logging.getLogger(__name__)

SYSTEMS = ("shopify", "smaregi", "hubspot")
HEARTBEAT_SECONDS = 2.0
# How long leaving a run early waits for the background read to notice.
READ_STOP_SECONDS = 30.0
INTERRUPTED = "interrupted: its process stopped before the end (the next run did the rest)"

# Phases of a run (`reconciliation_runs.phase`).
READING, WRITING, DONE = "reading", "writing", "done"

Progress = Callable[[str, int, int], None]  # phase, people done, people in all (0 while reading)


@dataclass
class RunResult:
    """How a run ended and its report (JSON, no personal data)."""

    run_id: int
    status: str
    report: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The command line's last line and the task's result."""
        return {"run_id": self.run_id, "status": self.status, "reason": self.reason, **self.report}


class Reconciliation:
    """One run over a database, the connectors and Redis (the lock)."""

    def __init__(
        self,
        database: Database,
        connectors: Any,
        redis_client: redis.Redis,
        settings: Settings,
        *,
        dry_run: bool = False,
        systems: Iterable[str] | None = None,
        progress: Progress | None = None,
        on_write: Callable[[Write], None] | None = None,
        lock_seconds: float = LOCK_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        batching: bool = True,
    ) -> None:
        self.database = database
        self.connectors = connectors
        self.settings = settings
        self.dry_run = dry_run
        self.systems = tuple(name for name in SYSTEMS if name in set(systems or SYSTEMS))
        self.progress = progress or (lambda phase, done, total: None)
        self.on_write = on_write
        self.batching = batching
        self.lock = RunLock(redis_client, seconds=lock_seconds)
        self.patience = Patience(sleep, beat=self.lock.check)
        self.report = Report(dry_run=dry_run, systems=list(self.systems))
        self.run_id = 0
        self._beat = 0.0

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run once; "skipped" when another run holds the lock."""
        fence = self.lock.acquire()
        if fence is None:
            return self._skipped()
        self.run_id = self._start(fence)
        started = time.monotonic()
        try:
            with Spill() as spill:
                policy = self._read(spill)
                self._write(spill, policy)
        except FenceLost as lost:
            log.warning("reconciliation run %s stopped: %s", self.run_id, lost)
            return self._finish(ReconciliationStatus.FENCED, started, error=str(lost))
        except BaseException as error:
            self._finish(ReconciliationStatus.FAILED, started, error=type(error).__name__)
            raise
        finally:
            self.lock.release()
        return self._finish(ReconciliationStatus.COMPLETED, started)

    def _read(self, spill: Spill) -> Policy:
        """Spill every system's records and `identities`; the policy the plans follow."""
        connectors, report = self.connectors, self.report
        hubspot_facts = "hubspot" in self.systems and self._hubspot_facts()
        self._heartbeat(READING, force=True)
        # Shopify's export runs on Shopify's side for a while: it is read in the background, into
        # a spill of its own, while Smaregi and HubSpot are read here.
        with Background(lambda: shopify_records(connectors.shopify, report)) as shopify:
            self._read_mirrors(spill, hubspot_facts)
            while not shopify.wait(HEARTBEAT_SECONDS):
                self._heartbeat(READING)
            spill.merge(shopify.spill)
        key = self.settings.member_code_secret
        return Policy(
            member_code=lambda email: member_code(email, key=key),
            systems=frozenset(self.systems),
            hubspot_facts=hubspot_facts,
            create_shopify_customers=self.settings.reconcile_create_shopify_customers,
        )

    def _read_mirrors(self, spill: Spill, hubspot_facts: bool) -> None:
        """Spill Smaregi's members, HubSpot's contacts and `identities`."""
        connectors, report = self.connectors, self.report
        if "smaregi" in self.systems:
            load_smaregi(
                self.database, connectors.smaregi, lambda records: spill.add(self._beating(records)), report
            )
        if "hubspot" in self.systems:
            spill.add(
                self._beating(
                    hubspot_records(connectors.hubspot, report, self.patience, with_facts=hubspot_facts)
                )
            )
        spill.add_identities(
            identity._replace(email=email_key(identity.email) or identity.email)
            for identity in identity_records(self.database)
        )

    def _hubspot_facts(self) -> bool:
        """Whether the member facts are mirrored to HubSpot: the portal must have our properties."""
        hubspot = self.connectors.hubspot
        if not hasattr(hubspot, "ensure_member_properties"):
            self.report.notes.append(
                "HubSpot member-fact properties are not available: facts not mirrored there"
            )
            return False
        if not self.dry_run:
            self.lock.check()
            self.patience.call(hubspot.ensure_member_properties)
        return True

    def _write(self, spill: Spill, policy: Policy) -> None:
        """Plan each person and carry out (or, in a dry run, only count) the writes."""
        total = spill.addresses()
        writer = Writer(
            self.connectors,
            directory=MemberDirectory(self.database),
            code_key=self.settings.member_code_secret,
            check_fence=self.lock.check,
            report=self.report,
            patience=self.patience,
            on_write=self.on_write,
            batching=self.batching,
        )
        self._heartbeat(WRITING, force=True)
        for done, person in enumerate(spill.people(), start=1):
            plan = plan_person(person, policy)
            if Outcome.WALK_IN in plan.outcomes:
                self._walk_in(plan)
            self.report.found(plan.outcomes, plan.ids)
            if self.dry_run:
                self._count(person, plan, policy)
            else:
                self._carry_out(person, plan, policy, writer)
            if self._heartbeat(WRITING):
                self.progress(WRITING, done, total)
        writer.flush()
        self.progress(WRITING, total, total)

    def _walk_in(self, plan: PersonPlan) -> None:
        """Ask the owner of the walk-in's address, once ever, when the address is a registration's
        (registrations/reconcile/walk_ins.py); the report names the registration either way."""
        registration_id = walk_ins.owner_registration(self.database, plan.email)
        card_id = plan.ids.get("smaregi")
        if registration_id is None or card_id is None:
            return
        plan.ids["registration"] = registration_id
        if not self.settings.sync_welcome_email_enabled:
            return  # no mail may go out: reported only
        if walk_ins.already_asked(self.database, registration_id, card_id):
            plan.outcomes.append(Outcome.WALK_IN_ALREADY_ASKED)
            return
        plan.outcomes.append(Outcome.WALK_IN_ASKED)
        if self.dry_run:
            self.report.wrote("email")
            return
        try:
            self.patience.call(
                lambda: walk_ins.ask(
                    self.database,
                    self.settings,
                    self.connectors.email,
                    registration_id,
                    card_id,
                    check_fence=self.lock.check,
                )
            )
        except ConnectorError as error:
            self.report.failed("email", "CardQuestion", card_id, error)
            return
        self.report.wrote("email")

    def _count(self, person: Person, plan: PersonPlan, policy: Policy) -> None:
        """A dry run's writes: the plan's, and those mirroring a member the plan would create (as if
        created under its code), so the dry run reports the writes a real run makes."""
        for write in plan.writes:
            self.report.wrote(write.system)
            if isinstance(write, CreateMember) and plan.then_mirror_created and person.shopify:
                customer = person.shopify[0]
                facts = MemberFacts(member_number=write.code)
                created = Record("smaregi", "", person.email, customer.profile, facts, customer.known)
                person.smaregi = [created]
                for more in plan_person(person, policy).writes:
                    self.report.wrote(more.system)

    def _carry_out(self, person: Person, plan: PersonPlan, policy: Policy, writer: Writer) -> None:
        """One person's writes; a member created first is then mirrored (the person planned again)."""
        link = plan.link
        for write in plan.writes:
            done = writer.apply(write)
            if done is None:
                continue
            if isinstance(write, CreateMember) and done.member is not None:
                created = smaregi_record(done.member)
                link = _merged(
                    link,
                    Link(
                        smaregi_customer_id=done.member.customer_id,
                        smaregi_customer_code=done.member.customer_code,
                    ),
                )
                if created is not None and plan.then_mirror_created:
                    person.smaregi = [created]
                    follow = plan_person(person, policy)
                    for more in follow.writes:
                        writer.apply(more)
                    link = _merged(link, follow.link)
            if isinstance(write, CreateCustomer) and done.customer_id is not None:
                link = _merged(link, Link(shopify_customer_id=done.customer_id))
        if link is not None:
            self._link(person.email, link)

    def _link(self, email: str, link: Link) -> None:
        """Bring the person's `identities` row up to date (ids only)."""
        try:
            with self.database.session() as session:
                identity = identity_for(session, email)
                for name in (
                    "shopify_customer_id",
                    "smaregi_customer_id",
                    "smaregi_customer_code",
                    "hubspot_contact_id",
                ):
                    value = getattr(link, name)
                    if value is not None:
                        setattr(identity, name, value)
        except IntegrityError:
            # A registration step made the row meanwhile: its own record is the fresher one.
            log.info("reconciliation: identity made meanwhile by a step; left as it is")

    # --- bookkeeping -----------------------------------------------------------------------------

    def _beating(self, records: Iterable[Any]) -> Iterable[Any]:
        """Pass records through, renewing the lock and the heartbeat while a long read goes on."""
        for record in records:
            yield record
            if self._heartbeat(READING):
                self.progress(READING, 0, 0)

    def _heartbeat(self, phase: str, *, force: bool = False) -> bool:
        """Every HEARTBEAT_SECONDS: check the fence (renewing the lock) and note the phase on the row."""
        now = time.monotonic()
        if not force and now - self._beat < HEARTBEAT_SECONDS:
            return False
        self._beat = now
        self.lock.check()
        with self.database.session() as session:
            row = session.get(ReconciliationRun, self.run_id)
            if row is not None:
                row.phase, row.heartbeat_at = phase, utcnow()
                row.counts = dict(self.report.outcomes)
        return True

    def _start(self, fence: int) -> int:
        with self.database.session() as session:
            # Holding the lock, any run still marked running is one whose process died (its lock
            # expired): it is marked so, and this run does what it left (resumable).
            session.execute(
                update(ReconciliationRun)
                .where(ReconciliationRun.status == ReconciliationStatus.RUNNING)
                .values(status=ReconciliationStatus.FAILED, error=INTERRUPTED, finished_at=utcnow())
            )
            row = ReconciliationRun(
                dry_run=self.dry_run,
                status=ReconciliationStatus.RUNNING,
                fence=fence,
                systems=list(self.systems),
                phase=READING,
                heartbeat_at=utcnow(),
                counts={},
            )
            session.add(row)
            session.flush()
            return int(row.id)

    def _skipped(self) -> RunResult:
        with self.database.session() as session:
            running = session.scalar(
                select(ReconciliationRun.id)
                .where(ReconciliationRun.status == ReconciliationStatus.RUNNING)
                .order_by(ReconciliationRun.id.desc())
                .limit(1)
            )
            reason = (
                f"another reconciliation is running (run {running})"
                if running
                else "another reconciliation holds the lock"
            )
            row = ReconciliationRun(
                dry_run=self.dry_run,
                status=ReconciliationStatus.SKIPPED,
                systems=list(self.systems),
                phase=DONE,
                counts={},
                error=reason,
                finished_at=utcnow(),
            )
            session.add(row)
            session.flush()
            run_id = int(row.id)
        return RunResult(run_id, ReconciliationStatus.SKIPPED, reason=reason)

    def _finish(self, status: ReconciliationStatus, started: float, *, error: str | None = None) -> RunResult:
        report = self.report
        # The run's own time: rate-limit waits are the vendors', reported apart.
        report.seconds = time.monotonic() - started - self.patience.waited
        document = {**report.as_json(), "rate_limit_wait_seconds": round(self.patience.waited, 3)}
        with self.database.session() as session:
            row = session.get(ReconciliationRun, self.run_id)
            if row is not None:
                row.status, row.phase, row.finished_at = status, DONE, utcnow()
                row.report, row.counts, row.error = document, dict(report.outcomes), error
                row.heartbeat_at = utcnow()
        return RunResult(self.run_id, status, document, reason=error)


class Background:
    """Records read in a thread of their own into a spill of their own (`wait`, then merge `spill`).

    Only the thread writes to its spill until it has ended; leaving the block early (an error, a lost
    fence) stops the stream at its next record and removes the spill.
    """

    def __init__(self, records: Callable[[], Iterable[Record]]) -> None:
        self.spill = Spill(shared=True)
        self._records = records
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="reconcile-shopify", daemon=True)

    def _read(self) -> None:
        try:
            self.spill.add(self._until_stopped())
        except BaseException as error:  # handed to the run's thread by wait()
            self._error = error

    def _until_stopped(self) -> Iterator[Record]:
        for record in self._records():
            if self._stop.is_set():
                return
            yield record

    def wait(self, seconds: float) -> bool:
        """Whether the stream has ended (re-raising its error), after waiting at most `seconds`."""
        self._thread.join(seconds)
        if self._thread.is_alive():
            return False
        if self._error is not None:
            raise self._error
        return True

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(READ_STOP_SECONDS)
        if not self._thread.is_alive():
            self.spill.close()


def _merged(link: Link | None, more: Link | None) -> Link | None:
    """`link` with the columns `more` sets."""
    if more is None:
        return link
    if link is None:
        return more
    values = {name: getattr(more, name) or getattr(link, name) for name in Link.__dataclass_fields__}
    return Link(**values)
