"""The mail catcher's page in a real browser: a welcome mail as its recipient sees it, barcode and all.

The mail is the product's own (the mailer connector over SMTP), caught by the sandbox's catcher; the
screenshot of it in docs/screenshots/ is rewritten by this test under `make screenshots`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.mailer import Mailer, WelcomeMessage
from sandbox.mailcatcher import MailCatcher
from tests.support.browser import docs_screenshot, headless_chromium

pytestmark = pytest.mark.integration

MEMBER_NUMBER = "4913205588312347"


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    running = MailCatcher(smtp_port=0, http_port=0).start()
    yield running
    running.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium() as launched:
        yield launched


def send_welcome(catcher: MailCatcher) -> None:
    mailer = Mailer(
        host=catcher.host,
        port=catcher.smtp_port,
        username=None,
        password="",
        starttls=False,
        mail_from="Membersync <welcome@membersync.example>",
        timeout=5.0,
    )
    mailer.send_welcome(
        WelcomeMessage(
            to="hanako@example.jp",
            first_name="花子",
            last_name="山田",
            locale="ja",
            member_number=MEMBER_NUMBER,
            message_id=mailer.welcome_message_id(str(uuid.uuid4())),
        )
    )


def test_the_welcome_mail_shows_as_its_recipient_sees_it(
    catcher: MailCatcher, browser: Any, tmp_path: Path
) -> None:
    send_welcome(catcher)
    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.goto(f"{catcher.url}/")
    row = page.inner_text("#messages tbody tr")
    assert "hanako@example.jp" in row and "会員登録ありがとうございます" in row  # UTF-8, no \u escapes

    page.click("#messages tbody tr a >> nth=1")
    assert page.inner_text("#subject") == "会員登録ありがとうございます【会員番号のお知らせ】"
    assert "hanako@example.jp" in page.inner_text("#headers")
    assert f"会員番号: {MEMBER_NUMBER}" in page.inner_text("#text-part")
    assert "member-barcode.png" in page.inner_text("#parts")

    # The HTML part in its sandboxed frame: the member number, and the inline (cid:) barcode loaded.
    frame = page.frame_locator("#html-part")
    assert MEMBER_NUMBER in frame.locator("body").inner_text()
    barcode = frame.locator("img").first
    barcode.wait_for()
    width = barcode.evaluate("image => image.complete ? image.naturalWidth : 0")
    assert width > 0, "the barcode image did not load"
    assert page.get_attribute("#html-part", "sandbox") == ""  # the mail's HTML runs nothing

    assert docs_screenshot(page, "mail-welcome", tmp_path).stat().st_size > 0


def test_the_framed_html_may_not_run_scripts_or_fetch_elsewhere(catcher: MailCatcher) -> None:
    send_welcome(catcher)
    [message] = requests.get(f"{catcher.url}/api/messages", timeout=5).json()
    framed = requests.get(f"{catcher.url}/messages/{message['id']}/html", timeout=5)
    policy = framed.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy
    assert "cid:" not in framed.text and f"/messages/{message['id']}/cid/barcode." in framed.text
    assert (
        requests.get(f"{catcher.url}/messages/{message['id']}/cid/nothing@here", timeout=5).status_code == 404
    )
    assert requests.get(f"{catcher.url}/messages/999", timeout=5).status_code == 404
