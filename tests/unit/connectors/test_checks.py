"""Each client's check(): the one cheap read it sends, and a refusal raised as the connector's error.
Then how `membersync check` words the outcomes (cli.check), on the fakes."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from cli.check import check_all, summary
from config.settings import Settings
from connectors.errors import PermanentError, TransientError
from connectors.fakes import FakeHubSpot, FakeMailer, FakeShopify, FakeSmaregi
from connectors.http import HttpClient
from connectors.hubspot import HubSpotClient
from connectors.mailer import Mailer
from connectors.registry import Connectors
from connectors.shopify import ShopifyClient
from connectors.shopify.documents import SHOP_NAME
from connectors.smaregi import SmaregiClient

SHOPIFY = "https://membersync-test.myshopify.com"
GRAPHQL = f"{SHOPIFY}/admin/api/2026-10/graphql.json"
SMAREGI_API = "https://api.smaregi.test"
SMAREGI_ID = "https://id.smaregi.test"
HUBSPOT = "https://api.hubspot.test"
CONTACTS = f"{HUBSPOT}/crm/objects/2026-09/contacts"  # HUBSPOT_API_VERSION's default
COST = {
    "cost": {
        "requestedQueryCost": 1,
        "actualQueryCost": 1,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1999, "restoreRate": 100.0},
    }
}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def query_of(mocked: responses.RequestsMock, index: int) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(str(mocked.calls[index].request.url)).query))


# --- Shopify ------------------------------------------------------------------------------------------


def shopify() -> ShopifyClient:
    http = HttpClient(system="shopify", base_url=SHOPIFY, headers={"X-Shopify-Access-Token": "shpat_t"})
    return ShopifyClient(http, api_version="2026-10")


def test_shopify_check_asks_for_the_shop_name_only(mocked: responses.RequestsMock) -> None:
    mocked.post(GRAPHQL, json={"data": {"shop": {"name": "Shop"}}, "extensions": COST})
    shopify().check()
    body = mocked.calls[0].request.body
    assert body is not None
    assert json.loads(body) == {"query": SHOP_NAME, "variables": {}}


def test_shopify_check_raises_on_a_refused_token(mocked: responses.RequestsMock) -> None:
    mocked.post(GRAPHQL, status=401, json={"errors": "[API] Invalid API key or access token"})
    with pytest.raises(PermanentError) as raised:
        shopify().check()
    assert raised.value.status == 401


def test_shopify_check_raises_on_a_graphql_error(mocked: responses.RequestsMock) -> None:
    denied = {"message": "Access denied for shop field.", "extensions": {"code": "ACCESS_DENIED"}}
    mocked.post(GRAPHQL, json={"errors": [denied], "extensions": COST})
    with pytest.raises(PermanentError):
        shopify().check()


# --- Smaregi ------------------------------------------------------------------------------------------


def smaregi() -> SmaregiClient:
    return SmaregiClient(
        HttpClient(system="smaregi", base_url=SMAREGI_API),
        HttpClient(system="smaregi", base_url=SMAREGI_ID),
        contract_id="c1",
        client_id="client-1",
        client_secret="secret-1",
        scopes="pos.customers:read",
    )


def test_smaregi_check_takes_a_token_then_reads_one_member(mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{SMAREGI_ID}/app/c1/token",
        json={"access_token": "tok", "token_type": "Bearer", "expires_in": 3600},
    )
    mocked.get(f"{SMAREGI_API}/c1/pos/customers", json=[])
    smaregi().check()
    assert query_of(mocked, 1) == {"page": "1", "limit": "1"}
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer tok"


def test_smaregi_check_raises_when_the_token_is_refused(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{SMAREGI_ID}/app/c1/token", status=401, json={"error": "invalid_client"})
    with pytest.raises(PermanentError):
        smaregi().check()


# --- HubSpot ------------------------------------------------------------------------------------------


def hubspot() -> HubSpotClient:
    http = HttpClient(system="hubspot", base_url=HUBSPOT, headers={"Authorization": "Bearer pat-1"})
    return HubSpotClient(http)


def test_hubspot_check_reads_one_contact(mocked: responses.RequestsMock) -> None:
    mocked.get(CONTACTS, json={"results": []})
    hubspot().check()
    assert query_of(mocked, 0) == {"limit": "1"}


@pytest.mark.parametrize("status", [401, 403])
def test_hubspot_check_raises_on_a_bad_token_or_missing_scope(
    mocked: responses.RequestsMock, status: int
) -> None:
    mocked.get(CONTACTS, status=status, json={"status": "error", "message": "no", "category": "X"})
    with pytest.raises(PermanentError) as raised:
        hubspot().check()
    assert raised.value.status == status


# --- SMTP ---------------------------------------------------------------------------------------------


class CheckingSMTP:
    """Stands in for smtplib.SMTP: records the conversation; `fail` maps a stage to what it raises."""

    def __init__(self, fail: dict[str, BaseException]) -> None:
        self.stages: list[str] = []
        self.fail = fail

    def _stage(self, name: str) -> None:
        self.stages.append(name)
        if name in self.fail:
            raise self.fail[name]

    def ehlo(self) -> tuple[int, bytes]:
        self._stage("ehlo")
        return 250, b"catcher"

    def starttls(self, *, context: ssl.SSLContext) -> None:
        self._stage("starttls")

    def login(self, user: str, password: str) -> None:
        self._stage("login")

    def send_message(self, message: Any) -> None:
        self._stage("send")

    def quit(self) -> None:
        self._stage("quit")

    def close(self) -> None:
        self.stages.append("close")


def mailer(
    *, username: str | None = None, starttls: bool = False, **fail: BaseException
) -> tuple[Mailer, CheckingSMTP]:
    smtp = CheckingSMTP(fail)
    built = Mailer(
        host="smtp.example",
        port=587,
        username=username,
        password="pw",
        starttls=starttls,
        mail_from="welcome@membersync.example",
        timeout=5,
        smtp_factory=lambda host, port, *, timeout: smtp,  # type: ignore[arg-type,return-value]
    )
    return built, smtp


def test_smtp_check_greets_and_quits_without_sending() -> None:
    checked, smtp = mailer()
    checked.check()
    assert smtp.stages == ["ehlo", "quit"]


def test_smtp_check_starts_tls_and_logs_in_when_configured() -> None:
    checked, smtp = mailer(username="user", starttls=True)
    checked.check()
    assert smtp.stages == ["ehlo", "starttls", "login", "quit"]


def test_smtp_check_classifies_a_refused_login_as_send_does() -> None:
    refused = smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid")
    checked, smtp = mailer(username="user", login=refused)
    with pytest.raises(PermanentError) as raised:
        checked.check()
    assert raised.value.status == 535
    assert smtp.stages[-1] == "close"


def test_smtp_check_raises_transient_when_the_server_is_unreachable() -> None:
    def unreachable(host: str, port: int, *, timeout: float) -> smtplib.SMTP:
        raise ConnectionRefusedError(111, "Connection refused")

    checked = Mailer(
        host="smtp.example",
        port=587,
        username=None,
        password="",
        starttls=False,
        mail_from="welcome@membersync.example",
        timeout=5,
        smtp_factory=unreachable,
    )
    with pytest.raises(TransientError):
        checked.check()


# --- the command's verdicts (cli.check) ---------------------------------------------------------------


def fakes() -> Connectors:
    return Connectors(shopify=FakeShopify(), smaregi=FakeSmaregi(), hubspot=FakeHubSpot(), email=FakeMailer())


def test_every_system_with_a_client_is_checked_and_consent_is_not() -> None:
    connectors = fakes()
    outcomes = check_all(connectors, Settings.from_env(environ={"MEMBERSYNC_ENV": "test"}).enabled_systems())
    assert summary(outcomes) == {
        "check": {"shopify": "ok", "smaregi": "ok", "hubspot": "ok", "email": "ok"},
        "ok": True,
    }
    assert all(
        system.count("check") == 1  # type: ignore[attr-defined]
        for system in (connectors.shopify, connectors.smaregi, connectors.hubspot, connectors.email)
    )


def test_a_failure_is_named_with_its_reason_and_the_others_still_run() -> None:
    connectors = fakes()
    assert isinstance(connectors.hubspot, FakeHubSpot)
    connectors.hubspot.fail_next("check", PermanentError("hubspot GET: HTTP 401", system="hubspot"))
    outcomes = check_all(connectors, {"shopify": True, "smaregi": True, "hubspot": True, "email": True})
    assert outcomes["hubspot"].status == "failed"
    assert outcomes["hubspot"].reason == "PermanentError: hubspot GET: HTTP 401"
    assert summary(outcomes)["ok"] is False
    assert [outcome.status for name, outcome in outcomes.items() if name != "hubspot"] == ["ok"] * 3


def test_a_switched_off_system_is_skipped_and_never_called() -> None:
    connectors = fakes()
    outcomes = check_all(connectors, {"shopify": True, "smaregi": False, "hubspot": True, "email": True})
    assert outcomes["smaregi"].status == "skipped"
    assert connectors.smaregi.count("check") == 0  # type: ignore[attr-defined]
    assert summary(outcomes)["ok"] is True


def test_an_error_that_is_no_connectors_is_named_by_its_class_only() -> None:
    connectors = fakes()
    assert isinstance(connectors.email, FakeMailer)
    connectors.email.fail_next("check", RuntimeError("redis://:hunter2@cache:6379 refused"))
    outcomes = check_all(connectors, {"shopify": True, "smaregi": True, "hubspot": True, "email": True})
    assert outcomes["email"].status == "failed"
    assert "hunter2" not in outcomes["email"].reason
    assert outcomes["email"].reason.startswith("RuntimeError")
