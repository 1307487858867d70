"""One row per person across the systems: looked up before any vendor is asked."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from registrations.database import dialect_insert
from registrations.models import Identity, utcnow
from registrations.steps.base import Known

# Built once: every step reads or writes the identity, and building a statement costs more than
# running it. What a step is given (`Known`) is selected as plain columns: no ORM object to build.
_IDENTITY_OF = select(Identity).where(Identity.email == bindparam("address"))
_KNOWN_OF = select(*(Identity.__table__.c[spec.name] for spec in fields(Known))).where(
    Identity.__table__.c.email == bindparam("address")
)


def identity_for(session: Session, email: str) -> Identity:
    """The person's identity row, created (in the caller's transaction) when new.

    Callers hold the per-email lock, so two transactions never insert the same email; the unique
    constraint is the backstop.
    """
    identity = session.scalar(_IDENTITY_OF, {"address": email})
    if identity is None:
        identity = Identity(email=email)
        session.add(identity)
        session.flush()
    return identity


def find_identity(session: Session, email: str) -> Identity | None:
    """The person's identity row, if any step has recorded one."""
    return session.scalar(select(Identity).where(Identity.email == email))


def find_known(session: Session, email: str) -> Known:
    """What the identity row knows of the person (empty when no step has recorded one)."""
    row = session.execute(_KNOWN_OF, {"address": email}).first()
    return Known() if row is None else Known(**row._asdict())


_IDENTITIES = cast(Table, Identity.__table__)


def learn(session: Session, email: str, values: Mapping[str, Any]) -> None:
    """Set `values` (identity columns) on the person's identity row, creating it when new, in one
    statement of the caller's transaction (callers hold the per-email lock, as for `identity_for`)."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    session.execute(
        _learning(dialect, tuple(sorted(values))),
        {**values, "email": email, "created_at": now, "updated_at": now},
    )


@functools.cache
def _learning(dialect: str, columns: tuple[str, ...]) -> Any:
    # One statement per dialect and set of columns (each step learns the same few), built once.
    statement = dialect_insert(dialect)(_IDENTITIES)
    changes = {name: statement.excluded[name] for name in (*columns, "updated_at")}
    return statement.on_conflict_do_update(index_elements=[_IDENTITIES.c.email], set_=changes)
