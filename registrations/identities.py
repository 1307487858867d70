"""One row per person across the systems: looked up before any vendor is asked."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registrations.models import Identity


def identity_for(session: Session, email: str) -> Identity:
    """The person's identity row, created (in the caller's transaction) when new.

    Callers hold the per-email lock, so two transactions never insert the same email; the unique
    constraint is the backstop.
    """
    identity = session.scalar(select(Identity).where(Identity.email == email))
    if identity is None:
        identity = Identity(email=email)
        session.add(identity)
        session.flush()
    return identity


def find_identity(session: Session, email: str) -> Identity | None:
    """The person's identity row, if any step has recorded one."""
    return session.scalar(select(Identity).where(Identity.email == email))
