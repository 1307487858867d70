"""A bulk replay's progress, kept in Redis so that the console (any web process) can show it while a
worker paces the replay (`membersync.replay_paced`, see `DeadLetters.replay_paced`).

Ids and counts only: who started it (an operator's name) and how far it is. Each job expires a day
after its last update; the console lists the newest few.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import cast

import redis

from registrations.dead_letters import Progress

KEY = "membersync:replay-job:{job_id}"
RECENT_KEY = "membersync:replay-jobs"
KEEP_SECONDS = 24 * 3600
RECENT = 5


@dataclass(frozen=True)
class ReplayJob:
    """One bulk replay: how many targets, how many done, replayed and found closed already."""

    job_id: str
    operator: str
    total: int
    done: int
    replayed: int
    not_open: int
    started_at: float
    finished: bool

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * self.done / self.total)


class ReplayJobs:
    """Start, advance and read bulk replay jobs."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def start(self, total: int, operator: str) -> str:
        job_id = secrets.token_hex(8)
        key = KEY.format(job_id=job_id)
        fields = {"operator": operator, "total": total, "done": 0, "replayed": 0, "not_open": 0}
        self.client.hset(key, mapping={**fields, "started_at": time.time(), "finished": 0})
        self.client.expire(key, KEEP_SECONDS)
        self.client.lpush(RECENT_KEY, job_id)
        self.client.ltrim(RECENT_KEY, 0, RECENT - 1)
        return job_id

    def advance(self, job_id: str, progress: Progress) -> None:
        key = KEY.format(job_id=job_id)
        self.client.hset(
            key,
            mapping={
                "done": progress.done,
                "replayed": progress.replayed,
                "not_open": progress.not_open,
                "finished": int(progress.done >= progress.total),
            },
        )
        self.client.expire(key, KEEP_SECONDS)

    def finish(self, job_id: str) -> None:
        self.client.hset(KEY.format(job_id=job_id), "finished", "1")

    def get(self, job_id: str) -> ReplayJob | None:
        raw = cast(dict[bytes, bytes], self.client.hgetall(KEY.format(job_id=job_id)))
        if not raw:
            return None
        values = {key.decode(): value.decode() for key, value in raw.items()}
        return ReplayJob(
            job_id=job_id,
            operator=values.get("operator", "?"),
            total=int(values.get("total", 0)),
            done=int(values.get("done", 0)),
            replayed=int(values.get("replayed", 0)),
            not_open=int(values.get("not_open", 0)),
            started_at=float(values.get("started_at", 0)),
            finished=values.get("finished") == "1",
        )

    def recent(self) -> list[ReplayJob]:
        """The newest jobs still kept, newest first."""
        listed = cast(list[bytes], self.client.lrange(RECENT_KEY, 0, RECENT - 1))
        ids = [raw.decode() for raw in listed]
        return [job for job in map(self.get, ids) if job is not None]
