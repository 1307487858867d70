"""A registration's status document: per-system state, ids and errors, and no personal data."""

from __future__ import annotations

from typing import Any

from tasks.models import Registration


def status_document(registration: Registration) -> dict[str, Any]:
    """The body of `GET /api/registrations/<id>` and `membersync status ID`."""
    return {
        "id": registration.id,
        "status": registration.status,
        "created_at": registration.created_at.isoformat(),
        "steps": {
            step.system: {
                "state": step.state,
                "external_id": step.external_id,
                "attempts": step.attempts,
                "last_error": step.last_error,
                "updated_at": step.updated_at.isoformat() if step.updated_at else None,
            }
            for step in registration.steps
        },
    }
