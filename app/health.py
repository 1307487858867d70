"""`/healthz` (the process answers) and `/readyz` (its database and broker answer)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from app.services import services

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Liveness: the web process is serving."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: 200 only when both the database and the broker can be reached."""
    found = services()
    checks = {"database": _database_ok(), "broker": _broker_ok(found.celery)}
    ready = all(checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


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
