"""New dead letters reach ops as one digest email per run, with ids and reasons and no personal data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.settings import Settings
from config.systems import SYSTEM_NAMES
from connectors.errors import PermanentError
from registrations.alerts import alert_new_dead_letters
from registrations.database import Database
from registrations.dead_letters import record_dead_letter
from registrations.models import Registration, SyncStep


def dead_letter(database: Database, email: str, system: str) -> str:
    with database.session() as session:
        registration = Registration(request_fingerprint="f", email=email, first_name="花子", last_name="山田")
        registration.steps = [SyncStep(system=name) for name in SYSTEM_NAMES]
        session.add(registration)
        session.flush()
        record_dead_letter(
            session,
            registration_id=registration.id,
            system=system,
            task_name=f"membersync.{system}",
            error=PermanentError("smaregi POST /sandbox/pos/customers: HTTP 400: Bad Request"),
            reason="permanent",
            attempts=1,
        )
        return registration.id


def test_one_digest_per_run_and_nothing_twice(
    database: Database, make_settings: Callable[..., Settings], sandbox: Any
) -> None:
    settings = make_settings(OPS_ALERT_EMAIL="ops@shop.example", **sandbox.env)
    first = dead_letter(database, "hanako@example.com", "smaregi")
    second = dead_letter(database, "taro@example.com", "hubspot")

    assert alert_new_dead_letters(settings, database) == 2
    assert alert_new_dead_letters(settings, database) == 0  # already told

    (message,) = sandbox.messages()
    assert message["recipients"] == ["ops@shop.example"]
    assert "2 new dead letter" in message["subject"]
    text = message["text"] or ""
    assert first in text and second in text and "smaregi" in text and "hubspot" in text
    assert "example.com" not in text and "花子" not in text  # ids and reasons only

    third = dead_letter(database, "jiro@example.com", "email")
    assert alert_new_dead_letters(settings, database) == 1
    newest = sandbox.messages()[0]
    assert third in (newest["text"] or "") and first not in (newest["text"] or "")


def test_without_an_alert_address_the_letters_are_still_marked(
    database: Database, make_settings: Callable[..., Settings], sandbox: Any
) -> None:
    dead_letter(database, "hanako@example.com", "smaregi")
    assert alert_new_dead_letters(make_settings(**sandbox.env), database) == 1
    assert sandbox.messages() == []


def test_a_step_past_its_budget_is_reported_once(
    database: Database, make_settings: Callable[..., Settings], sandbox: Any
) -> None:
    from datetime import timedelta

    from registrations.alerts import report_steps_over_budget
    from registrations.models import utcnow

    settings = make_settings(OPS_ALERT_EMAIL="ops@shop.example", **sandbox.env)
    budget = settings.retry_policies["hubspot"].budget_seconds
    with database.session() as session:
        registration = Registration(
            request_fingerprint="f", email="jiro@example.com", first_name="次郎", last_name="山田"
        )
        registration.steps = [SyncStep(system=name, state="succeeded") for name in SYSTEM_NAMES]
        registration.step("hubspot").state = "pending"
        registration.step("hubspot").first_attempt_at = utcnow() - timedelta(seconds=budget + 60)
        registration.step("smaregi").state = "running"
        registration.step("smaregi").first_attempt_at = utcnow() - timedelta(seconds=30)  # within budget
        session.add(registration)
        session.flush()
        registration_id = registration.id
    reported: set[int] = set()

    def first_time(step: Any) -> bool:
        new = step.step_id not in reported
        reported.add(step.step_id)
        return new

    [step] = report_steps_over_budget(settings, database, first_time)
    assert (step.registration_id, step.system, step.state) == (registration_id, "hubspot", "pending")
    assert report_steps_over_budget(settings, database, first_time) == []  # once
    [message] = sandbox.messages()
    assert "past their retry budget" in message["subject"] and registration_id in message["text"]
    assert "jiro@example.com" not in message["text"]
