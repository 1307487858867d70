"""Closing the loop on dead letters (registrations/dead_letters.py): resolved when the registration
reaches synced, saying by what; a replay that fails again links to its predecessor; the list's
filters, all matching ids over pages, the export; paced replays with progress; the audit rows a
replay, discard and resolve write with who; the out-of-retries wording. In-process: SQLite, the World."""

from __future__ import annotations

from sqlalchemy import select

from config.operators import hash_password, operator_matches, parse_operators
from connectors.errors import PermanentError, RateLimited
from registrations.audit import CLI, FLOWER, Actor
from registrations.dead_letters import (
    FAILED_AGAIN,
    DeadLetterFilter,
    DeadLetters,
    Pacer,
    Progress,
    failure_text,
    replay_rate,
)
from registrations.models import OpsAuditEntry
from registrations.ops_queries import PAGE_SIZE
from tests.support.world import World


def fail_smaregi_for(world: World, registration_id: str) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    world.run("smaregi", registration_id)


def audit_rows(world: World) -> list[tuple[str, str, str | None, int | None]]:
    with world.database.session() as session:
        rows = session.scalars(select(OpsAuditEntry).order_by(OpsAuditEntry.id)).all()
        return [(row.operator, row.action, row.via, row.dead_letter_id) for row in rows]


def test_a_replayed_dead_letter_is_resolved_once_its_registration_is_synced_and_says_by_whom(
    world: World,
) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    registration_id = world.accept()
    world.run_all(registration_id)
    [letter] = world.dead_letters()
    DeadLetters(world.publishing, actor=Actor("alice", CLI)).replay(letter.id)
    assert world.dead_letters()[0].status == "replayed"  # not resolved before anything ran
    world.run("smaregi", registration_id)
    world.run("email", registration_id)  # the member number mail the late Smaregi success owes
    assert world.registration(registration_id).status == "synced"
    [resolved] = world.dead_letters()
    assert (resolved.status, resolved.resolved_by) == ("resolved", "replay from cli by alice")
    assert resolved.closed_at is not None
    assert audit_rows(world) == [("alice", "replay", CLI, letter.id)]


def test_an_open_dead_letter_is_resolved_by_a_later_step_run_without_a_replay(world: World) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    registration_id = world.accept()
    world.run_all(registration_id)
    # The step is run again by something other than a replay (reconciliation reopening it, say).
    with world.database.session() as session:
        from registrations.models import Registration
        from registrations.replay import reopen

        registration = session.get(Registration, registration_id)
        assert registration is not None
        reopen(session, registration, ["smaregi"])
    world.run("smaregi", registration_id)
    world.run("email", registration_id)
    [letter] = world.dead_letters()
    assert (letter.status, letter.resolved_by) == ("resolved", "a later smaregi step run")


def test_a_replay_that_fails_again_links_to_its_predecessor_and_is_listed_as_failed_again(
    world: World,
) -> None:
    world.smaregi.fail_next("create_member", PermanentError("HTTP 403: plan", system="smaregi"))
    registration_id = world.accept()
    world.run_all(registration_id)
    [first] = world.dead_letters()
    letters = DeadLetters(world.publishing)
    letters.replay(first.id)
    fail_smaregi_for(world, registration_id)
    first_again, second = world.dead_letters()
    assert (first_again.id, first_again.status, first_again.previous_id) == (first.id, "replayed", None)
    assert (second.status, second.previous_id) == ("open", first.id)
    assert letters.successor(first.id) == second.id
    assert [letter.id for letter in letters.list(DeadLetterFilter(status=FAILED_AGAIN))] == [second.id]
    # A first failure of another registration is open but has not failed again.
    other = world.accept()
    fail_smaregi_for(world, other)
    assert len(letters.list(DeadLetterFilter())) == 2
    assert [letter.id for letter in letters.list(DeadLetterFilter(status=FAILED_AGAIN))] == [second.id]


def test_all_matching_ids_span_every_page_and_the_export_reads_every_row(world: World) -> None:
    letters = DeadLetters(world.database)
    registration_ids = [world.accept() for _ in range(PAGE_SIZE + 3)]
    for registration_id in registration_ids:
        fail_smaregi_for(world, registration_id)
    wanted = DeadLetterFilter(system="smaregi")
    page = letters.page(wanted)
    assert len(page.rows) == PAGE_SIZE and page.has_next
    ids = letters.matching_ids(wanted)
    assert len(ids) == PAGE_SIZE + 3 and ids == sorted(ids)
    assert [letter.id for letter in letters.export(wanted, batch=7)] == ids
    assert letters.matching_ids(DeadLetterFilter(system="hubspot")) == []


def test_replay_paced_keeps_to_the_rate_and_reports_progress(world: World) -> None:
    registration_ids = [world.accept() for _ in range(4)]
    for registration_id in registration_ids:
        fail_smaregi_for(world, registration_id)
    ids = [letter.id for letter in world.dead_letters()]
    DeadLetters(world.database).discard(ids[2], note="handled")
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    seen: list[Progress] = []
    replays = DeadLetters(world.publishing, actor=Actor("bob", FLOWER)).replay_paced(
        [str(letter_id) for letter_id in ids],
        per_second=2.0,
        progress=seen.append,
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert slept == [0.5, 0.5, 0.5]  # 2 a second, the first at once
    assert [(p.done, p.total, p.replayed, p.not_open) for p in seen] == [
        (1, 4, 1, 0),
        (2, 4, 2, 0),
        (3, 4, 2, 1),
        (4, 4, 3, 1),
    ]
    assert replays.not_open == [ids[2]]
    assert [row[:3] for row in audit_rows(world)] == [("bob", "replay", FLOWER)] * 3


def test_the_pace_is_a_share_of_the_slowest_vendor_budget(world: World) -> None:
    # Smaregi's 4 writes a second is the slowest default budget: half of it for the replay.
    assert replay_rate(world.settings) == 2.0
    pacer_clock = [0.0]
    pacer = Pacer(
        4.0, sleep=lambda s: pacer_clock.__setitem__(0, pacer_clock[0] + s), clock=lambda: pacer_clock[0]
    )
    for _ in range(5):
        pacer.wait()
    assert pacer_clock[0] == 1.0


def test_discard_and_resolve_are_audited_with_who_and_from_where(world: World) -> None:
    registration_id = world.accept()
    fail_smaregi_for(world, registration_id)
    other = world.accept()
    fail_smaregi_for(world, other)
    first, second = (letter.id for letter in world.dead_letters())
    DeadLetters(world.database, actor=Actor("carol", CLI)).discard(first, note="test data")
    letter = DeadLetters(world.database, actor=Actor("dave", CLI)).resolve(second, note="made by hand")
    assert letter.resolved_by == "by hand (cli: dave)"
    assert audit_rows(world) == [("carol", "discard", CLI, first), ("dave", "resolve", CLI, second)]


def test_out_of_retries_says_for_how_long_not_budget_spent() -> None:
    spent = RateLimited("smaregi:write budget spent", system="smaregi:write", retry_after=1.0)
    text = failure_text("retries_exhausted", spent, 1860.0)
    assert text == (
        "retried for 31 minutes without success "
        "(the last attempt waited for its turn within the smaregi:write rate limit)"
    )
    assert "budget spent" not in text
    assert failure_text("permanent", PermanentError("HTTP 400"), None) == "HTTP 400"


def test_named_operators_parse_and_match() -> None:
    alice = hash_password("alice's long passphrase")
    operators = parse_operators(
        f"alice:{alice}\n# a comment\n\nbob:{hash_password('bob, another one!')}", source="x"
    )
    assert set(operators) == {"alice", "bob"}
    assert operator_matches(operators, "alice", "alice's long passphrase")
    assert not operator_matches(operators, "alice", "bob, another one!")
    assert not operator_matches(operators, "mallory", "alice's long passphrase")
    for bad in ("alice:plain-password", "al ice:" + alice, f"alice:{alice},alice:{alice}"):
        try:
            parse_operators(bad, source="OPS_USERS")
        except Exception as error:
            assert "OPS_USERS" in str(error) and "plain-password" not in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_ops_user_hash_prints_a_line_ops_users_takes() -> None:
    from click.testing import CliRunner

    from cli.main import main

    answer = CliRunner().invoke(
        main, ["ops-user", "hash", "alice", "--password", "alice walks the night shift"]
    )
    assert answer.exit_code == 0, answer.output
    operators = parse_operators(answer.output.strip(), source="OPS_USERS")
    assert operator_matches(operators, "alice", "alice walks the night shift")
    weak = CliRunner().invoke(main, ["ops-user", "hash", "bob", "--password", "password"])
    assert weak.exit_code != 0 and "password" in weak.output
