"""The vendors' credentials checks behind sync health and /readyz (app.vendor_checks): one check at a
time, in the background, reused for a minute; a caller never waits longer than it says."""

from __future__ import annotations

import threading
import time

from app.vendor_checks import MAX_AGE_SECONDS, VendorChecks
from connectors.checks import FAILED, OK, Outcome


def test_a_result_is_reused_for_a_minute_and_one_check_runs_at_a_time() -> None:
    calls: list[float] = []
    release = threading.Event()

    def check() -> dict[str, Outcome]:
        calls.append(time.monotonic())
        release.wait(5)
        return {"shopify": Outcome(OK), "smaregi": Outcome(FAILED, "TransientError: refused")}

    checks = VendorChecks(check)
    assert checks.latest() is None  # the first check started; nothing to show yet
    started = time.monotonic()
    assert checks.latest(wait=0.2) is None  # waited as long as asked, no longer
    assert time.monotonic() - started < 1
    assert len(calls) == 1  # a second caller did not start a second check
    release.set()
    checked = checks.latest(wait=5)
    assert checked is not None and not checked.ok
    assert checked.outcomes["smaregi"].status == FAILED
    assert checks.latest() is checked and len(calls) == 1  # reused
    assert MAX_AGE_SECONDS == 60


def test_a_stale_result_is_shown_while_the_next_check_runs() -> None:
    answers = iter([{"hubspot": Outcome(OK)}, {"hubspot": Outcome(FAILED, "HTTP 401")}])
    checks = VendorChecks(lambda: next(answers), max_age=0)
    first = checks.latest(wait=5)
    assert first is not None and first.ok
    second = checks.latest(wait=5)  # stale at once (max_age=0): checked again
    assert second is not None and second.outcomes["hubspot"] == Outcome(FAILED, "HTTP 401")


def test_clients_that_cannot_be_built_are_a_failed_check_not_an_error() -> None:
    def check() -> dict[str, Outcome]:
        raise ValueError("MAIL_FROM is not an address")

    checked = VendorChecks(check).latest(wait=5)
    assert checked is not None and not checked.ok
    assert checked.outcomes["vendors"].reason == "ValueError: MAIL_FROM is not an address"
