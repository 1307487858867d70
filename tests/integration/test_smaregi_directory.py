"""The Smaregi member directory against the emulator over sockets, on SQLite and PostgreSQL.

The connector's buckets and the emulator's budgets are the production defaults (10 reads/s, 4
writes/s) unless a test seeds members, which it does through an emulator with room for writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import func, select

from config.celery import MAINTENANCE_QUEUE, celery_config
from config.settings import Settings
from connectors.registry import Connectors
from registrations.database import Database
from registrations.directory import PAGE_SIZE, MemberDirectory
from registrations.models import DirectoryMember
from sandbox.common import ThreadedServer
from sandbox.smaregi import SmaregiSettings, create_app
from tasks.directory import PULL_TASK, REREAD_TASK
from tasks.factory import create_celery_app

pytestmark = pytest.mark.integration

SCOPES = "pos.customers:read pos.customers:write"


class Till:
    """What a shop does in Smaregi directly (the register, the back office), over the API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        token = requests.post(
            f"{url}/app/sandbox/token",
            auth=("sandbox-client", "sandbox-secret"),
            data={"grant_type": "client_credentials", "scope": SCOPES},
            timeout=5,
        ).json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def send(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        """One request, waiting out the emulator's 429s as the register's own client would."""
        while True:
            url = f"{self.url}/sandbox/pos/customers{path}"
            response = self.session.request(method, url, timeout=10, **kwargs)
            if response.status_code != 429:
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))

    def create(self, number: int, email: str | None = None) -> dict[str, Any]:
        body = {"customerCode": f"STORE-{number}", "lastName": "山田", "firstName": "花子"}
        if email is not None:
            body["mailAddress"] = email
        response = self.send("POST", json=body)
        assert response.status_code == 200, response.text
        member: dict[str, Any] = response.json()
        return member

    def update(self, customer_id: str, **fields: str) -> None:
        response = self.send("PATCH", f"/{customer_id}", json=fields)
        assert response.status_code == 200, response.text

    def delete(self, customer_id: str) -> None:
        response = self.send("DELETE", f"/{customer_id}")
        assert response.status_code == 204, response.text


@pytest.fixture
def emulator() -> Iterator[ThreadedServer]:
    # Smaregi's sandbox read budget (10/s); writes opened up only so that tests can seed quickly.
    with ThreadedServer(create_app(SmaregiSettings(write_per_second=100_000)), port=0) as server:
        yield server


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], clean_redis: str) -> Callable[[str], Settings]:
    def build(url: str) -> Settings:
        return make_settings(SMAREGI_API_URL=url, SMAREGI_ID_URL=url, REDIS_URL=clean_redis)

    return build


def connectors_for(settings: Settings) -> Connectors:
    return Connectors.from_settings(settings, redis.Redis.from_url(settings.effective_redis_url))


def directory_rows(database: Database) -> dict[str, tuple[str, str | None]]:
    with database.session() as session:
        return {
            row.customer_id: (row.customer_code, row.email)
            for row in session.scalars(select(DirectoryMember))
        }


def requests_of(url: str) -> dict[str, int]:
    counts: dict[str, int] = requests.get(f"{url}/_sandbox/state", timeout=5).json()["requests"]
    return counts


def test_a_full_sync_pages_through_every_member_upserting_page_by_page(
    emulator: ThreadedServer, database: Database, settings_for: Callable[[str], Settings]
) -> None:
    till = Till(emulator.url)
    total = 2 * PAGE_SIZE + 7
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: till.create(n, f"Member{n}@Example.com"), range(total)))
    directory = MemberDirectory(database)
    # Count rows after each page: upserted page by page, never the whole list held first.
    seen_after_each_page: list[int] = []
    smaregi = connectors_for(settings_for(emulator.url)).smaregi
    real_list = smaregi.list_members

    def listing(**arguments: Any) -> Any:
        with database.session() as session:
            before = session.scalar(select(func.count()).select_from(DirectoryMember)) or 0
        page = real_list(**arguments)  # our own read budget may refuse it: then it is asked again
        seen_after_each_page.append(before)
        return page

    smaregi.list_members = listing  # type: ignore[method-assign]

    report = directory.full_load(smaregi)

    assert (report.kind, report.pages, report.members) == ("full", 3, total)
    assert seen_after_each_page == [0, PAGE_SIZE, 2 * PAGE_SIZE]
    rows = directory_rows(database)
    assert len(rows) == total
    assert all(email == f"member{code.removeprefix('STORE-')}@example.com" for code, email in rows.values())
    assert requests_of(emulator.url)["list_members"] == 3
    assert [e.customer_code for e in directory.members_with_email("member42@example.com")] == ["STORE-42"]


def test_members_deleted_in_smaregi_leave_the_directory_when_a_full_sync_completes(
    emulator: ThreadedServer, database: Database, settings_for: Callable[[str], Settings]
) -> None:
    till = Till(emulator.url)
    members = [till.create(n, f"m{n}@example.com") for n in range(4)]
    directory = MemberDirectory(database)
    smaregi = connectors_for(settings_for(emulator.url)).smaregi
    directory.full_load(smaregi)
    till.delete(members[1]["customerId"])
    till.delete(members[2]["customerId"])

    report = directory.full_load(smaregi)

    assert report.removed == 2
    assert set(directory_rows(database)) == {members[0]["customerId"], members[3]["customerId"]}


def test_an_incremental_pull_brings_changes_and_edits(
    emulator: ThreadedServer, database: Database, settings_for: Callable[[str], Settings]
) -> None:
    till = Till(emulator.url)
    first = till.create(1, "first@example.com")
    directory = MemberDirectory(database)
    smaregi = connectors_for(settings_for(emulator.url)).smaregi
    directory.full_load(smaregi)
    till.create(2, "second@example.com")
    till.update(first["customerId"], mailAddress="First.Changed@example.com")

    report = directory.pull(smaregi)

    assert report.kind == "incremental"
    assert directory_rows(database) == {
        first["customerId"]: ("STORE-1", "first.changed@example.com"),
        "2": ("STORE-2", "second@example.com"),
    }


def test_a_hundred_changes_appear_within_one_beat_interval(
    sandbox: Any, make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(**sandbox.env, REDIS_URL=clean_redis)
    interval = settings.smaregi_directory_pull_seconds
    assert interval == 60  # production default
    schedule = {entry["task"]: entry for entry in celery_config(settings)["beat_schedule"].values()}
    assert schedule[PULL_TASK]["schedule"] == interval
    assert celery_config(settings)["task_routes"][PULL_TASK] == {"queue": MAINTENANCE_QUEUE}
    celery = create_celery_app(settings, database)
    celery.loader.import_default_modules()
    pull = celery.tasks[PULL_TASK]
    till = Till(sandbox.urls["smaregi"])
    existing = [till.create(n, f"walkin{n}@example.com") for n in range(50)]
    assert pull.apply().get()["kind"] == "full"

    # 100 changes at the till: 50 new members and 50 e-mail changes.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: till.create(100 + n, f"new{n}@example.com"), range(50)))
        list(
            pool.map(
                lambda m: till.update(
                    m["customerId"], mailAddress=f"changed.{m['customerCode']}@example.com"
                ),
                existing,
            )
        )
    began = time.monotonic()
    report = pull.apply().get()  # the next beat run
    took = time.monotonic() - began

    assert report["kind"] == "incremental", report
    rows = directory_rows(database)
    assert sum(1 for _, email in rows.values() if email and email.startswith("new")) == 50
    assert sum(1 for _, email in rows.values() if email and email.startswith("changed.")) == 50
    assert took < interval / 4, f"a pull of 100 changes took {took:.1f}s"


def test_the_pull_task_skips_while_another_pull_holds_the_lock(
    sandbox: Any, make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(**sandbox.env, REDIS_URL=clean_redis)
    celery = create_celery_app(settings, database)
    celery.loader.import_default_modules()
    held = redis.Redis.from_url(clean_redis).lock("membersync:lock:smaregi-directory-pull", timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert celery.tasks[PULL_TASK].apply().get()["kind"] == "skipped"
    finally:
        held.release()
    assert celery.tasks[PULL_TASK].apply().get()["kind"] == "full"


def test_the_reread_task_updates_and_drops_rows_by_what_smaregi_answers(
    sandbox: Any, make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(**sandbox.env, REDIS_URL=clean_redis)
    celery = create_celery_app(settings, database)
    celery.loader.import_default_modules()
    till = Till(sandbox.urls["smaregi"])
    kept, gone = till.create(1, "kept@example.com"), till.create(2, "gone@example.com")
    MemberDirectory(database).full_load(connectors_for(settings).smaregi)
    till.update(kept["customerId"], mailAddress="kept.new@example.com")
    till.delete(gone["customerId"])

    counts = celery.tasks[REREAD_TASK].apply(args=([kept["customerId"], gone["customerId"]],)).get()

    # Each re-read member's mirror task is queued (a deleted one's finds no member and writes nothing).
    assert counts == {"updated": 1, "removed": 1, "mirrors": 2}
    assert directory_rows(database) == {kept["customerId"]: ("STORE-1", "kept.new@example.com")}
