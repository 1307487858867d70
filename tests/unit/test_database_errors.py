"""A failed statement's error, as it is logged, carries no parameter value (they are personal data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from registrations.database import make_engine


def test_a_failed_statement_does_not_show_its_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'errors.db'}")
    try:
        with pytest.raises(OperationalError) as failure, engine.connect() as connection:
            connection.execute(
                text("INSERT INTO missing (email) VALUES (:email)"), {"email": "hanako@example.com"}
            )
        assert "hanako@example.com" not in str(failure.value)
    finally:
        engine.dispose()
