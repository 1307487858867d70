"""A worker outside dev mode stops before taking a task when it has no member-number key, whatever
built its settings (`load_settings` refuses it already for a worker started from the environment)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from config.settings import Settings
from tasks.signals import refuse_without_member_code_key

PRODUCTION = {
    "MEMBERSYNC_ENV": "production",
    "OPS_USERNAME": "ops-lead",
    "OPS_PASSWORD": "vX9#kLm2-qRt7wZp",
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
}


def worker(settings: Settings) -> SimpleNamespace:
    """What Celery's worker_init hands its handlers: the worker, whose app carries our runtime."""
    return SimpleNamespace(app=SimpleNamespace(membersync=SimpleNamespace(settings=settings)))


def test_a_production_worker_without_a_member_code_key_exits() -> None:
    with pytest.raises(SystemExit, match="MEMBER_CODE_KEY must be set outside dev mode"):
        refuse_without_member_code_key(worker(Settings.from_env(environ=PRODUCTION)))


def test_a_worker_with_its_key_or_in_dev_mode_starts() -> None:
    keyed = {**PRODUCTION, "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0"}
    refuse_without_member_code_key(worker(Settings.from_env(environ=keyed)))
    refuse_without_member_code_key(worker(Settings.from_env(environ={"MEMBERSYNC_ENV": "test"})))
    refuse_without_member_code_key(SimpleNamespace(app=SimpleNamespace()))  # not one of ours
