"""`membersync bench intake`, `bench pipeline`, `bench ratelimit` and `bench reconcile` as a person
runs them: a subprocess whose last stdout line is the documented JSON object (also written to --out).
Tiny sizes: they show that each runs and reports sane numbers, never how fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MEMBERSYNC = str(Path(sys.executable).parent / "membersync")
PIPELINE_KEYS = {
    "benchmark",
    "registrations",
    "latency_ms",
    "per_second",
    "p50_s",
    "p99_s",
    "lost",
    "duplicated",
    "baseline_per_second",
    "ratio",
}
RATELIMIT_KEYS = {
    "benchmark",
    "achieved_per_second",
    "sustained_limit_per_second",
    "utilisation",
    "throttled_responses",
    "calls",
}


def bench(*args: str, timeout: float) -> dict[str, Any]:
    """Run `membersync bench ARGS` on its own services (embedded Redis, temporary SQLite)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    completed = subprocess.run(
        [MEMBERSYNC, "bench", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def test_bench_pipeline_syncs_every_registration_once(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    result = bench(
        "pipeline",
        "--registrations",
        "5",
        "--latency-ms",
        "0",
        "--baseline-registrations",
        "2",
        "--workers",
        "2",
        "--scale-out",
        "2",  # one round (kept short): the scale-out row of the --workers figures
        "--profile",
        "--out",
        str(out),
        timeout=180,
    )
    assert set(result) >= PIPELINE_KEYS
    assert json.loads(out.read_text()) == result
    assert result["benchmark"] == "pipeline"
    assert result["registrations"] == 5
    assert result["latency_ms"] == 0
    assert result["workers"] == 2
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["missing"] == 0
    assert result["intake_errors"] == 0
    assert result["per_second"] > 0
    assert result["baseline_per_second"] > 0  # the bare chain
    assert result["sequential_baseline_per_second"] > 0
    assert 0 < result["p50_s"] <= result["p99_s"]
    assert result["ratio"] == pytest.approx(result["per_second"] / result["baseline_per_second"], rel=0.05)
    assert result["worker_cpu_ms_per_registration"] > 0
    assert [row["workers"] for row in result["scale_out"]] == [2]
    assert result["scale_out"][0]["per_second"] == result["per_second"]
    profile = result["profile"]  # counted in the workers: every step reads and writes the database
    assert profile["sql_statements_per_registration"] >= profile["sql_transactions_per_registration"] > 0
    assert profile["http_requests_per_registration"] >= 3  # Shopify, Smaregi, HubSpot at least once each
    assert profile["redis_round_trips_per_registration"] > 0


def test_bench_intake_measures_ours_against_the_bare_app(tmp_path: Path) -> None:
    out = tmp_path / "intake.json"
    # The Python driver: it runs where wrk is not installed, and is what a fresh clone gets.
    result = bench(
        "intake", "--seconds", "1", "--connections", "2", "--driver", "python", "--out", str(out), timeout=120
    )
    assert json.loads(out.read_text()) == result
    assert result["benchmark"] == "intake"
    assert result["database"] == "sqlite"
    assert result["errors"] == result["baseline_errors"] == 0
    assert result["requests"] > 0
    assert result["per_second"] > 0
    assert result["baseline_per_second"] > 0
    assert result["ratio"] == pytest.approx(result["per_second"] / result["baseline_per_second"], rel=0.05)
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    # The real intake path: rows were written, fewer than the requests (every tenth is a replay).
    assert 0 < result["registrations_created"] <= result["requests"] + result["connections"]
    assert "--workers" in result["web_argv"] and "app.wsgi:application" in result["web_argv"]


def test_bench_ratelimit_shopify_through_the_pipeline() -> None:
    # A tiny bucket and restore rate, so the bucket runs dry within seconds.
    result = bench(
        "ratelimit",
        "--vendor",
        "shopify",
        "--registrations",
        "6",
        "--workers",
        "2",
        "--concurrency",
        "4",
        "--restore-rate",
        "40",
        "--bucket-size",
        "40",
        timeout=180,
    )
    assert result["benchmark"] == "ratelimit"
    assert result["vendor"] == "shopify"
    assert result["lost"] == result["duplicated"] == result["dead_letters"] == 0
    assert result["calls"] >= 6 * 2  # customerCreate and metafieldsSet at least
    assert result["points_spent"] > result["bucket_size"]
    assert 0 <= result["throttled_responses"] < result["calls"]
    assert 0 < result["allowance_share"] <= 1.05


def test_bench_ratelimit_stays_within_the_vendor_limit() -> None:
    # Longer than HubSpot's ten-second window, so the window fills and an overrun would show as 429s.
    result = bench("ratelimit", "--seconds", "12", timeout=120)
    assert set(result) >= RATELIMIT_KEYS
    assert result["benchmark"] == "ratelimit"
    assert result["throttled_responses"] == 0
    assert result["errors"] == 0
    assert result["calls"] > 0
    assert result["peak_in_any_window"] <= result["limit_per_10s"]
    # Over 12 s a window limit allows two windows' worth (a burst at the start, another 10 s later):
    # calls / seconds may exceed the sustained rate, the peak in any window may not.
    assert 0 < result["utilisation"] <= 2 * 10 / 12


def test_bench_ratelimit_smaregi_keeps_reads_and_writes_within_their_limits() -> None:
    arguments = ("--vendor", "smaregi", "--seconds", "3", "--processes", "1", "--threads", "2")
    result = bench("ratelimit", *arguments, timeout=120)
    assert result["vendor"] == "smaregi"
    assert set(result["kinds"]) == {"reads", "writes"}
    for figures in result["kinds"].values():
        assert figures["calls"] > 0 and figures["errors"] == 0
        assert figures["throttled_responses"] == 0
        assert figures["peak_in_any_window"] <= figures["limit"]
        assert figures["sustained_utilisation"] is not None and 0 < figures["sustained_utilisation"] <= 1


RECONCILE_KEYS = {"benchmark", "customers", "seconds", "peak_rss_mb", "api_calls", "writes"}


def test_bench_reconcile_repairs_exactly_the_seeded_drift(tmp_path: Path) -> None:
    out = tmp_path / "reconcile.json"
    result = bench("reconcile", "--customers", "300", "--out", str(out), timeout=180)
    assert json.loads(out.read_text()) == result
    assert set(result) >= RECONCILE_KEYS
    assert result["benchmark"] == "reconcile"
    assert result["customers"] == 300
    assert result["drifted"] == 18  # 1 % of 300 per kind: 3 + 3 + 2 x 3 + 2 x 3 records
    assert result["writes"] == result["drifted"]
    assert result["remaining_drift"] == 0
    assert result["api_calls"] > 0
    assert 0 < result["seconds"] <= result["wall_seconds"]
    assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
