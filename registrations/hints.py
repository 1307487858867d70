"""What ops are told about a dead letter wherever it shows up (Flower, logs, the digest, the CLI)."""

from __future__ import annotations

REPLAY_TASK = "membersync.replay"


def replay_hint(dead_letter_id: int | str) -> str:
    """The ways to re-run a dead letter, in one line."""
    return (
        f"re-run it from the ops console at /ops/dead-letters/{dead_letter_id}, "
        f"with `membersync dlq replay {dead_letter_id}`, or from Flower: "
        f'POST /api/task/async-apply/{REPLAY_TASK} {{"args": ["{dead_letter_id}"]}}'
    )


def dead_letter_summary(system: str, registration_id: str, dead_letter_id: int | str, reason: str) -> str:
    """The message of the failure a dead-lettered step ends with (ids and reason: no personal data)."""
    return (
        f"{system} step of registration {registration_id} is dead-lettered as #{dead_letter_id} "
        f"({reason}); {replay_hint(dead_letter_id)}"
    )
