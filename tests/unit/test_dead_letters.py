"""The dead-letter service every way in uses (CLI, console, Celery task, alerts): the one query of
the open ones, list and page, show, replay (by a dead letter's or a registration's id, each
registration once), discard, resolve, and the alert hand-over. In-process: SQLite, the World."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from connectors.errors import PermanentError
from registrations.dead_letters import (
    DeadLetterFilter,
    DeadLetters,
    NothingToReplay,
    NotOpen,
    open_dead_letters,
    record_dead_letter,
)
from registrations.models import DeadLetter, OutboxMessage, Registration, SyncStep
from registrations.states import DeadLetterStatus, StepState
from tests.support.world import World


def dead(world: World, *systems: str, reason: str = "permanent") -> tuple[str, list[int]]:
    """A registration whose `systems` steps are dead, each with its open dead letter."""
    registration_id = world.accept()
    letter_ids = []
    with world.database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        for system in systems:
            registration.step(system).state = StepState.DEAD
            letter = record_dead_letter(
                session,
                registration_id=registration_id,
                system=system,
                task_name=f"membersync.{system}",
                error=PermanentError("HTTP 400", system=system),
                reason=reason,
                attempts=1,
            )
            session.flush()
            letter_ids.append(letter.id)
    return registration_id, letter_ids


def statuses(world: World) -> dict[int, str]:
    with world.database.session() as session:
        return {letter.id: letter.status for letter in session.scalars(select(DeadLetter))}


def step_states(world: World) -> dict[tuple[str, str], str]:
    with world.database.session() as session:
        return {(step.registration_id, step.system): step.state for step in session.scalars(select(SyncStep))}


def test_the_open_query_narrows_by_registration_and_system(world: World) -> None:
    first, (smaregi, hubspot) = dead(world, "smaregi", "hubspot")
    second, (other,) = dead(world, "hubspot")
    DeadLetters(world.database).discard(other)
    with world.database.session() as session:
        assert session.scalars(open_dead_letters().with_only_columns(DeadLetter.id)).all() == [
            smaregi,
            hubspot,
        ]
        assert session.scalars(open_dead_letters(registration_id=second)).all() == []
        found = session.scalars(open_dead_letters(registration_id=first, system="hubspot")).all()
        assert [letter.id for letter in found] == [hubspot]


def test_list_is_oldest_first_and_page_newest_first_under_one_filter(world: World) -> None:
    _, (a,) = dead(world, "smaregi", reason="retries_exhausted")
    _, (b,) = dead(world, "hubspot", reason="permanent")
    _, (c,) = dead(world, "smaregi", reason="permanent")
    letters = DeadLetters(world.database)
    assert [letter.id for letter in letters.list()] == [a, b, c]
    assert [letter.id for letter in letters.list(DeadLetterFilter(system="smaregi"))] == [a, c]
    assert [letter.id for letter in letters.list(DeadLetterFilter(reason="permanent"))] == [b, c]
    assert [letter.id for letter in letters.page(DeadLetterFilter(), number=1).rows] == [c, b, a]
    letters.discard(b)
    assert [letter.id for letter in letters.list(DeadLetterFilter(status=None))] == [a, b, c]
    assert [letter.id for letter in letters.list(DeadLetterFilter(status="discarded"))] == [b]
    assert letters.open_by_system_and_reason() == {
        ("smaregi", "retries_exhausted"): 1,
        ("smaregi", "permanent"): 1,
    }
    shown = letters.show(b)
    assert shown is not None and shown.status == "discarded" and letters.show(999) is None


def test_a_replay_by_one_letter_reopens_every_open_letter_of_its_registration(world: World) -> None:
    registration_id, (smaregi, hubspot) = dead(world, "smaregi", "hubspot")
    bystander, (untouched,) = dead(world, "hubspot")
    world.published.clear()
    replayed = DeadLetters(world.publishing).replay(hubspot)
    assert (replayed.registration_id, replayed.systems) == (registration_id, ("smaregi", "hubspot"))
    assert replayed.letter_ids == (smaregi, hubspot) and replayed.published
    # The chain from the first unfinished step (nothing else of this registration ran here; the
    # consent step starts done).
    assert world.published == [(registration_id, ["shopify", "smaregi", "hubspot", "email"])]
    assert statuses(world) == {smaregi: "replayed", hubspot: "replayed", untouched: "open"}
    registration = world.registration(registration_id)
    assert (registration.step("smaregi").state, registration.step("smaregi").attempts) == ("pending", 0)
    with pytest.raises(NothingToReplay, match=f"nothing open to replay for {hubspot}"):
        DeadLetters(world.publishing).replay(hubspot)
    assert DeadLetters(world.publishing).replay(bystander).letter_ids == (untouched,)


def test_a_replay_the_broker_did_not_take_says_so_and_waits_in_the_outbox(world: World) -> None:
    registration_id, (letter,) = dead(world, "hubspot")
    world.broker_error = ConnectionError("broker down")
    replayed = DeadLetters(world.publishing).replay(registration_id)
    assert not replayed.published
    with world.database.session() as session:
        row = session.get(OutboxMessage, replayed.outbox_id)
        assert row is not None and row.published_at is None and row.publish_attempts == 1
    assert statuses(world) == {letter: "replayed"}


def test_replay_letters_replays_each_registration_once_and_reports_what_was_not_open(world: World) -> None:
    first, (a, b) = dead(world, "smaregi", "hubspot")
    second, (c,) = dead(world, "hubspot")
    _, (closed,) = dead(world, "email")
    letters = DeadLetters(world.publishing)
    letters.discard(closed)
    world.published.clear()
    replays = letters.replay_letters([c, b, a, closed, 12345])
    assert [(r.registration_id, r.letter_ids) for r in replays.replayed] == [(first, (a, b)), (second, (c,))]
    assert replays.not_open == [closed]  # the unknown id is ignored
    assert [registration_id for registration_id, _ in world.published] == [first, second]


def test_discard_and_resolve_close_an_open_letter_once_with_a_note(world: World) -> None:
    registration_id, (discarded, resolved) = dead(world, "smaregi", "hubspot")
    letters = DeadLetters(world.database)
    assert letters.discard(discarded).notes == "discarded: by ops"
    closed = letters.resolve(resolved, note="member made by hand in HubSpot")
    assert (closed.status, closed.notes) == ("resolved", "resolved: member made by hand in HubSpot")
    for close in (letters.discard, letters.resolve):
        with pytest.raises(NotOpen, match=f"no open dead letter {resolved}"):
            close(resolved)
    with pytest.raises(NotOpen):
        letters.resolve(999)
    # Nothing is run: the steps stay dead and nothing is queued.
    registration = world.registration(registration_id)
    assert registration.step("hubspot").state == "dead" and world.published == []
    assert letters.open_registrations() == []


def test_alerts_are_handed_over_once_and_a_failing_hand_over_marks_nothing(world: World) -> None:
    _, (a, b) = dead(world, "smaregi", "hubspot")
    letters = DeadLetters(world.database)

    def fail(_letters: Sequence[DeadLetter]) -> None:
        raise ConnectionError("mail server down")

    with pytest.raises(ConnectionError):
        letters.alert_new(fail, limit=10)
    told: list[list[int]] = []
    assert letters.alert_new(lambda found: told.append([letter.id for letter in found]), limit=1) == 1
    assert letters.alert_new(lambda found: told.append([letter.id for letter in found]), limit=10) == 1
    assert letters.alert_new(lambda found: told.append([letter.id for letter in found]), limit=10) == 0
    assert told == [[a], [b]]


@pytest.fixture(scope="module")
def shared_world() -> Iterator[World]:
    with tempfile.TemporaryDirectory() as folder:
        made = World(Path(folder))
        yield made
        made.database.dispose()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    layout=st.lists(
        st.sets(st.sampled_from(("smaregi", "hubspot", "email")), min_size=1), min_size=1, max_size=4
    ),
    pick=st.integers(min_value=0, max_value=50),
    by=st.sampled_from(("letter", "registration", "unknown")),
)
def test_a_replay_never_touches_another_registrations_letters(
    shared_world: World, layout: list[set[str]], pick: int, by: str
) -> None:
    made = [dead(shared_world, *sorted(systems)) for systems in layout]
    before = statuses(shared_world)
    steps_before = step_states(shared_world)
    registration_id, letter_ids = made[pick % len(made)]
    target = {"letter": str(letter_ids[-1]), "registration": registration_id, "unknown": str(10**9 + pick)}[
        by
    ]
    if by == "unknown":
        with pytest.raises(NothingToReplay):
            DeadLetters(shared_world.publishing).replay(target)
        assert statuses(shared_world) == before
        return
    DeadLetters(shared_world.publishing).replay(target)
    after = statuses(shared_world)
    changed = {letter_id for letter_id in after if after[letter_id] != before[letter_id]}
    assert changed == set(letter_ids)
    assert all(after[letter_id] == DeadLetterStatus.REPLAYED for letter_id in letter_ids)
    steps_after = step_states(shared_world)
    assert {key for key in steps_after if steps_after[key] != steps_before[key]} == {
        (registration_id, system) for system in layout[pick % len(made)]
    }
