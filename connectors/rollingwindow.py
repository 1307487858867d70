"""A vendor's rolling-window limit (at most `limit` requests in any `window` seconds), kept in Redis.

HubSpot (100 or 190 per rolling ten seconds) and Smaregi (reads and writes per second) count requests
in a window. A token bucket can only approximate that: to never let more than `limit` through in any
window it must assume the worst burst, so it sustains (limit - 2 x burst) / (window + slack), 0.73 of
HubSpot's rate and 0.42 of Smaregi's 4 writes a second (`benchmarks/RESULTS.md`). This keeps the log
itself instead: one sorted-set member per granted call, scored with the time it stops counting, so a
call is granted exactly when the window has room.

When does a call stop counting at the vendor? The vendor counts it when it arrives, somewhere between
our grant and its answer, and forgets it `window` seconds later. So an answered call is kept until its
answer + `window` (an upper bound, whatever the network's jitter), and a call whose answer has not been
reported yet until its grant + `flight` (the longest an HTTP call may take: connect + read timeout) +
`window`. With every call kept at least until the vendor forgets it, the vendor never sees more than
`limit` in any window: if it did, the last call granted among them would have found all the others
still in our log. The answer is reported by the vendor's answer policy through `observe` (every answer
goes through it, see `connectors.http.HttpClient.request`), and sent with this process's next acquire,
so it costs no round trip of its own. A call that never got an answer (a timeout) keeps its longer
bound: safe, only slower.

A step already under way (`connectors.ratelimit.one_step`) may use the whole window; a first call
leaves `reserve` places (a twentieth of the limit) for them, so a step that needs two calls does not
lose its first one's work to other steps' first calls. Below 20 a window there is no reserve: a place
kept free would cost a quarter of a 4-a-second limit.

A vendor that reports its limit on every answer (HubSpot's X-HubSpot-RateLimit-Max, for the window
of X-HubSpot-RateLimit-Interval-Milliseconds) passes it to `observe`: it replaces the configured one
for every worker until the window goes idle (a Professional portal's 190 where 100 is configured).

Keys (no personal data): `<key>` the sorted set, `<key>:paused` while the vendor said wait (429),
`<key>:limit` the limit the vendor reported. All expire once idle. Clock: the Redis server's `TIME`;
an answer's time is the grant's server time plus the caller's own monotonic time since it asked, so
clocks of different machines never mix.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from connectors.errors import PermanentError, RateLimited
from connectors.ratelimit import may_borrow, note_granted

if TYPE_CHECKING:
    import redis

DEFAULT_KEY_PREFIX = "membersync:ratelimit:"

# KEYS[1] the log, KEYS[2] the pause marker, KEYS[3] the reported limit. ARGV: op, limit, window,
# flight, then per op:
#   acquire  count, reserve to leave ("" a twentieth of the limit), member, the limit the vendor
#            reported or "", then (member, answered at) pairs to settle first
#   pause    seconds        state  (nothing)
# Replies are strings (Redis would truncate Lua numbers to integers):
#   acquire {"1", server time of the grant} | {"0", seconds to wait} | {"-1", limit} (can never fit)
#   state   {places left, limit, seconds still paused}; pause {"1"}
_LUA = """
local log, paused, reported, op = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local window, flight = tonumber(ARGV[3]), tonumber(ARGV[4])
local idle_ms = math.ceil((flight + window) * 1000) + 1000
local function fmt(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

if op == 'pause' then
  local ms = math.ceil(tonumber(ARGV[5]) * 1000)
  if ms > 0 and redis.call('PTTL', paused) < ms then redis.call('SET', paused, '1', 'PX', ms) end
  return {'1'}
end

if op == 'acquire' and tonumber(ARGV[8]) then redis.call('SET', reported, ARGV[8], 'PX', idle_ms) end
local limit = tonumber(redis.call('GET', reported)) or tonumber(ARGV[2])

-- Answered calls: kept until their answer + window, no longer (never longer than they were).
for i = 9, #ARGV, 2 do
  local score = tonumber(redis.call('ZSCORE', log, ARGV[i]))
  local settled = tonumber(ARGV[i + 1]) + window
  if score and settled < score then redis.call('ZADD', log, fmt(settled), ARGV[i]) end
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt(now))
local count = redis.call('ZCARD', log)
local paused_for = math.max(redis.call('PTTL', paused), 0) / 1000

if op == 'state' then
  return {fmt(limit - count), fmt(limit), fmt(paused_for)}
end
local n, member = tonumber(ARGV[5]), ARGV[7]
if n > limit then return {'-1', fmt(limit)} end
local places = limit - (tonumber(ARGV[6]) or math.floor(limit / 20))
local wait = paused_for
if count + n > places then
  -- The place frees when the (count + n - places)-th earliest call stops counting; one still under
  -- way may be answered any moment, so then look again after a place's share of the window.
  local nth = redis.call('ZRANGE', log, count + n - places - 1, count + n - places - 1, 'WITHSCORES')
  local free_in = window / limit
  if nth[2] and tonumber(nth[2]) - now <= window then free_in = tonumber(nth[2]) - now end
  wait = math.max(wait, free_in, 0.001)
end
if wait > 0 then return {'0', fmt(wait)} end
for i = 1, n do redis.call('ZADD', log, fmt(now + flight + window), member .. ':' .. i) end
redis.call('PEXPIRE', log, idle_ms)
return {'1', fmt(now)}
"""


class RedisRollingWindow:
    """At most `limit` calls in any `window_seconds`, shared through Redis (see the module docstring).

    Implements `connectors.ratelimit.RateLimiter`; `state()` reads like a token bucket's (places left
    as `tokens`, `limit` as `capacity`) for the ops page and metrics.
    """

    def __init__(
        self,
        redis: redis.Redis,
        *,
        name: str,
        limit: float,
        window_seconds: float,
        flight_seconds: float,
        reserve: int | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        if not name:
            raise ValueError("a rolling window needs a name")
        self.name = name
        self.limit = int(limit)
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        self.window_seconds = float(window_seconds)
        self.flight_seconds = float(flight_seconds)
        if not (self.window_seconds > 0 and self.flight_seconds >= 0):
            raise ValueError("window_seconds must be positive and flight_seconds not negative")
        # None: a twentieth of the limit in force (the configured or the reported one).
        self.reserve = reserve
        self.key = f"{key_prefix}{name}:window"
        self._script = redis.register_script(_LUA)
        # This thread's call under way: (member, count, server time granted, monotonic time asked).
        self._local = threading.local()
        # Answers seen, as (member, server time answered), and the limit the vendor last reported,
        # sent with this process's next acquire.
        self._answered: list[tuple[str, float]] = []
        self._reported: int | None = None
        self._answered_lock = threading.Lock()

    def _run(self, op: str, *args: str) -> list[Any]:
        sizes = (repr(float(self.limit)), repr(self.window_seconds), repr(self.flight_seconds))
        keys = [self.key, f"{self.key}:paused", f"{self.key}:limit"]
        reply = self._script(keys=keys, args=[op, *sizes, *args])
        return [value.decode() if isinstance(value, bytes) else value for value in reply]

    def acquire(self, cost: float = 1.0) -> None:
        """One place in the window per unit of `cost` now, or `RateLimited` with the wait."""
        cost = float(cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a non-negative number, not {cost!r}")
        count = math.ceil(cost)
        if count == 0:
            return
        reserve = "0" if may_borrow() else "" if self.reserve is None else str(self.reserve)
        with self._answered_lock:
            answered, self._answered = self._answered, []
            reported, self._reported = self._reported, None
        member = uuid.uuid4().hex
        asked = time.monotonic()
        settle = [str(value) for pair in answered for value in (pair[0], repr(pair[1]))]
        try:
            status, value = self._run("acquire", str(count), reserve, member, str(reported or ""), *settle)
        except Exception:
            with self._answered_lock:  # not applied: the next acquire sends them
                self._answered[:0] = answered
                self._reported = self._reported or reported
            raise
        if status == "1":
            self._local.unanswered = (member, count, float(value), asked)
            note_granted()
            return
        if status == "0":
            raise RateLimited(f"{self.name} window full", system=self.name, retry_after=float(value))
        raise PermanentError(
            f"{self.name} cost {cost:g} exceeds the window's limit {float(value):g}", system=self.name
        )

    def observe(
        self, *, available: float, capacity: float | None = None, per_second: float | None = None
    ) -> None:
        """The vendor answered this thread's last call: it stops counting one window from now.

        `capacity` with `per_second` is the vendor's own limit when it reports one: taken when it is
        for this window (capacity / per_second = the window). `available` is not needed: our log is
        at least as full as the vendor's window (a 429 still pauses everyone, see `pause`).
        """
        window = capacity / per_second if capacity is not None and per_second else None
        if capacity is not None and capacity >= 1 and window and math.isclose(window, self.window_seconds):
            with self._answered_lock:
                self._reported = int(capacity)
        unanswered = getattr(self._local, "unanswered", None)
        if unanswered is None:
            return
        self._local.unanswered = None
        member, count, granted, asked = unanswered
        answered = granted + (time.monotonic() - asked)  # an upper bound: `asked` was before the grant
        with self._answered_lock:
            self._answered.extend((f"{member}:{n}", answered) for n in range(1, count + 1))

    def pause(self, seconds: float) -> None:
        """The vendor said wait (429 with Retry-After): nobody acquires for `seconds`."""
        seconds = float(seconds)
        if math.isnan(seconds):
            raise ValueError("seconds must be a number")
        self._run("pause", repr(max(seconds, 0.0)))

    def state(self) -> dict[str, float]:
        """Places left now (`tokens`), the limit (`capacity`), its rate and seconds of pause left."""
        left, limit, paused_for = self._run("state")
        return {
            "tokens": float(left),
            "capacity": float(limit),
            "per_second": float(limit) / self.window_seconds,
            "paused_for": float(paused_for),
        }
