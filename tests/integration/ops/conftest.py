"""Fixtures of the ops console tests: an app with known ops credentials, signed-in and anonymous
clients, and registrations with dead letters written the way the pipeline writes them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from app import create_app
from config.settings import Settings
from connectors.errors import PermanentError, TransientError
from registrations.database import Database
from registrations.intake import accept_registration
from registrations.models import Registration
from registrations.sync import StepLedger

OPS_USERNAME = "ops-lead"
OPS_PASSWORD = "correct horse battery staple"
TASK_NAMES = {
    "shopify": "membersync.shopify.create_customer",
    "smaregi": "membersync.smaregi.upsert_member",
    "hubspot": "membersync.hubspot.upsert_contact",
    "email": "membersync.mail.send_welcome",
}


# The browser runs the whole pipeline, so it runs once: on PostgreSQL (production's database) when CI
# provides it, else on SQLite.
ONE_DATABASE = "test_ops_browser.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("TEST_DATABASE_URL"):
        return
    dropped = [
        item
        for item in items
        if item.path.name == ONE_DATABASE
        and getattr(getattr(item, "callspec", None), "params", {}).get("database_url") == "sqlite"
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture
def ops_settings(make_settings: Callable[..., Settings], clean_redis: str) -> Settings:
    """Known ops credentials; Redis and the broker are the test's clean Redis (no worker consumes)."""
    return make_settings(
        OPS_USERNAME=OPS_USERNAME,
        OPS_PASSWORD=OPS_PASSWORD,
        REDIS_URL=clean_redis,
        CELERY_BROKER_URL=clean_redis,
    )


@pytest.fixture
def ops_app(ops_settings: Settings, database: Database) -> Any:
    return create_app(ops_settings, database=database)


def english_client(flask_app: Any) -> Any:
    """A test client whose browser asks for English (the console's default is Japanese)."""
    client = flask_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def anonymous(ops_app: Any) -> Any:
    """A browser that has not signed in."""
    return english_client(ops_app)


@pytest.fixture
def ops(ops_app: Any) -> Any:
    """A browser signed in as the ops user."""
    client = english_client(ops_app)
    answer = sign_in(client, OPS_USERNAME, OPS_PASSWORD)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client: Any, username: str, password: str, **environ: Any) -> Any:
    """Open the sign-in page and post the credentials with its CSRF token, as a browser does."""
    page = client.get("/ops/login", environ_base=environ)
    return client.post(
        "/ops/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
        environ_base=environ,
    )


def post_form(client: Any, page_url: str, action_url: str, data: dict[str, Any]) -> Any:
    """POST to `action_url` with the CSRF token of the page at `page_url` (as its form would)."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    return client.post(action_url, data={**data, "csrf_token": csrf_token(page.get_data(as_text=True))})


PERSON = {
    "email": "hanako.yamada@example.com",
    "first_name": "花子",
    "last_name": "山田",
    "first_name_kana": "ハナコ",
    "last_name_kana": "ヤマダ",
    "phone": "+819012345678",
    "postal_code": "150-0001",
    "address": "東京都渋谷区神宮前1-1-1",
    "locale": "ja",
}


class Seeder:
    """Writes registrations and dead letters through the domain's own bookkeeping."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def registration(self, *, email: str = PERSON["email"], **fields: Any) -> str:
        with self.database.session() as session:
            accepted = accept_registration(
                session, {**PERSON, "email": email, **fields}, settings=self.settings
            )
            return accepted.registration.id

    def succeed(
        self, registration_id: str, system: str, external_id: str, *, task_id: str | None = None
    ) -> None:
        with self.database.session() as session:
            registration = session.get(Registration, registration_id)
            assert registration is not None
            step = registration.step(system)
            step.state, step.external_id, step.attempts = "succeeded", external_id, 1
            step.celery_task_id = task_id

    def dead(self, registration_id: str, system: str, reason: str = "permanent") -> int:
        """Dead-letter one step as the step task does (`reason: error` is the message)."""
        error: Exception = (
            TransientError("HTTP 503", system=system)
            if reason == "retries_exhausted"
            else PermanentError("HTTP 403: refused", system=system)
        )
        ledger = StepLedger(self.database, self.settings, system)
        return ledger.dead_letter(registration_id, error, reason, TASK_NAMES[system])

    def synced(self, *, created_at: datetime, updated_at: datetime) -> str:
        registration_id = self.registration(email=f"synced-{created_at.timestamp()}@example.com")
        with self.database.session() as session:
            registration = session.get(Registration, registration_id)
            assert registration is not None
            for step in registration.steps:
                step.state = "succeeded"
            registration.status = "synced"
            registration.created_at = created_at
            session.flush()
            # Set last: the column's onupdate would stamp "now" on any other change.
            registration.updated_at = updated_at
        return registration_id


@pytest.fixture
def seed(database: Database, ops_settings: Settings) -> Seeder:
    return Seeder(database, ops_settings)
