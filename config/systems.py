"""The system registry: one declaration per external system a registration reaches.

Everything that differs between systems is said here once, and the rest is derived: the pipeline
order (the order of `SYSTEMS`), the Celery task names and routes, the retry policy defaults and
`RETRY_POLICY_<NAME>` variables, the on/off switch of each step, and the shared rate-limit budget.
`config` is the bottom layer, so the step and the client of a system are not named here: the layers
above map the system's name to them by plain import (`registrations.steps.registry.STEP_CLASSES`,
`connectors.registry.Connectors`), and a test checks both cover exactly these systems.
`docs/architecture.md` has the checklist for adding a system.
"""

from __future__ import annotations

from dataclasses import dataclass

# The queue realtime registration work runs on (reconciliation has its own, so it never delays it).
REALTIME_QUEUE = "membersync.realtime"


@dataclass(frozen=True)
class RetryPolicy:
    """How one system's failures are retried before they become dead letters."""

    max_attempts: int
    base_seconds: float
    cap_seconds: float
    budget_seconds: float


@dataclass(frozen=True)
class Budget:
    """How a system's shared rate limit is counted, and which settings size it.

    `kind` is "cost_bucket" (a leaky bucket of cost points: capacity and restore rate) or
    "rolling_window" (at most `limit` requests in any `window_seconds`). A vendor that counts writes
    apart from reads gets two buckets of the same kind: `limit_setting` sizes reads (and is the
    bucket of a client that has only one), `write_limit_setting` sizes writes.
    """

    kind: str
    limit_setting: str
    window_seconds: float = 1.0
    rate_setting: str | None = None  # cost_bucket: the restore rate per second
    slack_seconds: float = 1.0
    write_limit_setting: str | None = None


@dataclass(frozen=True)
class System:
    """One external system of the pipeline."""

    name: str
    task_name: str
    default_retry: RetryPolicy
    # The Settings attribute that switches the step on; None: always on (the master, consent).
    switch: str | None = None
    # The master's failure stops the chain: nothing else can be synced without the customer master.
    master: bool = False
    budget: Budget | None = None
    queue: str = REALTIME_QUEUE
    # A step with nothing to do until someone decides: a new registration has it done already, with
    # this note, and the decision reopens it (registrations.confirmations.REOPENS). None: it runs.
    starts_done: str | None = None

    @property
    def retry_variable(self) -> str:
        """The environment variable that overrides this system's retry policy."""
        return f"RETRY_POLICY_{self.name.upper()}"


SYSTEMS: tuple[System, ...] = (
    System(
        name="shopify",
        task_name="membersync.shopify.create_customer",
        # The master retries longest: the registration is nothing without it.
        default_retry=RetryPolicy(12, 2, 600, 3 * 3600),
        master=True,
        budget=Budget(
            "cost_bucket", limit_setting="shopify_bucket_size", rate_setting="shopify_restore_rate"
        ),
    ),
    System(
        name="smaregi",
        task_name="membersync.smaregi.upsert_member",
        default_retry=RetryPolicy(10, 2, 600, 2 * 3600),
        switch="sync_smaregi_enabled",
        # Reads and writes are counted apart, per second per contract; a short slack keeps us from
        # causing a 429 ourselves.
        budget=Budget(
            "rolling_window",
            limit_setting="smaregi_read_budget",
            write_limit_setting="smaregi_write_budget",
            window_seconds=1.0,
            slack_seconds=0.2,
        ),
    ),
    System(
        name="hubspot",
        task_name="membersync.hubspot.upsert_contact",
        default_retry=RetryPolicy(8, 5, 600, 2 * 3600),
        switch="sync_hubspot_enabled",
        budget=Budget("rolling_window", limit_setting="hubspot_rate_limit_per_10s", window_seconds=10.0),
    ),
    System(
        name="email",
        task_name="membersync.mail.send_welcome",
        default_retry=RetryPolicy(8, 5, 600, 2 * 3600),
        switch="sync_welcome_email_enabled",
    ),
    System(
        # Marketing consent, once its owner confirmed (double opt-in) or withdrew it: Shopify's
        # consent, Smaregi's mail flag and HubSpot's subscription, in one idempotent step through
        # the three vendors' clients (it has no client of its own). Last, so the vendors' ids are
        # known. Nothing is decided when a registration is accepted (double opt-in: the link goes
        # out with the welcome), so it is not part of the first chain: a task that did nothing cost
        # a fifth of the pipeline's broker and bookkeeping work.
        name="consent",
        task_name="membersync.consent.update",
        default_retry=RetryPolicy(10, 5, 600, 4 * 3600),
        starts_done="nothing to send until the owner confirms or withdraws marketing consent",
    ),
)

SYSTEM_NAMES: tuple[str, ...] = tuple(system.name for system in SYSTEMS)
# The systems whose step a new registration has done already (`System.starts_done`).
STARTS_DONE: frozenset[str] = frozenset(system.name for system in SYSTEMS if system.starts_done is not None)
BY_NAME: dict[str, System] = {system.name: system for system in SYSTEMS}
MASTER: System = next(system for system in SYSTEMS if system.master)


def system(name: str) -> System:
    """The declaration of `name`; KeyError names the known systems."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown system {name!r}; expected one of {', '.join(SYSTEM_NAMES)}") from None
