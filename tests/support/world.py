"""The in-process pipeline for unit tests: a Celery app in eager mode over a SQLite file, the
in-process fakes behind every connector, local person locks, and a list standing in for the broker.

Celery's eager mode runs a retry at once (no countdown), so a transient failure is followed by the
next attempt within the same call; the attempt counting and dead-lettering are the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config.settings import Settings
from config.systems import SYSTEMS
from connectors.fakes import FakeHubSpot, FakeMailer, FakeShopify, FakeSmaregi
from connectors.mailer import MemberNumberMessage, NoticeMessage, WelcomeMessage
from connectors.registry import Connectors
from registrations.database import Database
from registrations.intake import accept_registration
from registrations.locks import LocalPersonLocks
from registrations.models import Base, DeadLetter, Identity, Registration
from registrations.outbox import publish_after_commit
from tasks.factory import create_celery_app

PERSON = {"email": "hanako@example.com", "first_name": "花子", "last_name": "山田", "locale": "ja"}


class World:
    """One test's pipeline, every external system faked in this process."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.environ = {
            "MEMBERSYNC_ENV": "test",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unit.db'}",
            "CELERY_BROKER_URL": "memory://",
            **env,
        }
        self.settings = Settings.from_env(environ=self.environ)
        self.database = Database(self.settings.database_url)
        Base.metadata.create_all(self.database.engine)
        self.celery = create_celery_app(self.settings, self.database)
        self.celery.conf.task_always_eager = True
        self.celery.loader.import_default_modules()
        self.shopify, self.smaregi = FakeShopify(), FakeSmaregi()
        self.hubspot, self.mailer = FakeHubSpot(), FakeMailer()
        runtime = self.celery.membersync
        runtime._connectors = Connectors(
            shopify=self.shopify, smaregi=self.smaregi, hubspot=self.hubspot, email=self.mailer
        )
        runtime._locks = LocalPersonLocks(wait=1.0)
        # What would go to the broker: (registration id, systems) per published chain.
        self.published: list[tuple[str, list[str]]] = []
        # Set to an exception to play a broker that is down.
        self.broker_error: Exception | None = None
        # The database as the tasks have it: its commits publish their outbox rows into `published`.
        # (`database` itself publishes nothing: what the test writes waits for a relay.)
        self.publishing = publish_after_commit(self.database, self.publish)
        runtime.database = self.publishing

    def publish(self, registration_id: str, systems: Sequence[str]) -> None:
        """The publisher: records the chain, or raises `broker_error`."""
        if self.broker_error is not None:
            raise self.broker_error
        self.published.append((registration_id, list(systems)))

    def switch(self, **env: str) -> None:
        """Change settings as a restart with a new environment would."""
        self.settings = Settings.from_env(environ={**self.environ, **env})
        self.celery.membersync.settings = self.settings

    def accept(self, **fields: Any) -> str:
        with self.database.session() as session:
            return accept_registration(session, {**PERSON, **fields}, settings=self.settings).registration.id

    def run(self, system: str, registration_id: str, *, task_id: str | None = None) -> Any:
        task = self.celery.tasks[next(s.task_name for s in SYSTEMS if s.name == system)]
        return task.apply(args=(registration_id,), task_id=task_id)

    def run_all(self, registration_id: str) -> None:
        for system in SYSTEMS:
            self.run(system.name, registration_id)

    def run_published(self) -> None:
        """Deliver what was published, as a worker would, until nothing new is published."""
        while self.published:
            registration_id, systems = self.published.pop(0)
            for system in systems:
                self.run(system, registration_id)

    def registration(self, registration_id: str) -> Registration:
        with self.database.session() as session:
            found = session.get(Registration, registration_id)
            assert found is not None
            found.steps  # noqa: B018 - load before the session closes
            return found

    def dead_letters(self) -> list[DeadLetter]:
        with self.database.session() as session:
            return list(session.scalars(select(DeadLetter)))

    def letter_ids(self) -> list[int]:
        with self.database.session() as session:
            return list(session.scalars(select(DeadLetter.id).where(DeadLetter.status == "open")))

    def member_code(self) -> str:
        with self.database.session() as session:
            code = session.scalar(select(Identity.smaregi_customer_code))
            assert code
            return code

    def welcomes(self) -> list[WelcomeMessage]:
        return [message for message in self.mailer.sent if isinstance(message, WelcomeMessage)]

    def number_mails(self) -> list[MemberNumberMessage]:
        return [message for message in self.mailer.sent if isinstance(message, MemberNumberMessage)]

    def notices(self) -> list[NoticeMessage]:
        return [message for message in self.mailer.sent if isinstance(message, NoticeMessage)]
