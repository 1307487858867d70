"""What a step is given and what it returns: plain values, detached from the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar

from config.settings import Settings

if TYPE_CHECKING:
    from connectors.registry import Connectors
    from registrations.database import Database
    from registrations.models import Identity, Registration


@dataclass(frozen=True)
class Registrant:
    """The registration's profile fields, as submitted and normalised."""

    email: str
    first_name: str
    last_name: str
    first_name_kana: str | None = None
    last_name_kana: str | None = None
    phone: str | None = None
    birth_date: date | None = None
    postal_code: str | None = None
    address: str | None = None
    gender: str | None = None
    accepts_marketing: bool = False
    locale: str = "ja"

    @classmethod
    def of(cls, registration: Registration) -> Registrant:
        """A detached copy of `registration`'s profile."""
        return cls(**{spec.name: getattr(registration, spec.name) for spec in fields(cls)})


@dataclass(frozen=True)
class Known:
    """What earlier steps recorded about this person (the identities row)."""

    shopify_customer_id: str | None = None
    smaregi_customer_id: str | None = None
    smaregi_customer_code: str | None = None
    hubspot_contact_id: str | None = None
    # The address's one welcome went out; the last "already a member" notice (at most one a day).
    welcomed_at: datetime | None = None
    notified_at: datetime | None = None

    @classmethod
    def of(cls, identity: Identity | None) -> Known:
        if identity is None:
            return cls()
        return cls(**{spec.name: getattr(identity, spec.name) for spec in fields(cls)})


@dataclass(frozen=True)
class Work:
    """Everything one run of a step needs."""

    registration_id: str
    registrant: Registrant
    known: Known
    # The step's external id from an earlier success: a step reopened after it succeeded keeps it,
    # so the step can tell what it already did (the welcome email went out).
    previous_external_id: str | None = None
    # Whether the member number has reached the registrant by mail already.
    member_number_mailed: bool = False
    # Whose address this is (registrations.ownership): owner, claim, confirmed; None before the master.
    ownership: str | None = None
    # This registration's open confirmation requests, kind → id (for the links in its mail).
    requests: Mapping[str, str] = field(default_factory=dict)
    # This registration's latest card confirmation: (state, the card's Smaregi customer id).
    card: tuple[str, str | None] | None = None
    # The marketing consent this registration's owner decided: (confirmed | withdrawn, when).
    marketing: tuple[str, datetime] | None = None


@dataclass(frozen=True)
class Outcome:
    """What the vendor answered: the step's external id and what it taught us about the person
    (identity columns to set)."""

    external_id: str | None
    learned: dict[str, str] = field(default_factory=dict)
    # Why this success differs from the plain path, for ops (no personal data): kept on the step.
    note: str | None = None
    # This run mailed the member number to the registrant (sets registrations.member_number_mailed_at).
    member_number_mailed: bool = False
    # Whose address this is, as the master step found it (sets registrations.ownership).
    ownership: str | None = None
    # The step waits for the address's owner (a confirmation): state `waiting`, not succeeded.
    waiting: bool = False
    # Ask the owner (a confirmation request of this kind, about `subject`) when recording.
    request: tuple[str, str | None] | None = None
    # This run sent the address's welcome / an "already a member" notice (identity timestamps).
    welcomed: bool = False
    notified: bool = False


class Step:
    """One system's step; subclasses set `system` and implement `call`."""

    system: ClassVar[str] = ""
    # Steps that find-or-create in their system hold the per-email lock while they call and record.
    locks_email: ClassVar[bool] = False

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        # For the few steps that keep an index of their own (the Smaregi member directory): each of
        # its reads and writes is a short transaction, never open during a vendor call.
        self.database = database

    def call(self, work: Work, connectors: Connectors) -> Outcome:
        """Bring the registrant into this system; raise a `connectors.errors` error on failure."""
        raise NotImplementedError
