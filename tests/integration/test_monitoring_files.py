"""The monitoring we ship: /metrics reports 0 rather than nothing for every state gauge, and the
Grafana dashboard and Prometheus alert rules in deploy/ name only series the app exports (and the
rules pass `promtool check rules` where promtool is installed: .ci/run installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from config.settings import Settings
from config.systems import SYSTEM_NAMES
from registrations.database import Database
from registrations.reconcile.plan import Outcome

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
DASHBOARD = PROJECT / "deploy" / "grafana" / "membersync.json"
ALERTS = PROJECT / "deploy" / "prometheus" / "alerts.yml"
TOKEN = "scrape-token-0d9a7c3b5e1f"
METRIC_NAME = re.compile(r"\bmembersync_[a-z0-9_]+")
# How a family's samples are named in the exposition (counters' _total, histograms' series).
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
# Series with no meaningful 0, exported once there is something to say (a run has ended).
AFTER_THE_FACT = {"membersync_reconciliation_last_run_timestamp_seconds"}


@pytest.fixture
def scraped(make_settings: Callable[..., Settings], clean_redis: str, database: Database) -> dict[str, Any]:
    """One scrape of an empty installation's /metrics: {sample or family name: family}."""
    settings = make_settings(METRICS_TOKEN=TOKEN, REDIS_URL=clean_redis, CELERY_BROKER_URL=clean_redis)
    answer = (
        create_app(settings, database=database)
        .test_client()
        .get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    )
    assert answer.status_code == 200
    families = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for suffix in SUFFIXES:
            families[family.name + suffix] = family
    return families


def samples(family: Any, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples if label in sample.labels}


def test_every_state_gauge_reports_zero_when_nothing_happened(scraped: dict[str, Any]) -> None:
    assert samples(scraped["membersync_open_dead_letters"], "system") == {name: 0.0 for name in SYSTEM_NAMES}
    assert set(samples(scraped["membersync_registrations"], "status").values()) == {0.0}
    outcomes = samples(scraped["membersync_reconciliation_last_run_outcomes"], "outcome")
    assert outcomes == {outcome.value: 0.0 for outcome in Outcome}
    assert set(samples(scraped["membersync_reconciliation_last_run_failed_writes"], "system").values()) == {
        0.0
    }
    assert [sample.value for sample in scraped["membersync_reconciliation_last_run_seconds"].samples] == [0.0]
    # No run has ended: no timestamp (a 0 would read as 1970 and page someone every night).
    assert not scraped.get("membersync_reconciliation_last_run_timestamp_seconds")
    assert set(samples(scraped["membersync_queue_depth"], "queue").values()) == {0.0}
    # Counters whose labels are known in advance start at 0 too.
    assert samples(scraped["membersync_steps_over_budget_total"], "system") == {
        name: 0.0 for name in SYSTEM_NAMES
    }


def _expressions() -> dict[str, str]:
    """Every PromQL expression shipped: {where: expression}."""
    found = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            found[f"dashboard {panel['title']!r} {target['refId']}"] = target["expr"]
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = rule["expr"]
    return found


def test_dashboard_and_alerts_name_only_metrics_the_app_exports(scraped: dict[str, Any]) -> None:
    expressions = _expressions()
    assert len(expressions) >= 20
    unknown = {
        where: name
        for where, expression in expressions.items()
        for name in METRIC_NAME.findall(expression)
        if name not in scraped and name not in AFTER_THE_FACT
    }
    assert unknown == {}
    # Every series the app exports is on the dashboard somewhere.
    shown = {name for expression in expressions.values() for name in METRIC_NAME.findall(expression)}
    exported = {
        family.name
        for name, family in scraped.items()
        # `*_created` is the client library's own creation time of a counter, not a series to chart.
        if name.startswith("membersync_") and not family.name.endswith("_created")
    }
    assert {name for name in exported if not any(name + suffix in shown for suffix in SUFFIXES)} == set()


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run does)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout
