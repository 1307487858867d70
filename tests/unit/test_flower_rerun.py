"""What the Flower re-run extension reads from a task and does to Flower's page (cli.flower_rerun)."""

from __future__ import annotations

from types import SimpleNamespace

from cli.flower_rerun import failed_dead_letter, link_console_paths
from registrations.hints import dead_letter_summary

MESSAGE = dead_letter_summary("hubspot", "7d0c9a6e-reg", 42, "retries_exhausted")


def task(name: str, state: str, exception: str | None) -> SimpleNamespace:
    return SimpleNamespace(name=name, state=state, exception=exception, result=None)


def test_a_failed_step_names_its_dead_letter() -> None:
    assert (
        failed_dead_letter(
            task("membersync.hubspot.upsert_contact", "FAILURE", f"StepDeadLettered('{MESSAGE}')")
        )
        == 42
    )


def test_only_failed_membersync_tasks_that_name_a_dead_letter_get_a_button() -> None:
    assert failed_dead_letter(task("membersync.hubspot.upsert_contact", "SUCCESS", MESSAGE)) is None
    assert failed_dead_letter(task("other.app.task", "FAILURE", MESSAGE)) is None
    assert failed_dead_letter(task("membersync.replay", "FAILURE", "NothingToReplay('42')")) is None
    assert failed_dead_letter(task("membersync.hubspot.upsert_contact", "FAILURE", None)) is None


def test_the_console_path_in_a_message_becomes_a_link_and_nothing_else_changes() -> None:
    html = f'<dd>{MESSAGE}</dd><a href="/ops/dead-letters/9">x</a>'
    linked = link_console_paths(html, "https://members.example.jp")
    assert '<a href="https://members.example.jp/ops/dead-letters/42">/ops/dead-letters/42</a>' in linked
    assert '<a href="/ops/dead-letters/9">x</a>' in linked  # an attribute is left alone
    assert linked.count("<a ") == 2
