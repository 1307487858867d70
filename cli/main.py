"""The `membersync` command line: dev, sandbox, status, check, dlq, backfill, reconcile, db, bench."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from cli import views
from cli.output import Progress, emit, emit_json_and_text, json_option
from config.settings import ConfigError, Settings, load_settings
from config.systems import SYSTEMS
from registrations.database import Database
from registrations.models import DeadLetter, Registration
from registrations.states import DeadLetterStatus


def _settings() -> Settings:
    from cli.devserver import running_dev_environment

    # With no services configured, a `membersync dev` running in this folder is the one meant.
    environ = running_dev_environment(os.environ, _announce_once)
    try:
        return load_settings(environ)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


_announced: set[str] = set()


def _announce_once(line: str) -> None:
    if line not in _announced:
        _announced.add(line)
        click.echo(line, err=True)


def _database() -> Database:
    return Database.from_settings(_settings())


def _not_yet(what: str) -> None:
    """Commands whose machinery arrives with a later issue say so plainly and exit non-zero."""
    raise click.ClickException(
        f"{what} is not available in this version yet (it arrives with its own issue)."
    )


# `dev`, `sandbox` and `bench` run the emulators, the embedded Redis and the benchmarks: the
# distribution of sandbox/pyproject.toml, installed by `make dev` and never in a production image.
SANDBOX_DISTRIBUTION = "membersync-sandbox"


class DevelopmentCommandUnavailable(click.ClickException):
    """A development command where the sandbox distribution is not installed (exit status 2, as for a
    command line this installation cannot run)."""

    exit_code = 2


def _require_sandbox(command: str) -> None:
    """Stop with a plain message, before any import of the sandbox fails with a traceback."""
    try:
        importlib.metadata.distribution(SANDBOX_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise DevelopmentCommandUnavailable(
            f"`membersync {command}` is a development command and this installation does not include "
            f"it (production images leave out the {SANDBOX_DISTRIBUTION} distribution). To use it, "
            "from a checkout of the repository: `make dev`, or `pip install -e . -e sandbox/`."
        ) from None


def _print(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _version() -> str:
    """The installed distribution's version; from a checkout that is not installed, pyproject.toml's."""
    try:
        return importlib.metadata.version("membersync")
    except importlib.metadata.PackageNotFoundError:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as pyproject:
            return str(tomllib.load(pyproject)["project"]["version"])


@click.group()
@click.version_option(version=_version(), prog_name="membersync")
@json_option
def main() -> None:
    """Membersync: one registration, a member everywhere (Shopify, Smaregi, HubSpot, welcome email)."""


@main.command()
@click.option(
    "--fast-retries",
    is_flag=True,
    help="Demo: short retry policies for every system, so a step that keeps failing is a dead letter "
    "within seconds (instead of 10-17 minutes).",
)
@click.option(
    "--embedded-redis",
    is_flag=True,
    help="Always start the embedded Redis, even when one answers on localhost:6379.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show every line of every process here (always written to var/log/dev.log); "
    "default: warnings, errors and the ready banner.",
)
def dev(fast_retries: bool, embedded_redis: bool, verbose: bool) -> None:
    """Run everything locally: sandbox, embedded Redis, SQLite, web, worker, beat, Flower."""
    _require_sandbox("dev")
    from cli.devserver import run_dev

    try:
        status = run_dev(fast_retries=fast_retries, embedded_redis=embedded_redis, verbose=verbose)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)


@main.command()
def sandbox() -> None:
    """Run only the emulators (Shopify, Smaregi, HubSpot) and the SMTP catcher."""
    _require_sandbox("sandbox")
    from sandbox.runner import main as run_sandbox

    sys.exit(run_sandbox([]))


@main.command()
@click.argument("registration_id")
@json_option
def status(registration_id: str) -> None:
    """One registration's status as JSON on stdout (no personal data); a table on stderr."""
    from registrations.status import status_document

    with _database().session() as session:
        registration = session.get(Registration, registration_id)
        if registration is None:
            raise click.ClickException(f"no registration {registration_id}")
        emit_json_and_text(status_document(registration), views.status_text)


@main.command()
def check() -> None:
    """Each enabled vendor's credentials and scopes, by one cheap read; exits 1 when one fails."""
    import redis

    from cli.check import FAILED, check_all, summary
    from connectors.registry import Connectors

    settings = _settings()
    try:
        connectors = Connectors.from_settings(settings, redis.Redis.from_url(settings.effective_redis_url))
    except ValueError as error:  # a setting the clients refuse (e.g. MAIL_FROM)
        raise click.ClickException(str(error)) from None
    outcomes = check_all(connectors, settings.enabled_systems())
    for name, outcome in outcomes.items():
        click.echo(f"{name}: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
    click.echo(json.dumps(summary(outcomes), ensure_ascii=False))
    if any(outcome.status == FAILED for outcome in outcomes.values()):
        sys.exit(1)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to head."""
    database = _database()
    database.upgrade()
    click.echo(f"database at head ({database.engine.url.render_as_string(hide_password=True)})")


@main.group()
def dlq() -> None:
    """Dead letters: list, show, replay, discard, resolve."""


def _dead_letter_document(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "registration_id": letter.registration_id,
        "change_id": letter.change_id,
        "system": letter.system,
        "task_name": letter.task_name,
        "error_class": letter.error_class,
        "message": letter.message,
        "attempts": letter.attempts,
        "first_failed_at": letter.first_failed_at,
        "last_failed_at": letter.last_failed_at,
        "status": letter.status,
    }


@dlq.command("list")
@click.option(
    "--status",
    "status_filter",
    default=DeadLetterStatus.OPEN.value,  # the value: click shows an enum default by its name
    show_default=True,
    help="open/replayed/resolved/discarded/all",
)
@json_option
def dlq_list(status_filter: str) -> None:
    """Dead letters, oldest first (a table; --json for scripts)."""
    from registrations.dead_letters import DeadLetterFilter, DeadLetters

    wanted = DeadLetterFilter(status=None if status_filter == "all" else status_filter)
    listed = [_dead_letter_document(letter) for letter in DeadLetters(_database()).list(wanted)]
    emit(listed, lambda letters: views.dead_letters_text(letters, status_filter))


@dlq.command("show")
@click.argument("dead_letter_id", type=int)
@json_option
def dlq_show(dead_letter_id: int) -> None:
    """One dead letter (--json for scripts)."""
    from registrations.dead_letters import DeadLetters

    letter = DeadLetters(_database()).show(dead_letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {dead_letter_id}")
    document = {**_dead_letter_document(letter), "args": letter.args, "notes": letter.notes}
    emit(document, views.dead_letter_text)


def _celery() -> Any:
    """A Celery app for publishing from the command line (fails fast when the broker is down:
    what was not published stays in the outbox for the relay)."""
    from tasks.factory import create_celery_app

    settings = _settings()
    return create_celery_app(settings, Database.from_settings(settings), fail_fast=True)


def _operator_option(function: Any) -> Any:
    """`--operator NAME`: who acts, for the audit trail (default: the OS user running the command)."""
    return click.option(
        "--operator",
        default=None,
        metavar="NAME",
        help="Who does this, for the ops audit trail (default: your OS user name).",
    )(function)


def _cli_actor(operator: str | None) -> Any:
    """The audit trail's actor of a `membersync dlq` command: `--operator`, else the OS user."""
    import getpass

    from registrations.audit import CLI, Actor

    if not operator:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a bare container)
            operator = "unknown"
    return Actor(operator.strip()[:64] or "unknown", CLI)


@dlq.command("replay")
@click.argument("dead_letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every open dead letter.")
@_operator_option
@json_option
def dlq_replay(dead_letter_id: str | None, replay_all: bool, operator: str | None) -> None:
    """Re-run the chain from the failed step (ID: a dead-letter id or a registration id)."""
    from registrations.dead_letters import DeadLetters, NothingToReplay, Pacer, replay_rate

    if replay_all == (dead_letter_id is not None):
        raise click.UsageError("give either a DEAD_LETTER_ID or --all")
    from tasks.changes import queue_change

    # The worker's database: a replay is published after its commit, on the worker's broker; a
    # change's task goes to the same broker (or, when it does not answer, the change sweep sends it).
    celery = _celery()
    letters = DeadLetters(
        celery.membersync.database,
        queue_change=lambda change_id: queue_change(celery, change_id),
        actor=_cli_actor(operator),
    )
    # --all is paced by the vendors' rate budgets: a burst would defer the replayed steps past their
    # time budget and dead-letter them again.
    pacer = Pacer(replay_rate(celery.membersync.settings)) if replay_all else None
    targets = (
        [*letters.open_registrations(), *map(str, letters.open_change_letters())]
        if replay_all
        else [str(dead_letter_id)]
    )
    replayed: list[dict[str, Any]] = []
    unpublished: list[dict[str, Any]] = []
    progress = Progress("replaying", len(targets), every=10) if replay_all else None
    for target in targets:
        if pacer is not None:
            pacer.wait()
        if progress is not None:
            progress.advance()
        try:
            outcome = letters.replay(target)
        except NothingToReplay:
            if replay_all:
                continue  # closed since it was listed (a later success resolved it, another operator)
            raise click.ClickException(f"no open dead letter for {target}") from None
        entry: dict[str, Any] = {"registration_id": outcome.registration_id, "systems": list(outcome.systems)}
        if outcome.change_id is not None:
            entry["change_id"] = outcome.change_id
        # A row the broker did not take stays in the outbox for the relay.
        (replayed if outcome.published else unpublished).append(entry)
    if progress is not None:
        progress.finish()
    emit({"replayed": replayed, "count": len(replayed), "not_published": unpublished}, views.replay_text)
    if unpublished:
        raise click.ClickException(
            f"{len(unpublished)} replay(s) reopened but NOT published: the broker did not answer. "
            "The outbox keeps them and the relay publishes them once the broker answers "
            "(check that the worker's Redis is up)."
        )


@dlq.command("discard")
@click.argument("dead_letter_id", type=int)
@click.option("--note", default=None, help="Why it needs nothing more (kept on the dead letter).")
@_operator_option
@json_option
def dlq_discard(dead_letter_id: int, note: str | None, operator: str | None) -> None:
    """Close a dead letter without replaying it."""
    from registrations.dead_letters import DeadLetters, NotOpen

    try:
        letter = DeadLetters(_database(), actor=_cli_actor(operator)).discard(dead_letter_id, note=note)
    except NotOpen:
        raise click.ClickException(f"no open dead letter {dead_letter_id}") from None
    emit(_dead_letter_document(letter), views.dead_letter_text)


@dlq.command("resolve")
@click.argument("dead_letter_id", type=int)
@click.option("--note", required=True, help="What was done by hand instead (kept on the dead letter).")
@_operator_option
@json_option
def dlq_resolve(dead_letter_id: int, note: str, operator: str | None) -> None:
    """Close a dead letter whose work was done by hand (in the vendor's own tool); nothing is run."""
    from registrations.dead_letters import DeadLetters, NotOpen

    try:
        letter = DeadLetters(_database(), actor=_cli_actor(operator)).resolve(dead_letter_id, note=note)
    except NotOpen:
        raise click.ClickException(f"no open dead letter {dead_letter_id}") from None
    emit(_dead_letter_document(letter), views.dead_letter_text)


@main.group("ops-user")
def ops_user() -> None:
    """Named operator accounts of the ops console (OPS_USERS / OPS_USERS_FILE)."""


@ops_user.command("hash")
@click.argument("name")
@click.password_option(help="The operator's password (asked twice when not given).")
def ops_user_hash(name: str, password: str) -> None:
    """Print a `NAME:hash` line for OPS_USERS (comma-separated) or OPS_USERS_FILE (one a line)."""
    from config.operators import hash_password, parse_operators
    from config.secret_strength import password_weakness

    if reason := password_weakness(password, name):
        raise click.ClickException(f"the password {reason}: choose a long random one (12+ characters)")
    line = f"{name}:{hash_password(password)}"
    try:
        parse_operators(line, source="the name")
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(line)


@main.command()
@click.argument("system", type=click.Choice([s.name for s in SYSTEMS if not s.master]))
@json_option
def backfill(system: str) -> None:
    """Complete the SYSTEM steps that were skipped while it was switched off."""
    from registrations.replay import backfill as run_backfill

    runtime = _celery().membersync
    try:
        count = run_backfill(runtime.database, runtime.settings, system)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    emit({"system": system, "reopened": count}, views.backfill_text)


@main.group()
def directory() -> None:
    """The Smaregi member directory (our index of members by e-mail)."""


@directory.command("sync")
@click.option("--full", is_flag=True, help="Load every member (else: changes since the last pull).")
@json_option
def directory_sync(full: bool) -> None:
    """Refresh the member directory from Smaregi now; prints a summary (--json for scripts)."""
    import redis

    from connectors.errors import ConnectorError
    from connectors.registry import Connectors
    from registrations.directory import MemberDirectory

    settings = _settings()
    database = Database.from_settings(settings)
    connectors = Connectors.from_settings(settings, redis.Redis.from_url(settings.effective_redis_url))
    members = MemberDirectory(database)
    # Smaregi does not say how many members there are: a running count of those read so far.
    progress = Progress("members read", every=0)
    try:
        if full:
            report = members.full_load(connectors.smaregi, reason="requested", progress=progress.update)
        else:
            report = members.pull(connectors.smaregi, progress=progress.update)
    except ConnectorError as error:
        raise click.ClickException(f"directory sync failed: {error}") from None
    finally:
        database.dispose()
        progress.finish()
    emit(report.as_json(), views.directory_text)


@main.command()
@click.option("--dry-run", is_flag=True, help="Read and plan only: nothing is written anywhere.")
@click.option(
    "--system",
    "systems",
    multiple=True,
    type=click.Choice(["shopify", "smaregi", "hubspot"]),
    help="Reconcile only these systems (repeatable; default all). Shopify, the owner, is always read.",
)
def reconcile(dry_run: bool, systems: tuple[str, ...]) -> None:
    """One reconciliation run now: progress on stderr, then its report as JSON on the last line."""
    import redis

    from connectors.errors import ConnectorError
    from connectors.registry import Connectors
    from registrations.reconcile.run import Reconciliation
    from registrations.states import ReconciliationStatus

    settings = _settings()
    database = Database.from_settings(settings)
    client = redis.Redis.from_url(settings.effective_redis_url)

    def progress(phase: str, done: int, total: int) -> None:
        if total:
            width = 30
            filled = width * done // total
            bar = "#" * filled + "." * (width - filled)
            click.echo(f"\r{phase} [{bar}] {done}/{total}", err=True, nl=False)
        else:
            click.echo(f"\r{phase} ...", err=True, nl=False)

    try:
        result = Reconciliation(
            database,
            Connectors.from_settings(settings, client),
            client,
            settings,
            dry_run=dry_run,
            systems=systems or None,
            progress=progress,
        ).run()
    except ConnectorError as error:
        # The run's row says failed; the next run does what this one left.
        raise click.ClickException(f"reconciliation failed: {error}") from None
    finally:
        database.dispose()
    click.echo("", err=True)
    click.echo(json.dumps(result.as_json(), ensure_ascii=False, default=str))
    if result.status in (ReconciliationStatus.FAILED, ReconciliationStatus.FENCED):
        sys.exit(1)  # a skipped run is not a failure: another one is doing the work


@main.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object on its last line."""
    _require_sandbox("bench")


def _bench_result(document: dict[str, Any], out: str | None = None) -> None:
    """A benchmark's result: one JSON object on the last line of stdout, also written to `out`
    (default var/bench/<benchmark>.json under the working directory)."""
    text = json.dumps(document, ensure_ascii=False, separators=(", ", ": "))
    path = Path(out) if out else Path("var") / "bench" / f"{document.get('benchmark', 'bench')}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        click.echo(f"[bench] written to {path}", err=True)
    except OSError as error:
        click.echo(f"[bench] could not write {path}: {error}", err=True)
    click.echo(text)


def _out_option(function: Any) -> Any:
    """`--out PATH`: where the result's JSON object is also written."""
    return click.option(
        "--out",
        default=None,
        metavar="PATH",
        help="Also write the JSON result here [default: var/bench/<benchmark>.json].",
    )(function)


@bench.command("pipeline")
@click.option("--registrations", default=200, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--latency-ms",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Added to every vendor call.",
)
@click.option(
    "--pool",
    type=click.Choice(["threads", "prefork", "gevent", "eventlet", "solo"]),
    default="threads",
    show_default=True,
    help="The worker's pool.",
)
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--timeout",
    "timeout_seconds",
    default=300.0,
    show_default=True,
    help="Seconds to wait for every registration to sync; what has not synced by then is lost.",
)
@click.option(
    "--baseline-registrations",
    type=click.IntRange(min=0),
    default=None,
    help="Registrations run sequentially in-process for the baseline [default: min(N, 10)].",
)
@click.option(
    "--intake-threads",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Clients posting the registrations at once.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes on the same broker and database.",
)
@click.option(
    "--scale-out",
    default=None,
    metavar="COUNTS",
    help="Also measure with each of these worker process counts, e.g. 1,2,4 (`scale_out` in the result).",
)
@click.option(
    "--no-bare",
    is_flag=True,
    help="Skip the bare four-task chain baseline (no `ratio`).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Count the workers' SQL statements, Redis round trips and HTTP connections per registration.",
)
@_out_option
def bench_pipeline(
    registrations: int,
    latency_ms: int,
    pool: str,
    concurrency: int,
    timeout_seconds: float,
    baseline_registrations: int | None,
    intake_threads: int,
    workers: int,
    scale_out: str | None,
    no_bare: bool,
    profile: bool,
    out: str | None,
) -> None:
    """End-to-end throughput against the sandbox: intake, broker, real workers, every step; against a
    bare four-task Celery chain on the same broker, pool and concurrency (`ratio`)."""
    from benchmarks.pipeline import BenchError, PipelineOptions, run_pipeline_bench

    try:
        counts = tuple(int(part) for part in scale_out.split(",") if part.strip()) if scale_out else ()
    except ValueError:
        raise click.BadParameter(
            "a comma-separated list of worker counts", param_hint="--scale-out"
        ) from None

    options = PipelineOptions(
        registrations=registrations,
        latency_ms=latency_ms,
        pool=pool,
        concurrency=concurrency,
        timeout_seconds=timeout_seconds,
        baseline_registrations=baseline_registrations,
        intake_threads=intake_threads,
        workers=workers,
        scale_out=counts,
        bare=not no_bare,
        profile=profile,
    )
    try:
        result = run_pipeline_bench(options)
    except (BenchError, ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    _bench_result(result, out)


@bench.command("intake")
@click.option("--seconds", default=8.0, show_default=True, type=click.FloatRange(min=1), help="Load time.")
@click.option("--connections", default=16, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--driver",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    show_default=True,
    help="The load generator: wrk when installed (auto), else a Python driver.",
)
@click.option(
    "--database-url",
    default=None,
    help="The intake's database (else DATABASE_URL, else a temporary SQLite file).",
)
@_out_option
def bench_intake(
    seconds: float, connections: int, driver: str, database_url: str | None, out: str | None
) -> None:
    """The Procfile's web process under load against a bare Flask 202 endpoint on the same settings."""
    from benchmarks.intake import IntakeOptions, run_intake_bench
    from benchmarks.pipeline import BenchError

    environ = dict(os.environ)
    if database_url:
        environ["DATABASE_URL"] = database_url
    try:
        result = run_intake_bench(
            IntakeOptions(seconds=seconds, connections=connections, driver=driver), environ
        )
    except (BenchError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    _bench_result(result, out)


@bench.command("ratelimit")
@click.option(
    "--vendor",
    type=click.Choice(["hubspot", "shopify", "smaregi"]),
    default="hubspot",
    show_default=True,
    help="hubspot: callers through the HubSpot connector and bucket; smaregi: the same with half the "
    "callers reading and half writing (10 reads/s and 4 writes/s); shopify: the whole pipeline "
    "with --workers worker processes at a plan's restore rate.",
)
@click.option(
    "--seconds", default=25.0, show_default=True, help="hubspot and smaregi: how long the callers run."
)
@click.option(
    "--limit-per-10s",
    default=100,
    show_default=True,
    type=click.IntRange(min=2),
    help="hubspot: the emulated HubSpot limit (and ours).",
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="hubspot: callers per process.",
)
@click.option("--processes", default=2, show_default=True, type=click.IntRange(min=1), help="hubspot.")
@click.option("--registrations", default=300, show_default=True, type=click.IntRange(min=1), help="shopify.")
@click.option(
    "--workers", default=4, show_default=True, type=click.IntRange(min=1), help="shopify: worker processes."
)
@click.option(
    "--concurrency", default=24, show_default=True, type=click.IntRange(min=1), help="shopify: per worker."
)
@click.option(
    "--restore-rate",
    default=100.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="shopify: cost points restored per second (Standard plan: 100), the emulator's and ours.",
)
@click.option(
    "--bucket-size",
    default=2000.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="shopify: the cost bucket (Standard plan: 2,000), the emulator's and ours.",
)
@click.option(
    "--latency-ms", default=0, show_default=True, type=click.IntRange(min=0), help="Per vendor call."
)
@_out_option
def bench_ratelimit(
    vendor: str,
    seconds: float,
    limit_per_10s: int,
    threads: int,
    processes: int,
    registrations: int,
    workers: int,
    concurrency: int,
    restore_rate: float,
    bucket_size: float,
    latency_ms: int,
    out: str | None,
) -> None:
    """How close the rate limiters get to a vendor's limit without being throttled."""
    from benchmarks.pipeline import BenchError
    from benchmarks.ratelimit import (
        RateLimitOptions,
        ShopifyRateOptions,
        run_ratelimit_bench,
        run_shopify_ratelimit_bench,
    )

    try:
        if vendor == "shopify":
            result = run_shopify_ratelimit_bench(
                ShopifyRateOptions(
                    registrations=registrations,
                    workers=workers,
                    concurrency=concurrency,
                    restore_rate=restore_rate,
                    bucket_size=bucket_size,
                    latency_ms=latency_ms,
                )
            )
        else:
            result = run_ratelimit_bench(
                RateLimitOptions(
                    seconds=seconds,
                    limit_per_10s=limit_per_10s,
                    threads=threads,
                    processes=processes,
                    vendor=vendor,
                    latency_ms=latency_ms,
                )
            )
    except (BenchError, ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    _bench_result(result, out)


@bench.command("reconcile")
@click.option(
    "--customers", default=10_000, show_default=True, type=click.IntRange(min=1), help="People per system."
)
@_out_option
def bench_reconcile(customers: int, out: str | None) -> None:
    """One reconciliation over N seeded people per system (1 % drift per kind): time, memory, writes."""
    from benchmarks.pipeline import BenchError
    from benchmarks.reconcile import ReconcileOptions, run_reconcile_bench

    try:
        result = run_reconcile_bench(ReconcileOptions(customers=customers))
    except (BenchError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    _bench_result(result, out)


@main.command()
@click.option("--registrations", default=2000, show_default=True, type=click.IntRange(min=10))
@click.option("--broker", type=click.Choice(["redis", "rabbitmq"]), default="redis", show_default=True)
@click.option(
    "--broker-url", default=None, help="RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672//)."
)
@click.option(
    "--outage-seconds",
    default=180.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How long every vendor answers 503.",
)
@click.option("--workers", default=3, show_default=True, type=click.IntRange(min=2))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--worker-kills", default=2, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--fast-retries/--production-retries",
    default=True,
    show_default=True,
    help="Short retry policies (benchmarks/chaos.py says which), so a run drains in minutes.",
)
@click.option("--drain-timeout", default=900.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--seed", default=17, show_default=True, type=int)
def chaos(
    registrations: int,
    broker: str,
    broker_url: str | None,
    outage_seconds: float,
    workers: int,
    concurrency: int,
    worker_kills: int,
    fast_retries: bool,
    drain_timeout: float,
    seed: int,
) -> None:
    """The production shape under faults (workers killed, Redis restarted, the database dropped, a
    vendor outage); checks nothing was lost or duplicated. One JSON summary on the last line; exit 1
    when anything was lost, duplicated or leaked."""
    _require_sandbox("chaos")
    from benchmarks.chaos import ChaosOptions, failed_checks, run_chaos
    from benchmarks.pipeline import BenchError

    options = ChaosOptions(
        registrations=registrations,
        broker=broker,
        broker_url=broker_url,
        outage_seconds=outage_seconds,
        workers=workers,
        concurrency=concurrency,
        worker_kills=worker_kills,
        fast_retries=fast_retries,
        drain_timeout_seconds=drain_timeout,
        seed=seed,
    )
    try:
        result = run_chaos(options)
    except (BenchError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    failed = failed_checks(result)
    for failure in failed:
        click.echo(f"chaos check failed: {failure}", err=True)
    _bench_result(result)
    if failed:
        sys.exit(1)
