"""`membersync bench reconcile`: one nightly reconciliation over N people per system, timed and weighed.

What runs:
- the sandbox in a subprocess of its own (`benchmarks.reconcile_sandbox`): Shopify, Smaregi and
  HubSpot seeded straight into their stores with N people each and a known drift (1 % per kind: a
  missing HubSpot contact, a name edited in HubSpot, a name changed in Shopify, points moved at the
  register), rate limits far above what is measured. Its memory is not this process's;
- in THIS process, the reconciliation itself: `registrations.reconcile`'s `Reconciliation.run()`
  over a temporary SQLite database and an embedded valkey-server (the lock), through the real
  connectors with our own rate limits raised to match. Where that engine is not installed, the
  three streams are read and a plan is computed with registrations/owned_fields.py instead
  (`"engine": "plan-only"`: nothing is written and `writes` counts the planned writes).

What is reported (the last stdout line, one JSON object; progress goes to stderr):
- `seconds`: the run's wall time minus `rate_limit_wait_seconds` (time slept waiting out a rate
  limit: ours or a vendor's), so the figure is about the work, not the budget;
- `cpu_seconds`: the CPU time this process spent in the run (the sandbox's is its own): on a machine
  shared with other work, wall time grows but this does not;
- `peak_rss_mb`: this process's peak resident set (getrusage ru_maxrss), which includes the
  interpreter and every import (`rss_before_mb` is the figure just before the run);
- `api_calls`: HTTP requests this process sent to the emulators (every page, poll, download, token
  and write), with `api_calls_by_system`;
- `writes`: the records the run wrote (planned, in plan-only mode); `drifted`: the records seeded out
  of line, which a complete run writes exactly once each; `remaining_drift`: records still out of
  line after the run, as the sandbox counts them (0 when every drift was repaired).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from benchmarks.pipeline import BenchError, Say, bench_redis, say, stop_on_sigterm, temporary_directory

PROJECT = Path(__file__).resolve().parents[1]
SANDBOX_READY_SECONDS = 600
# Our own buckets, far above anything measured: the vendors' limits are not what this measures.
HIGH_OWN_LIMITS = {
    "SHOPIFY_BUCKET_SIZE": "1000000",
    "SHOPIFY_RESTORE_RATE": "100000",
    "SMAREGI_RATE_LIMIT_PER_SECOND": "100000",
    "HUBSPOT_RATE_LIMIT_PER_10S": "10000000",
}
ENGINE_MODULE = "registrations.reconcile.run"


@dataclass(frozen=True)
class ReconcileOptions:
    customers: int = 10_000

    def check(self) -> None:
        if self.customers < 1:
            raise BenchError("--customers must be at least 1")


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used: unlike wall time, not inflated by a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the sandbox subprocess ---------------------------------------------------------------------------


class SeededSandbox:
    """`python -m benchmarks.reconcile_sandbox` in a subprocess: its URLs, drift and verification."""

    def __init__(self, customers: int, log_path: Path) -> None:
        self.customers = customers
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, log: Say = say) -> None:
        log(f"sandbox: seeding {self.customers} people per system in a subprocess")
        with self.log_path.open("w") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.reconcile_sandbox", "--customers", str(self.customers)],
                cwd=PROJECT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                start_new_session=True,
            )
        self.ready = self._answer(SANDBOX_READY_SECONDS)
        log(f"sandbox: seeded in {self.ready['seed_seconds']} s, {self.ready['drifted']} records drifted")

    @property
    def urls(self) -> dict[str, str]:
        return dict(self.ready["urls"])

    def verify(self) -> dict[str, Any]:
        """Records still out of line (asked of the sandbox, which knows what it seeded)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("verify\n")
        self.process.stdin.flush()
        return self._answer(SANDBOX_READY_SECONDS)

    def _answer(self, seconds: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = _read_line(self.process.stdout, seconds)
        if not line:
            self.process.poll()
            raise BenchError(f"the bench sandbox did not answer:\n{self.log_path.read_text()[-4000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()  # the sandbox stops when its stdin closes
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _read_line(stream: IO[str], seconds: float) -> str:
    """One line from `stream`, or "" when none comes within `seconds`."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return lines[0] if lines else ""


# --- counting requests -------------------------------------------------------------------------------


@contextlib.contextmanager
def counted_requests(urls: Mapping[str, str]) -> Iterator[Counter[str]]:
    """Count every HTTP request this process sends, by the emulator it goes to."""
    systems = {urlsplit(url).netloc: name for name, url in urls.items()}
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = HTTPAdapter.send

    def send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            counts[systems.get(urlsplit(request.url).netloc, "other")] += 1
        return original(adapter, request, *args, **kwargs)

    HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    try:
        yield counts
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Measured:
    engine: str
    wall_seconds: float
    waited_seconds: float
    writes: int
    writes_by_system: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def run_reconcile_bench(
    options: ReconcileOptions, environ: Mapping[str, str] | None = None, log: Say = say
) -> dict[str, Any]:
    """Run the benchmark and return its result document (see the module docstring)."""
    options.check()
    environ = dict(os.environ if environ is None else environ)
    with stop_on_sigterm(), contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temporary_directory())
        sandbox = SeededSandbox(options.customers, tmp / "sandbox.log")
        stack.callback(sandbox.stop)
        sandbox.start(log)
        # Always an embedded valkey: the reconciliation lock must not meet another run's.
        redis_url = stack.enter_context(bench_redis(tmp, {}, log))
        env = {
            **{name: value for name, value in environ.items() if name != "SENTRY_DSN"},
            "MEMBERSYNC_ENV": "development",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "REDIS_URL": redis_url,
            **HIGH_OWN_LIMITS,
            "SHOPIFY_ADMIN_URL": sandbox.urls["shopify"],
            "SMAREGI_API_URL": sandbox.urls["smaregi"],
            "SMAREGI_ID_URL": sandbox.urls["smaregi"],
            "HUBSPOT_API_URL": sandbox.urls["hubspot"],
        }
        rss_before = peak_rss_mb()
        cpu_before = cpu_seconds()
        with counted_requests(sandbox.urls) as calls:
            measured = _reconcile(env, tmp, log)
        cpu = cpu_seconds() - cpu_before
        left = sandbox.verify()
        seconds = measured.wall_seconds - measured.waited_seconds
        result = {
            "benchmark": "reconcile",
            "customers": options.customers,
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "api_calls": sum(calls.values()),
            "writes": measured.writes,
            "drifted": sandbox.ready["drifted"],
            "rate_limit_wait_seconds": round(measured.waited_seconds, 2),
            "wall_seconds": round(measured.wall_seconds, 2),
            "remaining_drift": left["remaining_drift"],
            "engine": measured.engine,
            "rss_before_mb": round(rss_before, 1),
            "cpu_seconds": round(cpu, 2),
            "api_calls_by_system": dict(sorted(calls.items())),
            "writes_by_system": measured.writes_by_system,
            "drifted_by_kind": sandbox.ready["drifted_by_kind"],
            "remaining_by_kind": left["remaining_by_kind"],
            "seed_seconds": sandbox.ready["seed_seconds"],
        }
        log(f"reconciled {options.customers} per system in {result['seconds']} s")
        return result
    raise AssertionError("unreachable")  # ExitStack could swallow an exception, as far as mypy knows


def _reconcile(env: Mapping[str, str], tmp: Path, log: Say) -> Measured:
    """The engine's run when it is installed, else the three streams and a plan."""
    from config.settings import Settings

    settings = Settings.from_env(environ=dict(env))
    try:
        engine = importlib.import_module(ENGINE_MODULE)
    except ImportError:
        log("registrations.reconcile is not available: reading the streams and planning only")
        return _plan_only(settings, log)
    return _engine_run(engine, settings, log)


def _engine_run(engine: Any, settings: Any, log: Say) -> Measured:
    import redis

    from connectors.registry import Connectors
    from registrations.database import Database

    database = Database.from_settings(settings)
    try:
        database.upgrade()
        client = redis.Redis.from_url(settings.redis_url)
        connectors = Connectors.from_settings(settings, client)
        reconciliation = engine.Reconciliation(database, connectors, client, settings)
        log("reconciling with registrations.reconcile")
        started = time.monotonic()
        outcome = reconciliation.run()
        wall = time.monotonic() - started
    finally:
        database.dispose()
    report = outcome.as_json()
    if report.get("status") != "completed":
        raise BenchError(f"the reconciliation did not complete: {json.dumps(report)[:2000]}")
    writes = {name: int(count) for name, count in (report.get("writes") or {}).items()}
    return Measured(
        engine="registrations.reconcile",
        wall_seconds=wall,
        waited_seconds=float(getattr(reconciliation.patience, "waited", 0.0)),
        writes=sum(writes.values()),
        writes_by_system=writes,
        report=report,
    )


def _plan_only(settings: Any, log: Say) -> Measured:
    """Read the three streams and count the writes the ownership map asks for (nothing is written).

    Smaregi and HubSpot are indexed by canonical address as small tuples, then the Shopify export is
    streamed past them: memory is two compact indexes, never three lists of full records.
    """
    from config.email_address import canonical_email
    from connectors.hubspot import HubSpotClient
    from connectors.shopify import ShopifyClient
    from connectors.smaregi import SmaregiClient
    from registrations import owned_fields as owned

    hubspot_properties = [*owned.HUBSPOT_PROFILE_PROPERTIES.values(), *owned.HUBSPOT_FACT_PROPERTIES.values()]
    started = time.monotonic()
    smaregi: dict[str, tuple[owned.Profile, owned.MemberFacts]] = {}
    for member in SmaregiClient.from_settings(settings).iter_members():
        if member.mail_address:
            profile = owned.Profile(
                member.mail_address,
                member.first_name,
                member.last_name,
                member.phone_number,
                member.post_code,
                member.address,
            )
            facts = owned.MemberFacts(member.customer_code or None, member.points, member.rank)
            smaregi[canonical_email(member.mail_address)] = (profile, facts)
    hubspot: dict[str, tuple[owned.Profile, owned.MemberFacts]] = {}
    for contact in HubSpotClient.from_settings(settings).iter_contacts(properties=hubspot_properties):
        if contact.email:
            properties = contact.properties
            hubspot[canonical_email(contact.email)] = (
                owned.hubspot_profile(properties),
                owned.hubspot_facts(properties),
            )
    log(f"read {len(smaregi)} Smaregi members and {len(hubspot)} HubSpot contacts")
    writes: Counter[str] = Counter()
    for customer in ShopifyClient.from_settings(settings).export_customers(poll_seconds=0.2):
        if not customer.email:
            continue
        email = canonical_email(customer.email)
        profile = owned.Profile(
            customer.email,
            customer.first_name,
            customer.last_name,
            customer.phone,
            customer.postal_code,
            customer.address,
        )
        mirrored = owned.MemberFacts(customer.member_number, customer.points, customer.rank)
        held = smaregi.get(email)
        facts = held[1] if held else owned.MemberFacts()
        if held and owned.profile_drift(profile, held[0]):
            writes["smaregi"] += 1
        if held and owned.fact_drift(facts, mirrored):
            writes["shopify"] += 1
        mirror = hubspot.get(email)
        if mirror is None or owned.hubspot_update(
            owned.profile_drift(profile, mirror[0]), owned.fact_drift(facts, mirror[1])
        ):
            writes["hubspot"] += 1
    return Measured(
        engine="plan-only",
        wall_seconds=time.monotonic() - started,
        waited_seconds=0.0,
        writes=sum(writes.values()),
        writes_by_system=dict(sorted(writes.items())),
    )
