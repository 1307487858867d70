"""The global rate limits: one token bucket per external system, kept in Redis and shared by all workers.

Every operation is one Lua script run atomically by Redis, and every clock reading is the Redis server's
own `TIME`, so workers on machines with skewed clocks still agree on one budget. The bucket lives in
one hash per system (`<key_prefix><name>`, no personal data) with the fields

    tokens          what is left, as of `ts`
    ts              server time (seconds, float) of the last write
    capacity        only when the vendor reported one (`observe`); else the configured one applies
    per_second      likewise
    blocked_until   server time before which nobody may acquire (`pause`)

A key expires once it has been idle long enough to be full again (twice the time to fill, plus any
pause still running), so idle buckets vanish and a vanished bucket is a full one with the configured
sizes. Needs Redis 5+ (or Valkey): scripts replicate their effects, so writing after `TIME` is allowed.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import TYPE_CHECKING, Any

from config.systems import SYSTEMS, Budget
from connectors.errors import PermanentError, RateLimited
from connectors.ratelimit import may_borrow, note_granted
from connectors.rollingwindow import RedisRollingWindow

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

    from config.settings import Settings

DEFAULT_KEY_PREFIX = "membersync:ratelimit:"

# KEYS[1] the bucket hash. ARGV: op, configured capacity, configured per_second, then per op:
#   acquire cost, max debt | observe available, capacity or "", per_second or "" | pause seconds | state
#   acquire and state then take, as ARGV[6..8], feedback held back by `observe` (available, capacity or
#   "", per_second or ""), applied first; state puts "" "" in ARGV[4..5]
# Replies are strings (Redis would truncate Lua numbers to integers):
#   acquire {"1", tokens left} | {"0", seconds to wait} | {"-1", capacity} (cost can never fit)
#   state   {tokens, capacity, per_second, seconds still paused}; observe and pause {"1"}
_LUA = """
local key = KEYS[1]
local op = ARGV[1]
local function fmt(x) return string.format('%.17g', x) end

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local h = redis.call('HMGET', key, 'tokens', 'ts', 'capacity', 'per_second', 'blocked_until')
local capacity = tonumber(h[3]) or tonumber(ARGV[2])
local per_second = tonumber(h[4]) or tonumber(ARGV[3])
local blocked_until = tonumber(h[5]) or 0
local tokens = tonumber(h[1])
local ts = tonumber(h[2])
if tokens == nil or ts == nil then
  tokens = capacity
elseif now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * per_second)
end
-- A server clock stepped back gives no refill for the lost interval (never extra tokens).
ts = now

local function save()
  redis.call('HSET', key, 'tokens', fmt(tokens), 'ts', fmt(ts), 'blocked_until', fmt(blocked_until))
  local ttl = math.max(blocked_until - now, 0) + 2 * (capacity - math.min(tokens, 0)) / per_second
  redis.call('PEXPIRE', key, string.format('%.0f', math.min(math.max(1, math.ceil(ttl * 1000)), 1e15)))
end

-- Vendor feedback (observe), applied before the operation: the operation's own, or one a client
-- held back to send with its next acquire or state (ARGV[6..8] of those).
local function apply_observed(available, new_capacity, new_per_second)
  if new_capacity then
    capacity = new_capacity
    redis.call('HSET', key, 'capacity', fmt(capacity))
  end
  if new_per_second then
    per_second = new_per_second
    redis.call('HSET', key, 'per_second', fmt(per_second))
  end
  tokens = math.min(tokens, available, capacity)
end
local held = (op == 'acquire' or op == 'state') and tonumber(ARGV[6]) ~= nil
if held then
  apply_observed(tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
end
if op == 'acquire' then
  local cost = tonumber(ARGV[4])
  if cost > capacity then
    if held then save() end
    return {'-1', fmt(capacity)}
  end
  local max_debt = tonumber(ARGV[5]) or 0
  local wait = 0
  if blocked_until > now then wait = blocked_until - now end
  -- A step already under way may borrow down to -max_debt (see connectors.ratelimit.one_step).
  if tokens < cost and tokens - cost < -max_debt then
    wait = math.max(wait, (cost - tokens) / per_second)
  end
  if wait > 0 then
    if held then save() end
    return {'0', fmt(wait)}
  end
  tokens = tokens - cost
  save()
  return {'1', fmt(tokens)}
elseif op == 'observe' then
  apply_observed(tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
  save()
  return {'1'}
elseif op == 'pause' then
  blocked_until = math.max(blocked_until, now + tonumber(ARGV[4]))
  tokens = math.min(tokens, 0)
  save()
  return {'1'}
elseif op == 'state' then
  if held then save() end
  return {fmt(tokens), fmt(capacity), fmt(per_second), fmt(math.max(blocked_until - now, 0))}
end
return redis.error_reply('unknown token bucket operation')
"""

# One registered script per Redis client: redis-py's Script runs EVALSHA and, on NOSCRIPT (a restarted
# or flushed Redis), loads the script again and retries.
_scripts: weakref.WeakKeyDictionary[Any, Script] = weakref.WeakKeyDictionary()
_scripts_lock = threading.Lock()


def _script_for(client: redis.Redis) -> Script:
    with _scripts_lock:
        script = _scripts.get(client)
        if script is None:
            script = client.register_script(_LUA)
            _scripts[client] = script
        return script


def _positive(value: float, what: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{what} must be a positive number, not {value!r}")
    return number


class RedisTokenBucket:
    """A budget of calls (or cost points) for one external system, shared through Redis.

    Implements `connectors.ratelimit.RateLimiter`. `capacity` tokens at most; `per_second` tokens come
    back each second of Redis server time.
    """

    def __init__(
        self,
        redis: redis.Redis,
        *,
        name: str,
        capacity: float,
        per_second: float,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        if not name:
            raise ValueError("a token bucket needs a name")
        self.name = name
        self.capacity = _positive(capacity, "capacity")
        self.per_second = _positive(per_second, "per_second")
        self.key = f"{key_prefix}{name}"
        self._redis = redis
        self._script = _script_for(redis)
        # The vendor's latest report (`observe`), sent with this process's next acquire or state.
        self._held: tuple[float, str, str] | None = None
        self._held_lock = threading.Lock()

    def _run(self, op: str, *args: str) -> list[Any]:
        reply = self._script(keys=[self.key], args=[op, repr(self.capacity), repr(self.per_second), *args])
        return list(reply)

    def _take_held(self) -> tuple[str, ...]:
        """The feedback held back, as the script's ARGV[6..8] (and forgotten here), or nothing."""
        with self._held_lock:
            held, self._held = self._held, None
        return () if held is None else (repr(held[0]), held[1], held[2])

    def _run_with_held(self, op: str, *args: str) -> list[Any]:
        held = self._take_held()
        try:
            return self._run(op, *args, *held)
        except Exception:
            if held:  # not applied: keep it for the next call (merged with any newer report)
                self._hold(float(held[0]), held[1], held[2])
            raise

    def _hold(self, available: float, capacity: str, per_second: str) -> None:
        with self._held_lock:
            if self._held is not None:
                # Applied one after the other, two reports lower the tokens to the smaller of the
                # two; the newer sizes win.
                older_available, older_capacity, older_per_second = self._held
                available = min(available, older_available)
                capacity = capacity or older_capacity
                per_second = per_second or older_per_second
            self._held = (available, capacity, per_second)

    def acquire(self, cost: float = 1.0) -> None:
        """Take `cost` tokens now, or raise `RateLimited` with the seconds until there are enough.

        A cost above the bucket's capacity can never be granted: `PermanentError`.
        """
        cost = float(cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a non-negative number, not {cost!r}")
        max_debt = self.capacity if may_borrow() else 0.0
        status, value = self._run_with_held("acquire", repr(cost), repr(max_debt))
        granted = int(status)
        if granted == 1:
            note_granted()
            return
        if granted == 0:
            raise RateLimited(f"{self.name} budget spent", system=self.name, retry_after=float(value))
        raise PermanentError(
            f"{self.name} cost {cost:g} exceeds the bucket capacity {float(value):g}", system=self.name
        )

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        """Correct the bucket from the vendor's own report: the vendor is the truth.

        Tokens become min(current, `available`) (a report never raises them: requests we already
        counted may not have reached the vendor yet). `capacity` and `per_second`, when given, replace
        the configured ones until the bucket goes idle and expires. For a rolling-window vendor
        (HubSpot) pass sizes from `rolling_window_bucket`, not the raw window limit.
        """
        available = float(available)
        if math.isnan(available):
            raise ValueError("available must be a number")
        new_capacity = repr(_positive(capacity, "capacity")) if capacity is not None else ""
        new_per_second = repr(_positive(per_second, "per_second")) if per_second is not None else ""
        # No round trip of its own: held back and applied first by this process's next acquire (the
        # only thing it can change is what that acquire, or another worker's after it, is granted).
        self._hold(available, new_capacity, new_per_second)

    def pause(self, seconds: float) -> None:
        """The vendor said wait (429 with Retry-After): nobody acquires for `seconds` of server time.

        The bucket is also emptied (the vendor just told us it is out), so after the pause only what
        refilled during it flows. A shorter pause never cuts a longer one already running.
        """
        seconds = float(seconds)
        if math.isnan(seconds):
            raise ValueError("seconds must be a number")
        self._run("pause", repr(max(seconds, 0.0)))

    def state(self) -> dict[str, float]:
        """Tokens now, capacity, per_second and seconds of pause left (`paused_for`); read only."""
        tokens, capacity, per_second, paused_for = self._run_with_held("state", "", "")
        return {
            "tokens": float(tokens),
            "capacity": float(capacity),
            "per_second": float(per_second),
            "paused_for": float(paused_for),
        }


def rolling_window_bucket(
    limit: float, window_seconds: float, *, slack_seconds: float = 1.0
) -> tuple[float, float]:
    """(capacity, per_second) of a bucket that never lets more than `limit` through in any window.

    A bucket lets through at most capacity + per_second * T in any span of T seconds. Sized the
    obvious way (capacity = limit, per_second = limit / window) that is 2 x limit per window: a full
    bucket emptied at once, then refilled completely within the same window, so we would cause 429s
    on our own. Hence capacity + per_second * (window + slack) <= limit, where `slack_seconds` covers
    requests that we counted over a longer span reaching the vendor over a shorter one (network and
    queueing jitter). Within that bound the sustained rate is (limit - capacity) / (window + slack),
    so the burst is kept small: a tenth of the limit (one second's worth), at least one request. A step
    under way may borrow one more capacity's worth (`connectors.ratelimit.one_step`), so the bound is
    2 x capacity + per_second x (window + slack) <= limit.
    HubSpot 100/10 s gives a burst of 10 and 80/11 ≈ 7.3 per second: at most 100 in any 11 s and about
    73 per 10 s sustained.
    """
    limit = _positive(limit, "limit")
    window_seconds = _positive(window_seconds, "window_seconds")
    if limit < 4:
        raise ValueError("a token bucket cannot keep a rolling limit below 4 requests per window")
    capacity = min(max(1.0, limit / 10), limit / 4)
    per_second = (limit - 2 * capacity) / (window_seconds + max(slack_seconds, 0.0))
    return capacity, per_second


def bucket_size(budget: Budget, settings: Settings, *, writes: bool = False) -> tuple[float, float]:
    """(capacity, per_second) of a system's bucket (its write bucket if `writes`), from the settings."""
    setting = budget.write_limit_setting if writes else budget.limit_setting
    if setting is None:
        raise ValueError("this budget has no separate write bucket")
    limit = float(getattr(settings, setting))
    if budget.kind == "cost_bucket":
        # Shopify's own limit is a leaky bucket of cost points: ours is the same bucket.
        assert budget.rate_setting is not None
        return limit, float(getattr(settings, budget.rate_setting))
    if budget.kind == "rolling_window":
        # A vendor counting requests in a rolling window: see `rolling_window_bucket` for why the
        # bucket is not simply N deep refilling at N per window. Below 4 per window a bucket cannot
        # keep the bound, so it is one deep at the plain rate.
        if limit < 4:
            return 1.0, limit / budget.window_seconds
        return rolling_window_bucket(limit, budget.window_seconds, slack_seconds=budget.slack_seconds)
    raise ValueError(f"unknown budget kind {budget.kind!r}")


def limiters_from_settings(
    settings: Settings, redis: redis.Redis
) -> dict[str, RedisTokenBucket | RedisRollingWindow]:
    """The shared budget of each registered system that has one (its read bucket if it has two)."""
    return {name: buckets["limiter"] for name, buckets in client_limiters(settings, redis).items()}


def client_limiters(
    settings: Settings, redis: redis.Redis
) -> dict[str, dict[str, RedisTokenBucket | RedisRollingWindow]]:
    """Per system with a budget, the keyword arguments its client's `from_settings` takes.

    `limiter` is the bucket every call takes from; a system that counts writes apart (Smaregi) also
    gets `write_limiter`, and its `limiter` then counts reads. The read bucket keeps the system's
    name (the key of the old single bucket); the write bucket is `<name>:write`.
    """
    limiters: dict[str, dict[str, RedisTokenBucket | RedisRollingWindow]] = {}
    for system in SYSTEMS:
        budget = system.budget
        if budget is None:
            continue
        buckets = {"limiter": _limiter(redis, system.name, budget, settings)}
        if budget.write_limit_setting is not None:
            buckets["write_limiter"] = _limiter(redis, f"{system.name}:write", budget, settings, writes=True)
        limiters[system.name] = buckets
    return limiters


def _limiter(
    redis: redis.Redis, name: str, budget: Budget, settings: Settings, *, writes: bool = False
) -> RedisTokenBucket | RedisRollingWindow:
    """A rolling-window vendor's exact window log (a bucket would leave a quarter of it unused,
    see `connectors.rollingwindow`), else the token bucket."""
    if budget.kind == "rolling_window":
        setting = budget.write_limit_setting if writes else budget.limit_setting
        limit = float(getattr(settings, setting or budget.limit_setting))
        if limit >= 1:
            # The longest an unanswered call may still reach the vendor after its grant: its connect
            # and send timeouts, and a second for the worker's own delay before it sends.
            flight = settings.http_connect_timeout_seconds + settings.http_read_timeout_seconds + 1.0
            return RedisRollingWindow(
                redis, name=name, limit=limit, window_seconds=budget.window_seconds, flight_seconds=flight
            )
    capacity, per_second = bucket_size(budget, settings, writes=writes)
    return RedisTokenBucket(redis, name=name, capacity=capacity, per_second=per_second)
