"""A welcome that went out without the member number is followed by the number, once, as soon as the
Smaregi step succeeds (replay, backfill); a welcome that carried it is followed by nothing.

In-process: SQLite, fakes behind every connector, Celery eager; the ledger, the steps and the
publishing are the real ones, only the broker is a list.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connectors.errors import PermanentError
from connectors.mailer import WelcomeMessage
from registrations.dead_letters import DeadLetters, NothingToReplay
from registrations.identities import identity_for
from registrations.models import OutboxMessage, Registration
from registrations.replay import backfill
from registrations.steps.base import Known, Registrant, Work
from registrations.steps.email import WelcomeEmailStep
from registrations.sync import queue_member_number_mail
from tests.support.world import PERSON, World

REFUSED = PermanentError("HTTP 403: plan", system="smaregi")


def welcome_without_number(world: World) -> str:
    """A registration whose Smaregi step was refused, so its welcome went out without the number."""
    world.smaregi.fail_next("create_member", REFUSED)
    registration_id = world.accept()
    world.run_all(registration_id)
    world.published.clear()  # the chain carried on past the dead step; the run above delivered it
    registration = world.registration(registration_id)
    assert registration.step("smaregi").state == "dead"
    assert [message.member_number for message in world.welcomes()] == [None]
    assert registration.member_number_mailed_at is None
    return registration_id


def test_a_welcome_with_the_number_is_followed_by_nothing(world: World) -> None:
    registration_id = world.accept()
    world.run_all(registration_id)
    registration = world.registration(registration_id)
    assert [message.member_number for message in world.welcomes()] == [world.member_code()]
    assert registration.member_number_mailed_at is not None
    assert registration.status == "synced"
    world.run_all(registration_id)  # redelivered
    assert world.published == [] and world.number_mails() == []
    assert len(world.mailer.sent) == 1


def test_after_a_replay_the_number_follows_once(world: World) -> None:
    registration_id = welcome_without_number(world)
    welcome_id = world.registration(registration_id).step("email").external_id

    DeadLetters(world.publishing).replay(world.letter_ids()[0])
    assert world.published == [(registration_id, ["smaregi"])]
    world.run_published()

    [number_mail] = world.number_mails()
    assert number_mail.member_number == world.member_code()
    assert number_mail.to == PERSON["email"] and number_mail.locale == "ja"
    assert number_mail.message_id.startswith(f"<member-number.{registration_id}@")
    assert number_mail.message_id != welcome_id
    registration = world.registration(registration_id)
    assert registration.status == "synced"
    assert registration.member_number_mailed_at is not None
    email = registration.step("email")
    # The step still names the welcome (what tells a later run it went out), and says what followed.
    assert (email.state, email.external_id, email.note) == (
        "succeeded",
        welcome_id,
        "member number sent in a follow-up email",
    )
    assert len(world.welcomes()) == 1


def test_a_second_replay_or_a_redelivery_sends_nothing_more(world: World) -> None:
    registration_id = welcome_without_number(world)
    DeadLetters(world.publishing).replay(registration_id)
    world.run_published()
    assert len(world.number_mails()) == 1

    with pytest.raises(NothingToReplay):
        DeadLetters(world.publishing).replay(registration_id)
    world.run_all(registration_id)  # every step delivered again
    with world.database.session() as session:
        registration = session.get(Registration, registration_id)
        assert registration is not None
        assert queue_member_number_mail(session, registration, world.settings) is None
    assert world.published == []
    assert len(world.number_mails()) == 1 and len(world.welcomes()) == 1


def test_the_reopened_step_is_in_the_outbox_for_the_relay_when_publishing_fails(world: World) -> None:
    registration_id = welcome_without_number(world)

    def unpublished() -> list[int]:
        with world.database.session() as session:
            return list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.published_at.is_(None))))

    before = unpublished()  # the acceptance's row: this harness publishes nothing on intake
    DeadLetters(world.publishing).replay(registration_id)
    world.broker_error = ConnectionError("broker down")  # for the follow-up the Smaregi step queues
    world.run_published()
    assert world.number_mails() == []
    [follow_up] = set(unpublished()) - set(before)
    with world.database.session() as session:
        message = session.get(OutboxMessage, follow_up)
        assert message is not None and message.registration_id == registration_id
        assert message.last_error == "ConnectionError: broker down"
    assert world.registration(registration_id).step("email").state == "pending"


def test_a_backfilled_smaregi_step_sends_the_number(world: World) -> None:
    world.switch(SYNC_SMAREGI_ENABLED="false")
    registration_id = world.accept()
    world.run_all(registration_id)
    assert world.registration(registration_id).step("smaregi").state == "skipped"
    assert [message.member_number for message in world.welcomes()] == [None]

    world.switch(SYNC_SMAREGI_ENABLED="true")
    assert backfill(world.publishing, world.settings, "smaregi") == 1
    world.run_published()
    assert [message.member_number for message in world.number_mails()] == [world.member_code()]
    assert world.registration(registration_id).member_number_mailed_at is not None


TILL_CODE = "4913205588312347"


def test_smaregi_succeeding_while_the_welcome_is_being_sent_still_gets_the_number_out(world: World) -> None:
    """The welcome read no number, Smaregi recorded before the welcome did (another worker, e.g. a
    replay: the person's lock keeps them apart, so its record is written here as it would land): the
    welcome's own record sees the number it did not carry and reopens itself."""
    registration_id = world.accept()
    world.run("shopify", registration_id)
    world.run("hubspot", registration_id)
    real_send = world.mailer.send_welcome

    def send_while_smaregi_finishes(message: WelcomeMessage) -> None:
        with world.database.session() as session:
            registration = session.get(Registration, registration_id)
            assert registration is not None
            registration.step("smaregi").state = "succeeded"
            identity_for(session, registration.email).smaregi_customer_code = TILL_CODE
        real_send(message)

    world.mailer.send_welcome = send_while_smaregi_finishes  # type: ignore[method-assign]
    world.run("email", registration_id)
    assert [message.member_number for message in world.welcomes()] == [None]
    assert world.published == [(registration_id, ["email"])]
    world.run_published()
    assert [message.member_number for message in world.number_mails()] == [TILL_CODE]


def test_no_follow_up_while_email_is_switched_off(world: World) -> None:
    registration_id = welcome_without_number(world)
    world.switch(SYNC_WELCOME_EMAIL_ENABLED="false")
    DeadLetters(world.publishing).replay(registration_id)
    world.run_published()
    assert world.number_mails() == []
    registration = world.registration(registration_id)
    assert (registration.step("email").state, registration.status) == ("succeeded", "synced")


def test_a_follow_up_the_mail_server_refuses_is_dead_lettered_and_replayable(world: World) -> None:
    registration_id = welcome_without_number(world)
    world.mailer.fail_next("send_member_number", PermanentError("SMTP 550", system="email"))
    DeadLetters(world.publishing).replay(registration_id)
    world.run_published()
    assert world.registration(registration_id).step("email").state == "dead"
    assert world.number_mails() == []

    DeadLetters(world.publishing).replay(registration_id)
    world.run_published()
    assert [message.member_number for message in world.number_mails()] == [world.member_code()]
    assert len(world.welcomes()) == 1


def test_the_step_sends_nothing_once_the_number_has_been_mailed(world: World) -> None:
    work = Work(
        registration_id="7d6f1c2e-8a3b-4c5d-9e0f-112233445566",
        registrant=Registrant(**PERSON),
        known=Known(smaregi_customer_code="4913205588312347"),
        previous_external_id="<welcome.7d6f1c2e-8a3b-4c5d-9e0f-112233445566@membersync.example>",
        member_number_mailed=True,
    )
    outcome = WelcomeEmailStep(world.settings, world.database).call(work, world.celery.membersync.connectors)
    assert world.mailer.sent == []
    assert (outcome.external_id, outcome.member_number_mailed) == (work.previous_external_id, False)
