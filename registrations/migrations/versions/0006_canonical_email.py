"""Every stored e-mail address in its canonical form (config/email_address.py)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 15:30:00

Until this release the address was canonicalised by two rules: the intake applied NFKC before it
trimmed and lower-cased, the Smaregi member directory only trimmed and lower-cased what a till had
typed. This rewrites `registrations.email`, `identities.email` and `smaregi_directory.email` with the
one rule. Data only, no schema change, so SQLite needs no batch mode (plain UPDATE and DELETE).

- registrations: a row whose canonical address would be longer than its column (lower-casing can
  lengthen non-ASCII text) keeps what it had; such an address was never deliverable.
- identities (email is unique): when two rows become one address, the older row (created_at, then
  id) is kept, each of its empty vendor columns is filled from the newer one, and the newer one is
  deleted. Where both hold a different value, the older one's is kept and the migration logs the two
  row ids (never the address) so a person can look at them.
- smaregi_directory: an address too long for its column becomes NULL, as the directory stores an
  unusable address; the directory is only an index, rebuilt from Smaregi by any full pull.

The downgrade changes nothing: neither the old spellings nor merged identities can be restored.
"""

import logging
import unicodedata
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

EMAIL_COLUMN_CHARS = 254
PAGE = 1000
# The identity's vendor columns as they are at this revision (later ones are not this migration's).
IDENTITY_LINKS = ("shopify_customer_id", "smaregi_customer_id", "smaregi_customer_code", "hubspot_contact_id")

registrations = sa.table("registrations", sa.column("id", sa.String), sa.column("email", sa.String))
directory = sa.table("smaregi_directory", sa.column("customer_id", sa.String), sa.column("email", sa.String))
identities = sa.table(
    "identities",
    sa.column("id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("created_at", sa.DateTime),
    *(sa.column(name, sa.String) for name in IDENTITY_LINKS),
)


def canonical(address: str) -> str:
    """config.email_address.canonical_email as of this revision (a migration must not change later)."""
    folded = unicodedata.normalize("NFKC", address).strip().lower()
    return unicodedata.normalize("NFKC", folded)


def _changed(connection: Any, table: Any, key: Any) -> Iterator[tuple[Any, str]]:
    """(key, canonical address) of each row whose address is not canonical, read a page at a time."""
    last = None
    found: list[tuple[Any, str]] = []
    while True:
        query = sa.select(key, table.c.email).where(table.c.email.is_not(None)).order_by(key).limit(PAGE)
        if last is not None:
            query = query.where(key > last)
        rows = connection.execute(query).all()
        for row_key, email in rows:
            wanted = canonical(email)
            if wanted != email:
                found.append((row_key, wanted))
        if len(rows) < PAGE:
            break
        last = rows[-1][0]
    # Collected before any write, so paging never sees a row it already changed.
    yield from found


def upgrade() -> None:
    connection = op.get_bind()
    for row_id, wanted in _changed(connection, registrations, registrations.c.id):
        if len(wanted) <= EMAIL_COLUMN_CHARS:
            connection.execute(
                registrations.update().where(registrations.c.id == row_id).values(email=wanted)
            )
    for row_id, wanted in _changed(connection, directory, directory.c.customer_id):
        usable = wanted if wanted and len(wanted) <= EMAIL_COLUMN_CHARS else None
        connection.execute(directory.update().where(directory.c.customer_id == row_id).values(email=usable))
    for row_id, wanted in _changed(connection, identities, identities.c.id):
        if len(wanted) <= EMAIL_COLUMN_CHARS:
            _canonicalise_identity(connection, row_id, wanted)


def _canonicalise_identity(connection: Any, row_id: int, wanted: str) -> None:
    """Give identity `row_id` the address `wanted`, merging it with the row that already holds it."""
    columns = [identities.c.id, identities.c.created_at, *(identities.c[name] for name in IDENTITY_LINKS)]
    row = connection.execute(sa.select(*columns).where(identities.c.id == row_id)).one()
    holder = connection.execute(sa.select(*columns).where(identities.c.email == wanted)).one_or_none()
    if holder is None:
        connection.execute(identities.update().where(identities.c.id == row_id).values(email=wanted))
        return
    keep, drop = sorted((row, holder), key=lambda found: (found.created_at, found.id))
    filled: dict[str, Any] = {}
    for name in IDENTITY_LINKS:
        kept, dropped = getattr(keep, name), getattr(drop, name)
        if kept is None and dropped is not None:
            filled[name] = dropped
        elif kept is not None and dropped is not None and kept != dropped:
            log.warning("identities %s and %s disagree on %s: %s kept", keep.id, drop.id, name, keep.id)
    # The newer row goes first: the unique address is then free for the one kept.
    connection.execute(identities.delete().where(identities.c.id == drop.id))
    connection.execute(identities.update().where(identities.c.id == keep.id).values(email=wanted, **filled))


def downgrade() -> None:
    """Nothing to undo: the old spellings and the merged rows are not kept."""
