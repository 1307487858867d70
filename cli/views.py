"""The text a person reads from each `membersync` command; each view takes the command's JSON document
(what `--json` prints), so the two never say different things."""

from __future__ import annotations

from typing import Any

from cli.output import fields, table
from registrations.states import DeadLetterStatus

MESSAGE_WIDTH = 60


def _short(text: Any, width: int = MESSAGE_WIDTH) -> str:
    value = "" if text is None else str(text).replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


def _when(value: Any) -> str:
    """An ISO time to the second, as the console shows it (UTC)."""
    text = "" if value is None else str(value)
    return text.replace("T", " ")[:19]


def status_text(document: dict[str, Any]) -> str:
    steps = document.get("steps", {})
    rows = [
        [
            system,
            step.get("state"),
            step.get("attempts"),
            step.get("external_id"),
            _short(step.get("last_error") or step.get("note"), 50),
        ]
        for system, step in steps.items()
    ]
    accepted = _when(document.get("created_at"))
    heading = f"Registration {document['id']}: {document['status']} (accepted {accepted} UTC)"
    return heading + "\n\n" + table(["step", "state", "attempts", "external id", "last error / note"], rows)


def dead_letters_text(letters: list[dict[str, Any]], status: str = DeadLetterStatus.OPEN.value) -> str:
    if not letters:
        return f"No {'' if status == 'all' else status + ' '}dead letters."
    rows = [
        [
            letter["id"],
            letter["system"],
            letter["status"],
            letter["attempts"],
            _when(letter["last_failed_at"]),
            letter.get("registration_id") or f"change {letter.get('change_id')}",
            _short(letter["message"]),
        ]
        for letter in letters
    ]
    listing = table(
        ["#", "system", "status", "attempts", "last failed (UTC)", "registration", "message"], rows
    )
    hint = "details: membersync dlq show ID · re-run: membersync dlq replay ID"
    return f"{listing}\n\n{len(letters)} dead letter(s); {hint}"


def dead_letter_text(letter: dict[str, Any]) -> str:
    pairs = [
        ("dead letter", f"#{letter['id']} ({letter['status']})"),
        ("registration", letter.get("registration_id")),
        ("change", letter.get("change_id")),
        ("system", letter["system"]),
        ("task", letter["task_name"]),
        ("error", letter["error_class"]),
        ("message", letter["message"]),
        ("attempts", letter["attempts"]),
        ("first failed", _when(letter["first_failed_at"]) + " UTC"),
        ("last failed", _when(letter["last_failed_at"]) + " UTC"),
    ]
    if "args" in letter:
        pairs.append(("task args", letter["args"]))
    if "notes" in letter:
        pairs.append(("notes", letter["notes"]))
    return fields((label, value) for label, value in pairs if value is not None)


def replay_text(document: dict[str, Any]) -> str:
    lines = [f"Replayed {document['count']}:"] if document["replayed"] else ["Nothing replayed."]
    lines += [
        f"  {_target(entry)}: {', '.join(entry['systems']) or 'its remaining steps'}"
        for entry in document["replayed"]
    ]
    if document.get("not_published"):
        lines.append(f"Reopened but NOT published ({len(document['not_published'])}):")
        lines += [f"  {_target(entry)}" for entry in document["not_published"]]
    if document["replayed"]:
        lines.append("Follow them with membersync status ID (or the console).")
    return "\n".join(lines)


def _target(entry: dict[str, Any]) -> str:
    change = f" (change {entry['change_id']})" if entry.get("change_id") is not None else ""
    return f"registration {entry['registration_id']}{change}"


def backfill_text(document: dict[str, Any]) -> str:
    return f"{document['system']}: {document['reopened']} skipped step(s) reopened and queued."


def directory_text(report: dict[str, Any]) -> str:
    kind = {"full": "Full load", "incremental": "Changes since the last pull", "fresh": "Already fresh"}
    pairs = [
        ("directory sync", kind.get(str(report.get("kind")), report.get("kind"))),
        ("pages", report.get("pages")),
        ("members read", report.get("members")),
        ("removed", report.get("removed")),
        ("watermark", report.get("watermark")),
        ("seconds", report.get("seconds")),
        ("why", ", ".join(report.get("reasons") or []) or None),
    ]
    return fields((label, value) for label, value in pairs if value is not None)
