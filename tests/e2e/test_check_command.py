"""`membersync check` against the running sandbox: every vendor ok, a wrong token named as failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main


def run_check(
    sandbox: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Result:
    settings = {
        **sandbox.env,
        "MEMBERSYNC_ENV": "test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        "REDIS_URL": redis_url,
        "SHOPIFY_ACCESS_TOKEN": "shpat_sandbox",
        "HUBSPOT_ACCESS_TOKEN": "pat-sandbox",
        **env,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(main, ["check"])


def last_line(result: Result) -> dict[str, object]:
    document: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
    return document


def test_every_vendor_answers_the_sandbox(
    sandbox: Any, clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_check(sandbox, clean_redis, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert last_line(result) == {
        "check": {"shopify": "ok", "smaregi": "ok", "hubspot": "ok", "email": "ok"},
        "ok": True,
    }
    assert "hubspot: ok" in result.output.splitlines()


def test_a_wrong_hubspot_token_fails_hubspot_alone(
    sandbox: Any, clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_check(sandbox, clean_redis, tmp_path, monkeypatch, HUBSPOT_ACCESS_TOKEN="pat-wrong")
    assert result.exit_code == 1, result.output
    assert last_line(result) == {
        "check": {"shopify": "ok", "smaregi": "ok", "hubspot": "failed", "email": "ok"},
        "ok": False,
    }
    hubspot = next(line for line in result.output.splitlines() if line.startswith("hubspot: "))
    assert "401" in hubspot
    assert "pat-wrong" not in result.output  # the reason names the refusal, never the secret


def test_a_switched_off_system_is_skipped(
    sandbox: Any, clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its wrong token is never tried: a system that is off cannot fail the check.
    result = run_check(
        sandbox,
        clean_redis,
        tmp_path,
        monkeypatch,
        SYNC_HUBSPOT_ENABLED="false",
        HUBSPOT_ACCESS_TOKEN="pat-wrong",
    )
    assert result.exit_code == 0, result.output
    assert last_line(result)["check"] == {
        "shopify": "ok",
        "smaregi": "ok",
        "hubspot": "skipped",
        "email": "ok",
    }


def test_version_prints_the_installed_version() -> None:
    import importlib.metadata

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"membersync, version {importlib.metadata.version('membersync')}"
