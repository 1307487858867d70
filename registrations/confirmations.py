"""What only an address's owner may decide, asked through a signed link mailed to that address.

Three kinds, one table (`confirmations`), one life: requested → confirmed | declined | expired, and a
confirmed marketing consent may later be withdrawn.

- **marketing**: double opt-in. A registration that ticks "send me news" asks; nothing is subscribed
  anywhere until the owner presses the button behind the welcome mail's link. The row is the consent
  record the Japanese law on marketing e-mail (特定電子メール法) wants: when it was asked, from where
  (form or API), which text was shown (`text_version`), when confirmed, when withdrawn.
- **profile**: a registration of an address that already belongs to a member writes nothing; what it
  typed is applied only when the owner confirms it from the "already a member" notice.
- **card**: a member card made at the till with this address is linked only when the owner says it
  is theirs; declined or expired, they get a card of their own.

A decision reopens the steps it affects and queues them in the outbox, in the caller's transaction;
the caller publishes after commit (`registrations.outbox.publish`), like every other reopen.

Links are signed with SECRET_KEY (itsdangerous) and name only the confirmation's id and the action:
no address, no name. A link is a capability, so the page behind it changes nothing on GET (mail
scanners fetch links); only the page's POST decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import Row, Table, bindparam, or_, select
from sqlalchemy.orm import Session

from config.settings import Settings
from registrations.database import Database
from registrations.dead_letters import settle_registration
from registrations.models import Confirmation, OutboxMessage, Registration, utcnow
from registrations.replay import reopen
from registrations.states import ConfirmationKind, ConfirmationState, Ownership, StepState
from registrations.status import derive_status

# The vocabulary (registrations.states) under the short names callers import from here.
MARKETING, PROFILE, CARD = ConfirmationKind.MARKETING, ConfirmationKind.PROFILE, ConfirmationKind.CARD
REQUESTED = ConfirmationState.REQUESTED
CONFIRMED = ConfirmationState.CONFIRMED
DECLINED = ConfirmationState.DECLINED
EXPIRED = ConfirmationState.EXPIRED
WITHDRAWN = ConfirmationState.WITHDRAWN

# The wording a registrant is shown, by version: a change of wording is a new version, so the
# record says exactly what each person agreed to. The texts themselves live with the form and the
# confirmation page (app/i18n.py), keyed by these versions.
TEXT_VERSIONS: dict[str, str] = {
    MARKETING: "marketing-2026-12",
    PROFILE: "profile-2026-12",
    CARD: "card-2026-12",
}

# What a decision on each kind reopens (the steps re-read the decision when they run).
REOPENS: dict[str, tuple[str, ...]] = {
    MARKETING: ("consent",),
    PROFILE: ("shopify", "smaregi", "hubspot", "email", "consent"),
    CARD: ("smaregi",),
}

CONFIRM, UNSUBSCRIBE = "confirm", "unsubscribe"
_SALT = "membersync.confirmation"


class InvalidLink(ValueError):
    """The link is damaged, forged, expired or for another action."""


@dataclass(frozen=True)
class Decided:
    """What a decision did: the confirmation's new state and the outbox row to publish (if any)."""

    kind: str
    state: str
    changed: bool
    outbox_id: int | None = None


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key, salt=_SALT)


def sign(settings: Settings, confirmation_id: str, action: str) -> str:
    """The token of a link that does `action` to one confirmation."""
    return str(_serializer(settings).dumps({"c": confirmation_id, "a": action}))


def read(settings: Settings, token: str, action: str) -> str:
    """The confirmation id a token names, if it is genuine and for `action`.

    Confirm links carry their own age limit (the confirmation expires in the database too);
    unsubscribe links never expire: withdrawing consent must work from any old mail.
    """
    max_age = settings.confirmation_days * 86400 if action == CONFIRM else None
    try:
        payload = _serializer(settings).loads(token, max_age=max_age)
    except BadData:
        raise InvalidLink("this link is not valid (damaged or expired)") from None
    if not isinstance(payload, dict) or payload.get("a") != action or not isinstance(payload.get("c"), str):
        raise InvalidLink("this link is not valid here")
    return str(payload["c"])


def link(settings: Settings, confirmation_id: str, action: str) -> str:
    """The absolute URL of the page behind a mailed link."""
    return f"{settings.public_base_url}/{action}/{sign(settings, confirmation_id, action)}"


def request(
    session: Session,
    registration: Registration,
    kind: str,
    *,
    settings: Settings,
    subject: str | None = None,
) -> Confirmation:
    """This registration's open request of `kind` (made now, in the caller's transaction, if none)."""
    existing = session.scalar(
        select(Confirmation).where(
            Confirmation.registration_id == registration.id,
            Confirmation.kind == kind,
            Confirmation.state == REQUESTED,
        )
    )
    if existing is not None:
        return existing
    now = utcnow()
    confirmation = Confirmation(
        registration_id=registration.id,
        kind=kind,
        state=REQUESTED,
        email=registration.email,
        source=registration.source or "api",
        text_version=TEXT_VERSIONS[kind],
        subject=subject,
        requested_at=now,
        expires_at=now + timedelta(days=settings.confirmation_days),
    )
    session.add(confirmation)
    session.flush()
    return confirmation


def requested(session: Session, registration_id: str, kind: str) -> Confirmation | None:
    """The registration's open request of `kind`, if any."""
    return session.scalar(
        select(Confirmation).where(
            Confirmation.registration_id == registration_id,
            Confirmation.kind == kind,
            Confirmation.state == REQUESTED,
        )
    )


def open_requests(session: Session, registration_id: str) -> dict[str, str]:
    """The registration's open requests, kind → confirmation id."""
    rows = session.execute(
        select(Confirmation.kind, Confirmation.id).where(
            Confirmation.registration_id == registration_id, Confirmation.state == REQUESTED
        )
    )
    return {kind: confirmation_id for kind, confirmation_id in rows}


def latest(session: Session, registration_id: str, kind: str) -> Confirmation | None:
    """The registration's most recent confirmation of `kind`, whatever its state."""
    return session.scalar(
        select(Confirmation)
        .where(Confirmation.registration_id == registration_id, Confirmation.kind == kind)
        .order_by(Confirmation.requested_at.desc())
        .limit(1)
    )


def marketing_consent(session: Session, registration_id: str) -> tuple[str, datetime] | None:
    """What this registration's consent asks the vendors to hold: (CONFIRMED | WITHDRAWN, when).

    None while nothing was confirmed (no consent is ever sent for an unconfirmed request).
    """
    return _consent(latest(session, registration_id, MARKETING))


@dataclass(frozen=True)
class Standing:
    """Where a registration's confirmations stand, as a step is given them."""

    # The open requests, kind → confirmation id (`open_requests`).
    requests: dict[str, str]
    # The latest card confirmation: (state, the card's Smaregi customer id) (`latest`).
    card: tuple[str, str | None] | None
    # The marketing consent decided (`marketing_consent`).
    marketing: tuple[str, datetime] | None


# Built once (a step reads it on every run): the columns `standing` needs, newest first.
_CONFIRMATIONS = cast(Table, Confirmation.__table__)
_STANDING = (
    select(
        _CONFIRMATIONS.c.id,
        _CONFIRMATIONS.c.kind,
        _CONFIRMATIONS.c.state,
        _CONFIRMATIONS.c.subject,
        _CONFIRMATIONS.c.decided_at,
        _CONFIRMATIONS.c.withdrawn_at,
    )
    .where(_CONFIRMATIONS.c.registration_id == bindparam("of_registration"))
    .order_by(_CONFIRMATIONS.c.requested_at.desc())
)


def standing(session: Session, registration_id: str) -> Standing:
    """`open_requests`, the latest card and `marketing_consent` in one SELECT: a registration has a
    handful of confirmations at most, and a step reads them on every run."""
    rows = session.execute(_STANDING, {"of_registration": registration_id}).all()
    newest: dict[str, Row[Any]] = {}
    for row in rows:
        newest.setdefault(row.kind, row)
    card = newest.get(CARD)
    return Standing(
        requests={row.kind: row.id for row in reversed(rows) if row.state == REQUESTED},
        card=(card.state, card.subject) if card is not None else None,
        marketing=_consent(newest.get(MARKETING)),
    )


def _consent(row: Confirmation | Row[Any] | None) -> tuple[str, datetime] | None:
    if row is None:
        return None
    if row.state == WITHDRAWN and row.withdrawn_at is not None:
        return WITHDRAWN, row.withdrawn_at
    if row.state == CONFIRMED and row.decided_at is not None:
        return CONFIRMED, row.decided_at
    return None


def decide(session: Session, confirmation_id: str, *, accept: bool) -> Decided:
    """The owner's answer to an open request; a second answer changes nothing.

    Accepting a profile claim also confirms that registration's marketing request: the page says so.
    """
    confirmation = session.get(Confirmation, confirmation_id, with_for_update=True)
    if confirmation is None:
        raise InvalidLink("no such confirmation")
    now = utcnow()
    if confirmation.state != REQUESTED:
        return Decided(confirmation.kind, confirmation.state, changed=False)
    if confirmation.expires_at <= now:
        confirmation.state = EXPIRED
        confirmation.decided_at = now
        return Decided(
            confirmation.kind, EXPIRED, changed=False, outbox_id=_after_expiry(session, confirmation)
        )
    confirmation.state = CONFIRMED if accept else DECLINED
    confirmation.decided_at = now
    registration = session.get(Registration, confirmation.registration_id)
    assert registration is not None  # confirmations cascade with their registration
    if confirmation.kind == MARKETING and not accept:
        return Decided(MARKETING, DECLINED, changed=True)  # nothing was subscribed: nothing to undo
    if confirmation.kind == PROFILE:
        if not accept:
            _give_up_waiting(session, registration)
            return Decided(PROFILE, DECLINED, changed=True)
        registration.ownership = Ownership.CONFIRMED
        marketing = requested(session, registration.id, MARKETING)
        if marketing is not None:
            marketing.state, marketing.decided_at = CONFIRMED, now
    message = _reopen(session, registration, REOPENS[confirmation.kind])
    return Decided(confirmation.kind, confirmation.state, changed=True, outbox_id=message.id)


def withdraw(session: Session, confirmation_id: str) -> Decided:
    """Withdraw the marketing consent of the link's address everywhere (the unsubscribe link).

    Every confirmed consent of that address is withdrawn, and the registration that carried it is
    queued to tell the vendors (UNSUBSCRIBED in Shopify, flag 0 in Smaregi, unsubscribed in HubSpot).
    """
    confirmation = session.get(Confirmation, confirmation_id)
    if confirmation is None or confirmation.kind != MARKETING:
        raise InvalidLink("no such subscription")
    now = utcnow()
    rows = session.scalars(
        select(Confirmation).where(
            Confirmation.email == confirmation.email,
            Confirmation.kind == MARKETING,
            or_(Confirmation.state == CONFIRMED, Confirmation.state == REQUESTED),
        )
    ).all()
    outbox_id = None
    for row in rows:
        was_confirmed = row.state == CONFIRMED
        row.state, row.withdrawn_at = WITHDRAWN, now
        if row.decided_at is None:
            row.decided_at = now
        if was_confirmed:
            registration = session.get(Registration, row.registration_id)
            assert registration is not None
            outbox_id = _reopen(session, registration, REOPENS[MARKETING]).id
    return Decided(MARKETING, WITHDRAWN, changed=bool(rows), outbox_id=outbox_id)


def expire_due(database: Database, *, now: datetime | None = None) -> list[int]:
    """Expire every request past its time; the outbox rows to publish (cards get their own member)."""
    now = now or utcnow()
    outbox_ids: list[int] = []
    with database.session() as session:
        due: Sequence[Confirmation] = session.scalars(
            select(Confirmation).where(Confirmation.state == REQUESTED, Confirmation.expires_at <= now)
        ).all()
        for confirmation in due:
            confirmation.state = EXPIRED
            confirmation.decided_at = now
            outbox_id = _after_expiry(session, confirmation)
            if outbox_id is not None:
                outbox_ids.append(outbox_id)
    return outbox_ids


def _after_expiry(session: Session, confirmation: Confirmation) -> int | None:
    """An expired card request lets the registrant have a card of their own; an expired claim ends
    with nothing written (its waiting steps are skipped); nothing else follows."""
    registration = session.get(Registration, confirmation.registration_id)
    assert registration is not None
    if confirmation.kind == PROFILE:
        _give_up_waiting(session, registration)
    if confirmation.kind != CARD:
        return None
    return _reopen(session, registration, REOPENS[CARD]).id


def _give_up_waiting(session: Session, registration: Registration) -> None:
    """A claim its owner declined or let expire: the steps that waited for it end, nothing written
    (a registration synced by it resolves its dead letters: nothing more is owed)."""
    for step in registration.steps:
        if step.state == StepState.WAITING:
            step.state = StepState.SKIPPED
            step.note = "the address's owner did not confirm this registration: nothing written"
    registration.status = derive_status(registration.steps)
    settle_registration(session, registration, by="the claim ending unconfirmed")


def _reopen(session: Session, registration: Registration, systems: Sequence[str]) -> OutboxMessage:
    """Reopen those of `systems` the registration has (a disabled one stays skipped)."""
    present = {step.system: step.state for step in registration.steps}
    return reopen(
        session, registration, [s for s in systems if present.get(s) not in (None, StepState.SKIPPED)]
    )
