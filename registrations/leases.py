"""Worker heartbeat leases: which worker processes are alive, so a dead one's work comes back in seconds.

Every worker process (each prefork child, or the one process of a thread pool) holds a lease key in
Redis that a heartbeat thread renews every HEARTBEAT_SECONDS; it expires LEASE_SECONDS after the last
renewal. A step claim records its holder (the process); a running step whose holder's lease is gone
is free at once, and the sweep (tasks/maintenance.py, every WORKER_LEASE_SWEEP_SECONDS) queues again, via
the outbox, every registration a dead holder was running or had received (prefetched, or waiting on a
retry countdown): on Redis those messages would only come back after the visibility timeout, which
must stay longer than the longest retry countdown.

A holder counts as dead only when its key is gone *and* the lease records (`EPOCH_KEY`) are older than
a lease: a Redis that restarted empty would otherwise make every live holder look dead until its next
renewal, and two deliveries would run one step at once.

Keys hold holder ids (host:pid:random) and registration ids only, never personal data.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import redis
from redis.commands.core import Script
from sqlalchemy import or_, select

from config.celery import WORKER_HEARTBEAT_SECONDS, WORKER_LEASE_SECONDS
from registrations.database import Database
from registrations.models import Registration, SyncStep, utcnow
from registrations.outbox import RELAY_BATCH, queue_remaining
from registrations.states import RegistrationStatus, StepState

log = logging.getLogger(__name__)

# Production defaults (config/celery.py): renewed every 5 s, expiring 20 s after the last renewal;
# the sweep runs every 10 s, so a dead worker's work is queued again 15-30 s after it died.
HEARTBEAT_SECONDS = WORKER_HEARTBEAT_SECONDS
LEASE_SECONDS = WORKER_LEASE_SECONDS
# How long a holder's received messages are remembered (a lost heartbeat for longer than this is a
# worker that lost Redis for a day: the stalled sweep covers it).
RECEIVED_MEMORY_SECONDS = 24 * 3600
# A dead holder is queued again once; after that the claims and the stalled sweep carry on.
SWEPT_MEMORY_SECONDS = 3600

LEASE_PREFIX = "membersync:worker:lease:"
RECEIVED_PREFIX = "membersync:worker:received:"
SWEPT_PREFIX = "membersync:worker:swept:"
HOLDERS_KEY = "membersync:worker:holders"
# When the lease records began (Redis server time, seconds): missing or younger than a lease means
# Redis lost its keys lately, and nobody is judged dead until every live holder has renewed.
EPOCH_KEY = "membersync:worker:leases-since"

_identity: tuple[int, str] | None = None
_heartbeat: Heartbeat | None = None


def holder_id() -> str:
    """This process's holder id: host, pid and a random part (a pid is reused; a holder id never is)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # a forked child is a holder of its own
        # The host name cut to fit sync_steps.holder (128) with the pid and the random part.
        _identity = (pid, f"{socket.gethostname()[:100]}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


def current_holder() -> str | None:
    """This process's holder id while its heartbeat runs (a worker), else None (web, CLI, tests):
    a process without a lease must not stamp a claim, or it would look dead at once."""
    beat = _heartbeat
    if beat is None or beat.pid != os.getpid() or not beat.is_alive():
        return None
    return beat.holder


def _seconds(value: int | float) -> int:
    return int(value * 1000)


# (holder, delivery) of the messages that have run, not yet dropped from Redis (see `Leases.done`).
_done: list[tuple[str, str]] = []
_done_lock = threading.Lock()


def _forget_done(pipe: redis.client.Pipeline) -> list[tuple[str, str]]:
    """Queue on `pipe` the removal of every finished message's note; returns them (for `_keep_done`)."""
    with _done_lock:
        if not _done:
            return []
        flushed = list(_done)
        _done.clear()
    by_holder: dict[str, list[str]] = {}
    for holder, delivery in flushed:
        by_holder.setdefault(holder, []).append(delivery)
    for holder, deliveries in by_holder.items():
        pipe.hdel(RECEIVED_PREFIX + holder, *deliveries)
    return flushed


def _keep_done(flushed: list[tuple[str, str]]) -> None:
    """The round trip failed: keep the notes for the next one."""
    with _done_lock:
        _done[:0] = flushed


class Leases:
    """The lease records in Redis: renew, release, who is dead, and what a holder received."""

    def __init__(self, client: redis.Redis, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self.client = client
        self.lease_seconds = lease_seconds

    def renew(self, holder: str) -> bool:
        """Renew `holder`'s lease; False when it had lapsed (its work may have been taken over)."""
        now = int(self.client.time()[0])  # type: ignore[index]
        pipe = self.client.pipeline()
        pipe.set(LEASE_PREFIX + holder, "1", px=_seconds(self.lease_seconds), get=True)
        pipe.sadd(HOLDERS_KEY, holder)
        pipe.set(EPOCH_KEY, now, nx=True)
        flushed = _forget_done(pipe)
        try:
            previous = pipe.execute()[0]
        except Exception:
            _keep_done(flushed)
            raise
        return previous is not None

    def release(self, holder: str) -> None:
        """A holder that stops cleanly (its tasks done) is dead at once: the next sweep queues again
        whatever it had received and not run (the broker normally restores those messages too)."""
        pipe = self.client.pipeline()
        _forget_done(pipe)  # what has run must not be queued again by that sweep
        pipe.delete(LEASE_PREFIX + holder)
        pipe.execute()

    def settled(self) -> bool:
        """Whether the lease records are older than a lease (no recent Redis restart)."""
        since = self.client.get(EPOCH_KEY)
        if since is None:
            return False
        now = int(self.client.time()[0])  # type: ignore[index]
        return now - int(since) >= self.lease_seconds  # type: ignore[arg-type]

    def dead(self, holders: Iterable[str]) -> set[str]:
        """Those of `holders` whose lease is gone (none while the records are younger than a lease)."""
        wanted = sorted(set(holders))
        if not wanted or not self.settled():
            return set()
        pipe = self.client.pipeline()
        for holder in wanted:
            pipe.exists(LEASE_PREFIX + holder)
        return {holder for holder, alive in zip(wanted, pipe.execute(), strict=True) if not alive}

    def is_dead(self, holder: str) -> bool:
        return holder in self.dead([holder])

    def known_holders(self) -> set[str]:
        return {value.decode() for value in self.client.smembers(HOLDERS_KEY)}  # type: ignore[union-attr]

    def received(self, holder: str, delivery: str, registration_id: str) -> None:
        """`holder` took a step message for `registration_id` (prefetched, or held for its countdown)."""
        pipe = self.client.pipeline(transaction=False)  # no MULTI/EXEC needed: notes are independent
        flushed = _forget_done(pipe)
        pipe.hset(RECEIVED_PREFIX + holder, delivery, registration_id)
        pipe.expire(RECEIVED_PREFIX + holder, RECEIVED_MEMORY_SECONDS)
        try:
            pipe.execute()
        except Exception:
            _keep_done(flushed)
            raise

    def done(self, holder: str, delivery: str) -> None:
        """The message has run (and is acknowledged once the task returns).

        No round trip of its own: the note is dropped with this process's next `received` or lease
        renewal (every HEARTBEAT_SECONDS), in the same round trip. Until then a sweep that finds the
        holder dead queues that registration again, which its steps' claims make harmless.
        """
        with _done_lock:
            _done.append((holder, delivery))

    def registrations_received(self, holder: str) -> set[str]:
        return {value.decode() for value in self.client.hvals(RECEIVED_PREFIX + holder)}  # type: ignore[union-attr]

    def swept(self, holders: Iterable[str]) -> set[str]:
        """Those of `holders` whose work was queued again already."""
        wanted = sorted(set(holders))
        if not wanted:
            return set()
        pipe = self.client.pipeline()
        for holder in wanted:
            pipe.exists(SWEPT_PREFIX + holder)
        return {holder for holder, done in zip(wanted, pipe.execute(), strict=True) if done}

    def forget(self, holder: str) -> None:
        """After its work was queued again: mark the dead holder swept and drop what it received."""
        pipe = self.client.pipeline()
        pipe.set(SWEPT_PREFIX + holder, "1", ex=SWEPT_MEMORY_SECONDS)
        pipe.delete(RECEIVED_PREFIX + holder)
        pipe.srem(HOLDERS_KEY, holder)
        pipe.execute()


class Heartbeat(threading.Thread):
    """Renews this process's lease every `interval` seconds until stopped (a daemon thread)."""

    def __init__(self, leases: Leases, *, interval: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(name="membersync-lease", daemon=True)
        self.leases = leases
        self.interval = interval
        self.holder = holder_id()
        self.pid = os.getpid()
        self._stop_event = threading.Event()

    def run(self) -> None:
        first = True
        while not self._stop_event.is_set():
            try:
                if not self.leases.renew(self.holder) and not first:
                    log.error(
                        "worker lease %s had lapsed: its running steps may have been taken over", self.holder
                    )
                first = False
            except Exception as error:  # Redis down: keep trying; the lease lapses if it stays down
                log.warning("worker lease %s not renewed: %s", self.holder, type(error).__name__)
            self._stop_event.wait(self.interval)

    def stop(self, *, release: bool = True) -> None:
        self._stop_event.set()
        if release:
            try:
                self.leases.release(self.holder)
            except Exception as error:
                log.warning("worker lease %s not released: %s", self.holder, type(error).__name__)


def start_heartbeat(leases: Leases, *, interval: float = HEARTBEAT_SECONDS) -> Heartbeat:
    """Hold a lease for this process (renewed once before returning, so claims can stamp it)."""
    global _heartbeat
    if _heartbeat is not None and _heartbeat.pid == os.getpid() and _heartbeat.is_alive():
        return _heartbeat
    beat = Heartbeat(leases, interval=interval)
    try:
        leases.renew(beat.holder)
    except Exception as error:
        log.warning("worker lease %s not taken yet: %s", beat.holder, type(error).__name__)
    beat.start()
    _heartbeat = beat
    return beat


def stop_heartbeat() -> None:
    """Stop this process's heartbeat and release its lease (a clean shutdown, its tasks done)."""
    global _heartbeat
    beat = _heartbeat
    if beat is not None and beat.pid == os.getpid():
        beat.stop()
        _heartbeat = None


# KEYS[1] the lock; ARGV: token, ttl ms, lease prefix, epoch key, lease seconds.
_ACQUIRE_FROM_DEAD = """
local current = redis.call('get', KEYS[1])
if current then
  local holder = string.match(current, '^(.*)|')
  if not holder or holder == '' then return 0 end
  if redis.call('exists', ARGV[3] .. holder) == 1 then return 0 end
  local since = redis.call('get', ARGV[4])
  if not since then return 0 end
  local now = tonumber(redis.call('time')[1])
  if now - tonumber(since) < tonumber(ARGV[5]) then return 0 end
end
redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
return 1
"""


_scripts: dict[str, Script] = {}
_scripts_lock = threading.Lock()


def lua_script(client: redis.Redis, source: str) -> Script:
    """`source` as a redis-py Script, made once per process (its SHA1 computed once): every call
    passes its client, and a Redis that lost its scripts (NOSCRIPT) gets it loaded again."""
    script = _scripts.get(source)
    if script is None:
        with _scripts_lock:
            script = _scripts.setdefault(source, client.register_script(source))
    return script


def acquire_from_dead(client: redis.Redis, name: str, token: str, *, timeout: float) -> bool:
    """Take lock `name` with `token` (`holder|random`, see `lock_token`) for `timeout` seconds: when
    free, or at once when the holder named in the current token has lost its lease (atomically, in
    one round trip); False while a live holder (or a token naming none) has it."""
    taken = lua_script(client, _ACQUIRE_FROM_DEAD)(
        keys=[name],
        args=[token, int(timeout * 1000), LEASE_PREFIX, EPOCH_KEY, LEASE_SECONDS],
        client=client,
    )
    return bool(taken)


# Tells one hold of a lock from another of the same holder (a holder id is never reused, so
# holder and count are unique; os.urandom per lock was a system call for nothing).
_holds = itertools.count()


def lock_token(holder: str) -> str:
    """An `acquire_from_dead` token for `holder`, unique to this hold."""
    return f"{holder}|{next(_holds)}"


def unleased_token() -> str:
    """A lock token of a process without a lease, unique to this hold. It has no '|': the takeover
    script (`acquire_from_dead`) never reads it as a holder whose lease is gone, so only the lock's
    timeout frees it (a holder id without a lease key would look dead at once)."""
    return f"{holder_id()}#{next(_holds)}"


@dataclass(frozen=True)
class BrokerView:
    """What a broker that keeps no per-consumer record (Redis) holds of the step messages, by
    registration id: `orphaned` delivered before the dead holder could have renewed its lease and
    never acknowledged; `in_flight` waiting in a queue, or delivered a moment ago."""

    orphaned: frozenset[str]
    in_flight: frozenset[str]


def idle_registrations(database: Database, *, idle_seconds: float) -> set[str]:
    """Unfinished registrations with no step running and nothing changed for `idle_seconds`."""
    cutoff = utcnow() - timedelta(seconds=idle_seconds)
    busy = select(SyncStep.registration_id).where(
        or_(SyncStep.state == StepState.RUNNING, SyncStep.updated_at > cutoff)
    )
    with database.session() as session:
        return set(
            session.scalars(
                select(Registration.id)
                .where(
                    Registration.status.in_([RegistrationStatus.ACCEPTED, RegistrationStatus.SYNCING]),
                    Registration.created_at <= cutoff,
                    Registration.id.not_in(busy),
                )
                .limit(RELAY_BATCH)
            )
        )


def sweep_dead_holders(
    database: Database, leases: Leases, *, broker: Callable[[], BrokerView | None] | None = None
) -> int:
    """Queue again (via the outbox) every registration a dead worker process was running a step of
    or had received a message for; returns how many registrations were queued.

    Each dead holder is swept once: its running steps are then free to the new messages' claims (the
    compare-and-set decides between them), and a message still held for it elsewhere finds the step
    taken or done. Holders come from the lease records and from the running steps themselves, so a
    Redis that lost the records still frees the steps (once its lease records are a lease old).

    `broker` tells what a Redis broker holds (tasks/leases.py): a message the dead worker took in
    the instant before it died is in no note, and may not even be in the broker's unacknowledged
    hash (popped, not yet recorded). So when a holder is found dead, a registration is queued again
    too if its message sits unacknowledged since before the death, or if it is unfinished and idle
    for as long with no message waiting in a queue, and no live holder runs or holds it.
    """
    with database.session() as session:
        running = session.execute(
            select(SyncStep.holder, SyncStep.registration_id).where(
                SyncStep.state == StepState.RUNNING, SyncStep.holder.is_not(None)
            )
        ).all()
    candidates = leases.known_holders() | {holder for holder, _ in running if holder}
    dead = leases.dead(candidates)
    dead -= leases.swept(dead)
    queued = 0
    view = broker() if dead and broker is not None else None
    if view is not None:
        live = candidates - leases.dead(candidates)
        claimed = {registration_id for held_by, registration_id in running if held_by in live}
        for holder in live:
            claimed |= leases.registrations_received(holder)
        idle = idle_registrations(database, idle_seconds=LEASE_SECONDS - HEARTBEAT_SECONDS)
        orphans = (set(view.orphaned) | (idle - view.in_flight)) - claimed
        for registration_id in sorted(orphans):
            if queue_remaining(database, registration_id) is not None:
                queued += 1
        if orphans:
            log.warning(
                "%d registration(s) with no live holder nor waiting message queued again",
                len(orphans),
            )
    for holder in sorted(dead):
        registration_ids = leases.registrations_received(holder)
        registration_ids |= {registration_id for held_by, registration_id in running if held_by == holder}
        for registration_id in sorted(registration_ids):
            if queue_remaining(database, registration_id) is not None:
                queued += 1
        leases.forget(holder)
        log.warning(
            "worker %s is gone (lease expired): %d registration(s) queued again",
            holder,
            len(registration_ids),
        )
    return queued
