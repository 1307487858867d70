"""Sync health on the console's front page and the vendors section of `/readyz`: each vendor's
credentials checked against the sandbox over sockets (one of them down), last successful call, dead
letters per reason with advice over a chosen range, and the chart; readiness never depends on a vendor."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app import create_app
from config.settings import Settings
from registrations.database import Database
from registrations.models import DeadLetter, utcnow
from tests.integration.ops.conftest import OPS_PASSWORD, OPS_USERNAME, Seeder, sign_in

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port  # closed again when this returns: nothing listens there


@pytest.fixture
def health_settings(make_settings: Callable[..., Settings], clean_redis: str, sandbox: Any) -> Settings:
    """The sandbox's vendors, Smaregi's API down (nothing listens where it points)."""
    return make_settings(
        **{**sandbox.env, "SMAREGI_API_URL": f"http://127.0.0.1:{_closed_port()}"},
        OPS_USERNAME=OPS_USERNAME,
        OPS_PASSWORD=OPS_PASSWORD,
        REDIS_URL=clean_redis,
        CELERY_BROKER_URL=clean_redis,
    )


@pytest.fixture
def health_app(health_settings: Settings, database: Database) -> Any:
    return create_app(health_settings, database=database)


def _vendors(client: Any) -> tuple[int, dict[str, Any]]:
    """/readyz's status code and vendors section, once the first vendor check has ended."""
    deadline = time.monotonic() + 30
    while True:
        answer = client.get("/readyz")
        body = answer.get_json()
        if body["vendors"]["status"] != "checking":
            return answer.status_code, body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_readyz_shows_vendors_apart_and_stays_ready_with_a_vendor_down(health_app: Any) -> None:
    status, body = _vendors(health_app.test_client())
    assert status == 200
    assert body["status"] == "ready" and body["checks"] == {"database": True, "broker": True}
    vendors = body["vendors"]
    assert vendors["status"] == "failed"
    assert vendors["systems"]["smaregi"]["status"] == "failed"
    assert (
        "ConnectionError" in vendors["systems"]["smaregi"]["reason"]
        or "Transient" in vendors["systems"]["smaregi"]["reason"]
    )
    assert vendors["systems"]["shopify"] == {"status": "ok"}
    assert vendors["systems"]["hubspot"] == {"status": "ok"}


def test_sync_health_shows_checks_failures_with_advice_over_the_chosen_range(
    health_app: Any, health_settings: Settings, database: Database
) -> None:
    seed = Seeder(database, health_settings)
    recent = seed.registration(email="recent@example.com")
    seed.succeed(recent, "shopify", "gid://shopify/Customer/1")
    seed.dead(recent, "smaregi", "permanent")
    older = seed.registration(email="older@example.com")
    older_letter = seed.dead(older, "hubspot", "retries_exhausted")
    with database.session() as session:
        letter = session.get(DeadLetter, older_letter)
        assert letter is not None
        letter.last_failed_at = utcnow() - timedelta(hours=3)

    client = health_app.test_client()
    client.set_cookie("ops_lang", "en")
    assert sign_in(client, OPS_USERNAME, OPS_PASSWORD).status_code == 303
    _vendors(client)  # the credentials check has ended: the page shows its verdicts

    day = client.get("/ops/?range=24h").get_data(as_text=True)
    assert 'id="vendor-smaregi"' in day
    smaregi_row = day.split('id="vendor-smaregi"')[1].split("</tr>")[0]
    assert "failed" in smaregi_row and "100.0%" in smaregi_row
    shopify_row = day.split('id="vendor-shopify"')[1].split("</tr>")[0]
    assert ">ok<" in shopify_row and "0.0%" in shopify_row and "—" not in shopify_row.split("vendor-last")[1]
    # Each reason with its advice; Smaregi's refusal says what its contract may require.
    assert 'id="reason-smaregi-permanent"' in day and "entryDate" in day
    assert 'id="reason-hubspot-retries_exhausted"' in day and "status page" in day
    # The chart: a bar for each, no script anywhere.
    assert "<svg" in day and 'class="bar bar-smaregi"' in day and 'class="bar bar-hubspot"' in day
    assert "<script" not in day

    hour = client.get("/ops/?range=1h").get_data(as_text=True)
    assert 'id="reason-smaregi-permanent"' in hour
    assert 'id="reason-hubspot-retries_exhausted"' not in hour  # three hours ago: outside the hour
    assert 'class="bar bar-hubspot"' not in hour
    assert 'aria-current="true">1h<' in hour

    # An unknown range is the default one, not an error.
    assert client.get("/ops/?range=forever").status_code == 200
