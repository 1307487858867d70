"""The wiring of the system registry in plain imports: each registered system has its step and (but
consent) its client, and every real client and fake offers what its Protocol promises."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import pytest
import redis

from config.settings import Settings
from config.systems import SYSTEM_NAMES, SYSTEMS
from connectors.fakes import FakeHubSpot, FakeMailer, FakeShopify, FakeSmaregi
from connectors.hubspot import HubSpotClient
from connectors.interfaces import HubSpotApi, MailSender, ShopifyApi, SmaregiApi
from connectors.mailer import Mailer
from connectors.registry import WITHOUT_CLIENT, Connectors
from connectors.shopify import ShopifyClient
from connectors.smaregi import SmaregiClient
from registrations.steps import Step
from registrations.steps.registry import STEP_CLASSES
from tasks.factory import create_celery_app


def test_every_registered_system_has_exactly_one_step() -> None:
    assert list(STEP_CLASSES) == list(SYSTEM_NAMES)  # the registry's order, nothing more or less
    for name, step in STEP_CLASSES.items():
        assert issubclass(step, Step) and step.system == name


def test_each_step_task_runs_its_systems_step() -> None:
    celery = create_celery_app(Settings.from_env(environ={"DATABASE_URL": "sqlite:///:memory:"}))
    celery.loader.import_default_modules()
    for system in SYSTEMS:
        task = celery.tasks[system.task_name]
        assert task.step_class is STEP_CLASSES[system.name]


def test_every_registered_system_but_consent_has_a_client_under_its_name() -> None:
    attributes = [spec.name for spec in fields(Connectors)]
    assert {"consent"} == WITHOUT_CLIENT and set(SYSTEM_NAMES) >= WITHOUT_CLIENT
    assert attributes == [name for name in SYSTEM_NAMES if name not in WITHOUT_CLIENT]


def test_the_real_clients_are_built_for_their_systems() -> None:
    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "test"})
    # Nothing is asked of Redis while the clients are built (the buckets talk to it per call).
    connectors = Connectors.from_settings(settings, redis.Redis.from_url("redis://127.0.0.1:1"))
    built = {name: type(getattr(connectors, name)) for name in ("shopify", "smaregi", "hubspot", "email")}
    assert built == {
        "shopify": ShopifyClient,
        "smaregi": SmaregiClient,
        "hubspot": HubSpotClient,
        "email": Mailer,
    }


def _problems(protocol: type, implementation: type) -> list[str]:
    """How `implementation` falls short of `protocol`'s methods: a missing method, or a parameter
    the protocol's callers may pass that it does not take the same way."""
    problems = []
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        found = getattr(implementation, name, None)
        if not callable(found):
            problems.append(f"{name}: missing")
            continue
        wanted = list(inspect.signature(member).parameters.values())[1:]  # without self
        offered = inspect.signature(found).parameters
        for parameter in wanted:
            if parameter.kind is parameter.VAR_KEYWORD:
                if not any(p.kind is p.VAR_KEYWORD for p in offered.values()):
                    problems.append(f"{name}: takes no **{parameter.name}")
                continue
            match = offered.get(parameter.name)
            if match is None:
                problems.append(f"{name}: no parameter {parameter.name}")
            elif (
                parameter.kind is parameter.POSITIONAL_OR_KEYWORD
                and match.kind is not match.POSITIONAL_OR_KEYWORD
            ):
                problems.append(f"{name}: {parameter.name} is not positional")
            elif parameter.default is not parameter.empty and match.default is match.empty:
                problems.append(f"{name}: {parameter.name} is required, the protocol makes it optional")
        names = {parameter.name for parameter in wanted}
        for extra in offered.values():
            required = extra.default is extra.empty and extra.kind not in (
                extra.VAR_POSITIONAL,
                extra.VAR_KEYWORD,
            )
            if extra.name != "self" and extra.name not in names and required:
                problems.append(f"{name}: requires {extra.name}, which the protocol's callers never pass")
    return problems


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [
        (ShopifyApi, ShopifyClient),
        (SmaregiApi, SmaregiClient),
        (HubSpotApi, HubSpotClient),
        (MailSender, Mailer),
        (ShopifyApi, FakeShopify),
        (SmaregiApi, FakeSmaregi),
        (HubSpotApi, FakeHubSpot),
        (MailSender, FakeMailer),
    ],
    ids=lambda kind: kind.__name__,
)
def test_clients_and_fakes_offer_what_their_protocol_promises(protocol: type, implementation: type) -> None:
    assert _problems(protocol, implementation) == []


def test_the_protocol_check_catches_a_client_that_falls_short() -> None:
    class Short:
        def send_welcome(self, message: Any, urgent: bool) -> None: ...

        def send_member_number(self) -> None: ...

    assert _problems(MailSender, Short) == [
        "send_welcome: requires urgent, which the protocol's callers never pass",
        "send_member_number: no parameter message",
        "send_notice: missing",
        "send_card_question: missing",
        "check: missing",
    ]
