"""Migration 0006 rewrites every stored address in the canonical form, on SQLite and PostgreSQL: the
intake's rows, the identities (merging two that become one address, the older one kept) and the
Smaregi directory (which until then only trimmed and lower-cased what a till typed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from config.email_address import canonical_email
from registrations.database import Database

BEFORE = "0005"
AFTER = "0006"


@pytest.fixture
def database_at_0005(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade(BEFORE)
    yield database
    database.dispose()


def _registration(connection: object, row_id: str, email: str) -> None:
    connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO registrations (id, request_fingerprint, email, first_name, last_name, "
            "accepts_marketing, locale, source, status, created_at, updated_at) VALUES "
            "(:id, 'f', :email, '花子', '山田', false, 'ja', 'api', 'synced', "
            "'2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ),
        {"id": row_id, "email": email},
    )


def _identity(connection: object, email: str, created: str, **links: str | None) -> None:
    values = {
        "shopify_customer_id": None,
        "smaregi_customer_id": None,
        "smaregi_customer_code": None,
        "hubspot_contact_id": None,
        **links,
    }
    connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO identities (email, shopify_customer_id, smaregi_customer_id, smaregi_customer_code, "
            "hubspot_contact_id, created_at, updated_at) VALUES (:email, :shopify_customer_id, "
            ":smaregi_customer_id, :smaregi_customer_code, :hubspot_contact_id, :created, :created)"
        ),
        {"email": email, "created": created, **values},
    )


def _member(connection: object, customer_id: str, email: str | None) -> None:
    connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO smaregi_directory (customer_id, customer_code, email, seen_at) "
            "VALUES (:id, :code, :email, '2026-11-20 10:00:00')"
        ),
        {"id": customer_id, "code": f"C{customer_id}", "email": email},
    )


def test_0006_canonicalises_every_stored_address(database_at_0005: Database) -> None:
    long_dotted = "İ" * 100 + "@example.com"  # 112 characters now, 212 once lower-cased
    with database_at_0005.engine.begin() as connection:
        _registration(connection, "r-plain", "hanako@example.com")
        _registration(connection, "r-wide", "ｔａｒｏ@example.com")
        # Lower-cased, this one is longer than the column: it stays as it was.
        _registration(connection, "r-grows", "İ" * 200 + "@example.com")
        # A till typed full-width letters and a capital: the old directory rule kept them.
        _member(connection, "1", "  Ｈａｎａｋｏ@Example.com ")
        _member(connection, "2", "hanako@example.com")
        _member(connection, "3", None)
        _member(connection, "4", long_dotted)
        # Two identities that become one address: the older keeps its ids and gains the newer's.
        _identity(
            connection,
            "ｊｉｒｏ@example.com",
            "2026-11-01 09:00:00",
            shopify_customer_id="gid://shopify/Customer/1",
            hubspot_contact_id="101",
        )
        _identity(
            connection,
            "jiro@example.com",
            "2026-11-02 09:00:00",
            shopify_customer_id="gid://shopify/Customer/2",
            smaregi_customer_id="77",
            smaregi_customer_code="1234567890123456",
        )
        # And the other way round: the newer spelling merges into the older, canonical row.
        _identity(connection, "saburo@example.com", "2026-11-03 09:00:00", shopify_customer_id="gid://x/3")
        _identity(
            connection,
            "ＳＡＢＵＲＯ@example.com",
            "2026-11-04 09:00:00",
            shopify_customer_id="gid://x/4",
            hubspot_contact_id="303",
        )

    database_at_0005.upgrade(AFTER)

    with database_at_0005.engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT id, email FROM registrations")).all())
        members = dict(connection.execute(text("SELECT customer_id, email FROM smaregi_directory")).all())
        people = connection.execute(
            text(
                "SELECT email, shopify_customer_id, smaregi_customer_id, smaregi_customer_code, "
                "hubspot_contact_id FROM identities ORDER BY email"
            )
        ).all()
    assert stored == {
        "r-plain": "hanako@example.com",
        "r-wide": "taro@example.com",
        "r-grows": "İ" * 200 + "@example.com",
    }
    assert members == {
        "1": "hanako@example.com",
        "2": "hanako@example.com",
        "3": None,
        "4": canonical_email(long_dotted),
    }
    assert [tuple(row) for row in people] == [
        ("jiro@example.com", "gid://shopify/Customer/1", "77", "1234567890123456", "101"),
        ("saburo@example.com", "gid://x/3", None, None, "303"),
    ]


def test_0006_leaves_canonical_rows_as_they_are(
    database_at_0005: Database,
) -> None:
    with database_at_0005.engine.begin() as connection:
        _registration(connection, "r-1", "hanako@example.com")
        _identity(connection, "hanako@example.com", "2026-11-01 09:00:00", shopify_customer_id="gid://1")
    database_at_0005.upgrade(AFTER)
    with database_at_0005.engine.connect() as connection:
        assert connection.execute(text("SELECT email FROM registrations")).scalar() == "hanako@example.com"
        assert connection.execute(text("SELECT email, shopify_customer_id FROM identities")).one() == (
            "hanako@example.com",
            "gid://1",
        )
