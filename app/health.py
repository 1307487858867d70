"""`/healthz` (the process answers) and `/readyz` (its database and broker answer; the vendors' checks
are shown beside them, in a section of their own that never makes the web unready)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from app.services import services
from app.vendor_checks import Checked, vendor_checks
from connectors.checks import FAILED, OK

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Liveness: the web process is serving."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: 200 only when both the database and the broker can be reached.

    `vendors` says what the last check of each vendor's credentials found (refreshed in the
    background once a minute: this answer never waits for a vendor). A vendor that refuses is the
    operator's to fix, not a reason to take this process out of service: every registration is
    still accepted and waits in the outbox, so it never decides readiness.
    """
    found = services()
    checks = {"database": _database_ok(), "broker": _broker_ok(found.celery)}
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": checks,
        "vendors": vendors_section(vendor_checks(found.settings).latest(wait=VENDOR_WAIT_SECONDS)),
    }
    return jsonify(body), 200 if ready else 503


# The longest /readyz waits for a vendor check it had to start (the first one, or a stale one).
VENDOR_WAIT_SECONDS = 1.0


def vendors_section(checked: Checked | None) -> dict[str, Any]:
    """Whether every vendor passed, when they were checked, and each one's status and reason
    ("checking" before the first check has ended)."""
    if checked is None:
        return {"status": "checking"}
    return {
        "status": OK if checked.ok else FAILED,
        "checked_at": checked.at.isoformat(timespec="seconds"),
        "systems": {
            name: {"status": outcome.status, **({"reason": outcome.reason} if outcome.reason else {})}
            for name, outcome in checked.outcomes.items()
        },
    }


def _database_ok() -> bool:
    try:
        with services().database.session() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _broker_ok(celery: object) -> bool:
    try:
        with celery.connection_for_write() as connection:  # type: ignore[attr-defined]
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception:
        return False
    return True
