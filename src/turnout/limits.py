"""Client-side rate limits per target or provider (``[limits]``), in this process or shared on Redis.

```toml
[limits."openai:gpt-4o-mini"]   # one target; [limits.openai] covers every model of a provider
requests_per_minute = 500
tokens_per_minute = 200000       # prompt (estimated from its UTF-8 size) + max_tokens, corrected by usage
max_concurrent = 32
```

Before each request (every attempt, every embedding batch) the engine asks the target's limiter
for room. Without room it waits, up to the route's deadline (without one, ``max_wait``), then
raises `LocalRateLimitError` (nothing sent; never counted by the breaker or the retry budget),
or the route falls back. With ``[state]`` the counts live on Redis (one Lua script per request:
sliding-window logs, https://redis.io/docs/latest/develop/interact/programmability/eval-intro/),
so the limits hold across every process; when Redis fails, each process counts on its own.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from ._checks import NoBoolNumbers

if TYPE_CHECKING:
    from .engine.steps import Store
    from .shared import SharedState

__all__ = ["Limiter", "Permit", "RateLimit"]

#: Seconds between looks at a full ``max_concurrent`` (a request ends at no predictable time).
CONCURRENCY_POLL = 0.02

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w, rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, id, hold = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - w)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - w)) do redis.call('HDEL', KEYS[3], m) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - w)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local wait = 0
if rpm > 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + w - now, 1)
end
if tpm > 0 then
  local used = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[3])) do used = used + tonumber(v) end
  if used > 0 and used + tokens > tpm then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(first[2]) + w - now, 1)
  end
end
if maxc > 0 and redis.call('ZCARD', KEYS[4]) >= maxc then wait = math.max(wait, ARGV[8]) end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, id)
if tpm > 0 then
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('HSET', KEYS[3], id, tokens)
end
if maxc > 0 then redis.call('ZADD', KEYS[4], now + hold, id) end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], w + hold) end
return 0
"""

_DONE = """
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) >= 0 and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""


class RateLimit(NoBoolNumbers):
    """``[limits."provider:model"]`` or ``[limits.provider]``: how fast requests may start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1, description="requests started per window")
    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="prompt + max_tokens per window (corrected by the reply's usage)"
    )
    max_concurrent: int | None = Field(default=None, ge=1, description="requests in flight at once")
    window: float = Field(default=60.0, gt=0, description="seconds the per-minute limits count over (60)")
    max_wait: float = Field(
        default=30.0, ge=0, description="longest wait for room when the route has no deadline (seconds)"
    )


class Permit:
    """Room for one request; `done` once it ends (with its actual tokens, when known)."""

    def __init__(self, release: Any) -> None:
        self._release = release
        self._open = True

    def done(self, tokens: int | None) -> None:
        """The request ended: free its concurrency slot and correct its tokens (None: keep the estimate)."""
        if self._open:
            self._open = False
            self._release(tokens)


class Limiter:
    """One target's (or provider's) limit: sliding-window logs in this process, or on Redis."""

    def __init__(self, name: str, limit: RateLimit, shared: SharedState | None) -> None:
        """Create the limiter of ``name`` (the ``[limits]`` key) with ``limit``."""
        self.name, self.limit, self.shared = name, limit, shared
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._tokens: deque[list[float]] = deque()  # [start, tokens] per request in the window
        self._token_sum = 0.0
        self._in_flight = 0
        self._paused_until = 0.0
        if shared is not None:
            base = f"{shared.base}:limit:{name}"
            self._keys = [f"{base}:req", f"{base}:tok", f"{base}:tokn", f"{base}:run"]
            self._admit = shared.script(_ADMIT)
            self._done = shared.script(_DONE)

    def try_local(self, now: float, tokens: int) -> tuple[Permit | None, float]:
        """Take room in this process now, or say how many seconds until there may be some."""
        limit, window = self.limit, self.limit.window
        with self._lock:
            while self._starts and self._starts[0] <= now - window:
                self._starts.popleft()
            while self._tokens and self._tokens[0][0] <= now - window:
                self._token_sum -= self._tokens.popleft()[1]
            waits = []
            rpm, tpm, most = limit.requests_per_minute, limit.tokens_per_minute, limit.max_concurrent
            if rpm is not None and len(self._starts) >= rpm:
                waits.append(self._starts[0] + window - now)
            if tpm is not None and self._tokens and self._token_sum + tokens > tpm:
                waits.append(self._tokens[0][0] + window - now)
            if most is not None and self._in_flight >= most:
                waits.append(CONCURRENCY_POLL)
            if waits:
                return None, max(max(waits), 0.001)
            self._starts.append(now)
            entry = [now, float(tokens)]
            if tpm is not None:
                self._tokens.append(entry)
                self._token_sum += tokens
            self._in_flight += 1
        return Permit(lambda actual: self._release_local(entry, actual)), 0.0

    def _release_local(self, entry: list[float], actual: int | None) -> None:
        with self._lock:
            self._in_flight -= 1
            if actual is not None and self.limit.tokens_per_minute is not None and entry in self._tokens:
                self._token_sum += actual - entry[1]
                entry[1] = float(actual)

    def pause(self, now: float, seconds: float) -> None:
        """Start nothing for ``seconds`` (the provider said its limit is used up until then)."""
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)

    def paused_for(self, now: float) -> float:
        """Seconds this process still holds back after `pause` (0 when not paused)."""
        return max(self._paused_until - now, 0.0)

    def step(self, tokens: int, hold: float) -> tuple[Store, Any]:
        """The Redis round trip that takes room (shared limits), and the function reading its answer."""
        from .engine.steps import Store

        assert self.shared is not None
        shared, limit = self.shared, self.limit
        request_id = uuid.uuid4().hex
        args = [
            math.ceil(limit.window * 1000),
            limit.requests_per_minute or 0,
            limit.tokens_per_minute or 0,
            limit.max_concurrent or 0,
            tokens,
            request_id,
            math.ceil(hold * 1000),
            math.ceil(CONCURRENCY_POLL * 1000),
        ]

        def run() -> Any:
            try:
                return self._admit(keys=self._keys, args=args)
            except shared.errors as exc:
                return exc

        async def arun() -> Any:
            try:
                return await shared.ascript(_ADMIT)(keys=self._keys, args=args)
            except shared.errors as exc:
                return exc

        def release(actual: int | None) -> None:
            shared.later(lambda: self._done(keys=self._keys[2:], args=[request_id, -1 if actual is None else actual]))

        def read(raw: Any, now: float) -> tuple[Permit | None, float]:
            if isinstance(raw, BaseException):  # Redis failed: this process counts on its own
                shared.note_down(raw)
                return self.try_local(now, tokens)
            if int(raw) > 0:
                return None, int(raw) / 1000
            return Permit(release), 0.0

        return Store(run, arun), read
