"""A real browser for tests: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Screenshots the README and docs show, rewritten by the browser tests so they stay current.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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
