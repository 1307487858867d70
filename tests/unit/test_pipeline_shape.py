"""The pipeline's shape from the registry: status derivation, chain order, remaining systems."""

from __future__ import annotations

from celery import Celery

from config.settings import Settings
from config.systems import MASTER, SYSTEM_NAMES, SYSTEMS
from registrations.models import SyncStep
from registrations.status import derive_status, remaining_systems
from tasks.chains import build_chain


def steps(**states: str) -> list[SyncStep]:
    return [SyncStep(system=name, state=states.get(name, "pending")) for name in SYSTEM_NAMES]


def test_status_follows_the_steps() -> None:
    assert derive_status(steps()) == "accepted"
    assert derive_status(steps(hubspot="skipped")) == "accepted"
    # The consent step starts done (nothing decided yet): that is no sign that anything has started.
    assert derive_status(steps(consent="succeeded")) == "accepted"
    assert derive_status(steps(shopify="running")) == "syncing"
    assert derive_status(steps(shopify="succeeded")) == "syncing"
    assert derive_status(
        steps(
            shopify="succeeded",
            smaregi="succeeded",
            hubspot="skipped",
            email="succeeded",
            consent="succeeded",
        )
    ) == ("synced")
    assert derive_status(
        steps(
            shopify="succeeded", smaregi="dead", hubspot="succeeded", email="succeeded", consent="succeeded"
        )
    ) == ("partial")
    assert derive_status(steps(shopify="dead")) == "failed"
    # A step that waits for the address's owner (a card found at the till) finishes nothing else.
    waiting = steps(shopify="succeeded", smaregi="waiting", hubspot="succeeded", email="succeeded")
    assert derive_status(waiting) == "syncing"
    assert derive_status([*waiting[:4], SyncStep(system="consent", state="succeeded")]) == "waiting"


def test_remaining_systems_keep_pipeline_order_and_skip_finished_ones() -> None:
    assert remaining_systems(steps()) == list(SYSTEM_NAMES)
    assert remaining_systems(steps(shopify="succeeded", hubspot="dead")) == ["smaregi", "email", "consent"]
    finished = steps(
        shopify="succeeded", smaregi="waiting", hubspot="succeeded", email="dead", consent="skipped"
    )
    assert remaining_systems(finished) == []


def test_the_chain_runs_the_registry_tasks_in_order_with_ids_only() -> None:
    celery = Celery(set_as_current=False)
    signature = build_chain(celery, "r-1", ["smaregi", "email"])
    assert signature is not None
    tasks = signature.tasks  # type: ignore[attr-defined]
    assert [task.task for task in tasks] == [
        "membersync.smaregi.upsert_member",
        "membersync.mail.send_welcome",
    ]
    assert all(task.args == ("r-1",) and task.immutable for task in tasks)
    assert build_chain(celery, "r-1", []) is None
    single = build_chain(celery, "r-1", ["hubspot"])
    assert single is not None and single.task == "membersync.hubspot.upsert_contact"


def test_the_registry_is_the_only_list_of_systems() -> None:
    assert SYSTEM_NAMES == ("shopify", "smaregi", "hubspot", "email", "consent")
    assert MASTER.name == "shopify" and sum(system.master for system in SYSTEMS) == 1
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "test", "RETRY_POLICY_SMAREGI": "attempts=3,base=1,cap=9,budget=60"}
    )
    assert set(settings.retry_policies) == set(SYSTEM_NAMES) == set(settings.enabled_systems())
    assert settings.retry_policies["smaregi"].max_attempts == 3
    assert settings.retry_policies["hubspot"] == next(s for s in SYSTEMS if s.name == "hubspot").default_retry


def test_celery_routes_come_from_the_registry() -> None:
    from config.celery import celery_config

    routes = celery_config(Settings.from_env(environ={"MEMBERSYNC_ENV": "test"}))["task_routes"]
    for system in SYSTEMS:
        assert routes[system.task_name] == {"queue": system.queue}
