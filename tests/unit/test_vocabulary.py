"""One vocabulary: each state is spelled as a bare string in one production module, its definition
(`registrations/states.py`), and everywhere else named through its `StrEnum` member."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from registrations import confirmations
from registrations.models import Base, Registration, SyncStep
from registrations.states import (
    VOCABULARIES,
    ConfirmationKind,
    ConfirmationState,
    DeadLetterStatus,
    Ownership,
    PointMovementState,
    RegistrationStatus,
    StepState,
)

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("app", "cli", "config", "connectors", "registrations", "tasks")
DEFINITION = "registrations/states.py"
# A migration states the schema and the data of its own time: it must not import today's code.
MIGRATIONS = "registrations/migrations/"

# The same words meaning something other than a state, each with the reason.
ALLOWED: dict[tuple[str, str], str] = {
    ("connectors/mailer/client.py", "card"): "the name of the welcome mail's card link, in an error message",
    ("connectors/shopify/versions.py", "requested"): "a metric label: the Admin API version requested",
    ("tasks/directory.py", "skipped"): "a directory pull's report kind when another pull is running",
    ("tasks/directory.py", "requested"): "why a full directory load ran (free text of its report)",
    ("cli/main.py", "requested"): "why a full directory load ran (free text of its report)",
    ("cli/main.py", "replayed"): "the JSON key of `membersync dlq replay`'s output: what was replayed",
    ("cli/views.py", "replayed"): "the same JSON key, read back to say in words what was replayed",
    ("connectors/checks.py", "failed"): "a credentials check's verdict on a vendor, not a state",
    ("connectors/checks.py", "skipped"): "a credentials check's verdict: the system is switched off",
    ("registrations/replay_jobs.py", "replayed"): "a bulk replay's progress counter: how many were replayed",
    ("app/ops/language.py", "accepted"): "the console label of the time a registration was accepted",
}

WORDS: dict[str, list[str]] = {}
for vocabulary in VOCABULARIES:
    for member in vocabulary:
        WORDS.setdefault(member.value, []).append(f"{vocabulary.__name__}.{member.name}")


def bare_states(source: str) -> list[tuple[int, str]]:
    """(line, word) of every string constant that is a state word as a whole (the literal pieces of
    an f-string are parts of a longer text, not constants of their own)."""
    tree = ast.parse(source)
    pieces = {
        id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for value in node.values
    }
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in WORDS
        and id(node) not in pieces
    )


def production_modules() -> list[str]:
    found = sorted(
        path.relative_to(ROOT).as_posix() for package in PRODUCTION for path in (ROOT / package).rglob("*.py")
    )
    return [path for path in found if path != DEFINITION and not path.startswith(MIGRATIONS)]


def test_each_state_is_spelled_only_where_it_is_defined() -> None:
    spelled = [
        f"{path}:{line}: {word!r} (use {' or '.join(WORDS[word])})"
        for path in production_modules()
        for line, word in bare_states((ROOT / path).read_text())
        if (path, word) not in ALLOWED
    ]
    assert spelled == []


def test_every_exception_is_still_needed() -> None:
    used = {
        (path, word) for path in production_modules() for _, word in bare_states((ROOT / path).read_text())
    }
    assert set(ALLOWED) - used == set()


def test_the_scan_finds_a_bare_state_wherever_it_hides() -> None:
    source = (
        "if step.state == 'dead':\n"
        '    query = select(DeadLetter).where(DeadLetter.status == "open")\n'
        "STATES = {'pending': 1}\n"
        "label = f'{state}dead'  # a word inside a longer string is not a state\n"
        "mode = open(path, 'r')  # the builtin open is a name\n"
    )
    assert bare_states(source) == [(1, "dead"), (2, "open"), (3, "pending")]


def test_the_scan_reads_every_production_package() -> None:
    modules = production_modules()
    assert {path.partition("/")[0] for path in modules} == set(PRODUCTION)
    assert DEFINITION not in modules and not any(path.startswith(MIGRATIONS) for path in modules)
    assert "registrations/sync.py" in modules and "tasks/base.py" in modules


def test_the_vocabularies_hold_the_values_the_database_has() -> None:
    # The stored strings: a changed value would need a migration of every row that holds it.
    assert tuple(RegistrationStatus) == ("accepted", "syncing", "synced", "partial", "failed", "waiting")
    assert tuple(StepState) == ("pending", "running", "succeeded", "skipped", "dead", "waiting")
    assert tuple(DeadLetterStatus) == ("open", "replayed", "resolved", "discarded")
    assert tuple(ConfirmationKind) == ("marketing", "profile", "card")
    assert tuple(ConfirmationState) == ("requested", "confirmed", "declined", "expired", "withdrawn")
    assert tuple(Ownership) == ("owner", "claim", "confirmed")
    assert tuple(PointMovementState) == ("planned", "sent", "applied", "unclear", "failed")
    # The names confirmations.py always exported are the members themselves.
    assert confirmations.MARKETING is ConfirmationKind.MARKETING
    assert confirmations.WITHDRAWN is ConfirmationState.WITHDRAWN


@pytest.mark.parametrize("member", [member for vocabulary in VOCABULARIES for member in vocabulary])
def test_a_member_is_its_stored_string(member: str) -> None:
    assert member == member.value and hash(member) == hash(member.value)
    assert str(member) == f"{member}" == member.value and {member.value: 1}[member] == 1


def test_members_are_stored_as_their_plain_value(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'vocabulary.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        registration = Registration(
            request_fingerprint="f", email="a@example.com", first_name="A", last_name="B"
        )
        registration.steps = [SyncStep(system="shopify"), SyncStep(system="smaregi", state=StepState.DEAD)]
        session.add(registration)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT status FROM registrations")).scalar_one()
        steps = connection.execute(text("SELECT system, state FROM sync_steps ORDER BY system")).all()
    assert stored == "accepted" and type(stored) is str and stored == RegistrationStatus.ACCEPTED
    assert [tuple(row) for row in steps] == [("shopify", "pending"), ("smaregi", "dead")]
    assert DeadLetterStatus("open") is DeadLetterStatus.OPEN  # read back, a value becomes its member
