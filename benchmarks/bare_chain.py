"""The baseline of `membersync bench pipeline`: a bare four-task Celery chain with trivial tasks.

`celery -A benchmarks.bare_chain worker --queues membersync.bench.bare ...` on the same broker, with the
same pool, concurrency, worker flags and transport configuration as the real worker (our
`config.celery.celery_config`: late acks, prefetch 1, task events), but tasks that do nothing except
hand the chain on; the fourth counts the finished chain in Redis (one INCR on `BARE_CHAIN_COUNTER`).
What the real pipeline achieves against it is the cost of our steps: database, Redis locks and
buckets, vendor HTTP, mail.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from celery import Celery, chain

QUEUE = "membersync.bench.bare"
COUNTER_ENV = "BARE_CHAIN_COUNTER"


def _config(environ: Mapping[str, str]) -> dict[str, Any]:
    from config.celery import celery_config
    from config.settings import Settings

    settings = Settings.from_env(environ=dict(environ))
    skipped = ("task_routes", "task_queues", "task_default", "beat_", "task_time", "task_soft")
    config = {name: value for name, value in celery_config(settings).items() if not name.startswith(skipped)}
    config["task_default_queue"] = QUEUE
    return config


def make_app(environ: Mapping[str, str]) -> Celery:
    """The bare app on the broker `environ` names, with its four tasks."""
    celery = Celery("membersync_bench_bare")
    celery.conf.update(_config(environ))
    counter: list[Any] = []

    def count_one() -> None:
        if not counter:
            import redis

            counter.append(redis.Redis.from_url(environ["REDIS_URL"]))
        counter[0].incr(environ[COUNTER_ENV])

    @celery.task(name="bare.step1", shared=False)
    def step1(number: int) -> int:
        return number

    @celery.task(name="bare.step2", shared=False)
    def step2(number: int) -> int:
        return number

    @celery.task(name="bare.step3", shared=False)
    def step3(number: int) -> int:
        return number

    @celery.task(name="bare.step4", shared=False)
    def step4(number: int) -> int:
        count_one()
        return number

    return celery


def bare_chain(celery: Celery, number: int) -> Any:
    """The four immutable signatures, as the intake publishes ours (each step takes the id, not the
    previous result)."""
    return chain(*(celery.signature(f"bare.step{n}", args=(number,), immutable=True) for n in range(1, 5)))


_apps: list[Celery] = []


def __getattr__(name: str) -> Any:
    """`app`, built on first use from the environment: what `celery -A benchmarks.bare_chain worker`
    runs (the bench process that only publishes never builds it)."""
    if name != "app":
        raise AttributeError(name)
    if not _apps:
        _apps.append(make_app(os.environ))
    return _apps[0]
