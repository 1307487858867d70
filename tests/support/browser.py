"""A real browser for tests: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Screenshots the README and docs show, made by the browser tests. They are rewritten there only
# when UPDATE_SCREENSHOTS=1 (`make screenshots`): a mail's Date header changes on every run, so an
# ordinary test run would otherwise leave the repository modified.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def docs_screenshot(page: Any, name: str, scratch: Path) -> Path:
    """Take the page's full screenshot `name`.png: into docs/screenshots when UPDATE_SCREENSHOTS=1,
    else into `scratch` (taken all the same, so a page that cannot be captured fails either way)."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def chromium_executable() -> str:
    """Debian's chromium; skipped only on a machine without one (CI installs it in .ci/run)."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI"):
        pytest.fail("no chromium executable: .ci/run installs Debian's chromium package")
    pytest.skip("no chromium executable on this machine (Debian: apt-get install chromium)")


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A launched headless chromium (a Playwright Browser), closed afterwards."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()
