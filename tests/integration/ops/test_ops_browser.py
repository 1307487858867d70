"""Acceptance, in a real browser: an operator signs in to the ops console, finds the dead letter a
vendor outage left, clicks Replay, and sees the registration become synced; anonymous visitors and
wrong passwords are refused.

Debian's chromium driven by Playwright (never a downloaded browser), the web app served over HTTP by
werkzeug in a thread, a real worker process, real Redis and database, the sandbox over sockets.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from registrations.database import Database
from tests.support.browser import docs_screenshot, headless_chromium
from tests.support.pipeline import Pipeline, person

pytestmark = pytest.mark.integration

USERNAME, PASSWORD = "night-shift", "a long ops password"
SYNCED_WITHIN_SECONDS = 60


@pytest.fixture
def pipeline(database: Database, clean_redis: str, sandbox: Any, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(database, clean_redis, sandbox, tmp_path)
    running.configure(OPS_USERNAME=USERNAME, OPS_PASSWORD=PASSWORD)
    yield running
    running.stop()


@pytest.fixture
def console_url(pipeline: Pipeline) -> Iterator[str]:
    """The web app (intake and ops console) served over HTTP on a free port."""
    server = make_server(
        "127.0.0.1", 0, create_app(pipeline.settings, database=pipeline.database), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, name="ops-console-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium() as launched:
        yield launched


# The console pages docs/screenshots shows (as console-<name>.png; `make screenshots` rewrites them).
DOCS_PAGES = frozenset({"overview", "dead-letters", "registration", "registration-ja"})


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    if name in DOCS_PAGES:
        docs_screenshot(page, f"console-{name}", tmp_path)
    # For a person checking every page by eye (OPS_SCREENSHOT_DIR).
    folder = Path(os.environ.get("OPS_SCREENSHOT_DIR") or tmp_path)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(page: Any, console_url: str, username: str, password: str) -> int:
    """Fill in the sign-in form and submit it; the status of the answer to the POST."""
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        page.click("button:has-text('Sign in')")
    page.wait_for_load_state()
    status: int = posted.value.status
    return status


def test_anonymous_and_wrong_password_are_refused(browser: Any, console_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{console_url}/ops/dead-letters")
    assert page.url == f"{console_url}/ops/login?next=/ops/dead-letters"
    assert sign_in(page, console_url, USERNAME, "not the password") == 401
    assert page.is_visible("text=That username and password do not match.")
    screenshot(page, tmp_path, "refused")
    page.goto(f"{console_url}/ops/")
    assert "/ops/login" in page.url  # still anonymous


def test_an_operator_replays_a_dead_letter_and_sees_the_registration_synced(
    browser: Any, console_url: str, pipeline: Pipeline, sandbox: Any, tmp_path: Path
) -> None:
    # HubSpot answers every call with a server error until its retries run out: a dead letter.
    sandbox.faults("hubspot", error_rate=1.0)
    pipeline.start_worker(concurrency=4)
    registration_id = pipeline.register(person(1))
    assert pipeline.wait_settled([registration_id], timeout=90)[registration_id] == "partial"
    [letter] = pipeline.open_dead_letters()
    assert letter.system == "hubspot"
    sandbox.faults("hubspot")  # HubSpot recovered

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{console_url}/ops/")
    assert sign_in(page, console_url, USERNAME, PASSWORD) == 303
    assert page.url == f"{console_url}/ops/"
    assert page.inner_text("#open-dead-letters").split() == [
        "System",
        "Reason",
        "Open",
        "hubspot",
        "retries_exhausted",
        "1",
    ]
    # Sync health names the failure with what to do about it.
    advice = page.inner_text("#reason-hubspot-retries_exhausted")
    assert "retries_exhausted" in advice and "membersync check" in advice
    screenshot(page, tmp_path, "overview")

    # Find it: the dead-letter list filtered to HubSpot, then its own page.
    page.click("nav >> text=Dead letters")
    page.select_option("#system", "hubspot")
    page.click("button:has-text('Filter')")
    assert page.url.startswith(f"{console_url}/ops/dead-letters?system=hubspot")
    screenshot(page, tmp_path, "dead-letters")
    page.click(f"a:has-text('#{letter.id}')")
    assert page.inner_text("#dead-letter-status") == "open"
    assert f"membersync dlq replay {letter.id}" in page.inner_text("#cli-hint")

    page.click("button:has-text('Replay')")
    assert page.is_visible(f"text=Replayed dead letter #{letter.id}")
    assert page.inner_text("#dead-letter-status") == "replayed"
    screenshot(page, tmp_path, "replayed")

    page.click(f"a:has-text('{registration_id}')")
    deadline = time.monotonic() + SYNCED_WITHIN_SECONDS
    while page.inner_text("#registration-status") != "synced":
        assert time.monotonic() < deadline, pipeline.describe_unsettled([registration_id])
        time.sleep(0.5)
        page.reload()
    assert page.inner_text("#step-hubspot td:nth-of-type(1)") == "succeeded"
    # The loop is closed: synced after the replay, the dead letter says it is resolved.
    assert "resolved" in page.inner_text("#dead-letters")
    screenshot(page, tmp_path, "registration")

    # Find the person again as staff ask: by the member number on the card, by the id prefix a list shows.
    member_number = page.inner_text("#member-number")
    assert member_number.isdigit() and len(member_number) == 16
    for typed in (member_number, f"{registration_id[:8]}…", "Hanako", "ヤマダ"):
        page.click("nav >> text=Find a person")
        page.fill("#q", typed)
        page.click("button:has-text('Search')")
        assert page.url == f"{console_url}/ops/registrations/{registration_id}", typed

    page.click("nav >> text=Audit trail")
    assert page.inner_text("#audit tbody tr:first-child").split("\t")[1:3] == [USERNAME, "replay"]

    page.click("text=日本語")  # the language switch, remembered for the next pages
    assert page.get_attribute("html", "lang") == "ja"
    page.click("nav >> text=会員検索")
    assert page.get_attribute("html", "lang") == "ja" and page.is_visible("text=会員番号")
    page.fill("#q", registration_id[:8])
    page.click("button:has-text('検索')")
    assert page.url == f"{console_url}/ops/registrations/{registration_id}"
    screenshot(page, tmp_path, "registration-ja")
