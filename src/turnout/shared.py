"""State shared by every worker on Redis (``[state]``): USD budgets, open circuits, retry budgets, latency.

Without ``[state] url`` a client keeps its budgets and circuit breakers in its own process, as
before. With it, every client pointing at the same Redis and ``prefix`` shares:

- the USD budgets (``[budget]`` and per-alias ``budget``), keyed by their UTC period: a call's
  worst case is reserved by one Lua script that checks and holds it atomically on the server
  (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), and committed or
  released after the call; a hold not settled within ``hold_ttl`` seconds (a worker that died)
  expires and its money comes back;
- open circuits: when a worker's breaker opens a target, the others skip it on their next call
  until its cooldown ends.

Before sending, one round trip (one script) reserves the budget and reads the open circuits of
the call's targets; after it, the commit and circuit updates go to Redis from a background
thread, off the caller's thread and event loop. Every Redis operation times out after
``timeout`` seconds; what happens then is ``[state.on_failure]``.

```toml
[state]
url = "redis://127.0.0.1:6379/0"
prefix = "myapp"
hold_ttl = 600            # longer than your longest call
[state.on_failure]
budgets = "refuse"        # or "local": this process's own budget while Redis is down
```
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import queue
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._checks import NoBoolNumbers
from .cost.budgets import Budget, Budgets, BudgetStatus, Reservation, _Limit
from .errors import BudgetExceededError, ConfigError
from .types import USD, fixed_point

if TYPE_CHECKING:
    import asyncio

    from .engine.steps import Store

__all__ = ["HOLD_MARGIN_S", "OnFailure", "SharedBudgets", "SharedState", "StateConfig"]

logger = logging.getLogger("turnout")

_NANO = Decimal(1_000_000_000)  # amounts are kept on Redis as whole nano-dollars (integers)
_PERIOD_KEY_TTL = {"day": 2 * 86_400, "month": 32 * 86_400}  # a period's keys outlive it a little
_CLOSE_WAIT_S = 5.0
HOLD_MARGIN_S = 5.0
"""How long a budget hold outlives its call's deadline (time to settle it)."""

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local failed, spent_at, held_at = 0, 0, 0
for i = 1, n do
  local k = KEYS[i]
  local dead = redis.call('ZRANGEBYSCORE', k .. ':exp', '-inf', now)
  for _, h in ipairs(dead) do redis.call('HDEL', k .. ':holds', h) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', k .. ':exp', '-inf', now) end
  if failed == 0 then
    local held = 0
    for _, v in ipairs(redis.call('HVALS', k .. ':holds')) do held = held + tonumber(v) end
    local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
    if spent + held + amount > tonumber(ARGV[4 + i]) then failed, spent_at, held_at = i, spent, held end
  end
end
if failed == 0 then
  for i = 1, n do
    local k = KEYS[i]
    redis.call('HSET', k .. ':holds', ARGV[3], ARGV[2])
    redis.call('ZADD', k .. ':exp', now + tonumber(ARGV[4]), ARGV[3])
    local ttl = tonumber(ARGV[4 + n + i])
    if ttl > 0 then
      redis.call('EXPIRE', k, ttl)
      redis.call('EXPIRE', k .. ':holds', ttl)
      redis.call('EXPIRE', k .. ':exp', ttl)
    end
  end
end
local base = 4 + 2 * n
local breakers, m, r = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
local open = {}
for i = n + 1, n + breakers do open[#open + 1] = redis.call('PTTL', KEYS[i]) end
local extra, latency, retry = n + breakers, {}, {}
if m > 0 and breakers > 0 then
  extra = extra + 1
  latency = redis.call('HMGET', KEYS[extra], unpack(ARGV, base + 4, base + 3 + breakers))
end
if r > 0 and breakers > 0 then
  extra = extra + 1
  retry = redis.call('HMGET', KEYS[extra], unpack(ARGV, base + 4, base + 3 + breakers))
end
return {failed, spent_at, held_at, open, latency, retry}
"""

_RETRY_DEPOSIT = """
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], tostring(math.min(tonumber(ARGV[3]), v + tonumber(ARGV[2]))))
return 1
"""

_RETRY_SPEND = """
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], tostring(math.max(v - 1, 0)))
return 1
"""

_OBSERVE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local s = tonumber(ARGV[2])
if old then s = tonumber(old) + tonumber(ARGV[3]) * (s - tonumber(old)) end
redis.call('HSET', KEYS[1], ARGV[1], tostring(s))
return 1
"""

_SETTLE = """
for i = 1, #KEYS do
  local k = KEYS[i]
  redis.call('HDEL', k .. ':holds', ARGV[1])
  redis.call('ZREM', k .. ':exp', ARGV[1])
  if ARGV[2] ~= '0' then redis.call('HINCRBY', k, 'spent', ARGV[2]) end
  local ttl = tonumber(ARGV[2 + i])
  if ttl > 0 then redis.call('EXPIRE', k, ttl) end
end
return 1
"""

_STATUS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local held = 0
  for _, h in ipairs(redis.call('ZRANGEBYSCORE', k .. ':exp', '(' .. now, '+inf')) do
    held = held + tonumber(redis.call('HGET', k .. ':holds', h) or '0')
  end
  out[#out + 1] = {tonumber(redis.call('HGET', k, 'spent') or '0'), held}
end
return out
"""


class OnFailure(BaseModel):
    """What each shared feature does when Redis cannot be reached within ``timeout``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budgets: Literal["refuse", "local"] = Field(
        default="refuse",
        description='"refuse": the call raises BudgetExceededError, nothing sent; "local": this process\'s own budget',
    )
    breakers: Literal["local"] = Field(default="local", description="this process's own circuits (the only choice)")


class StateConfig(NoBoolNumbers):
    """``[state]``: where budgets and circuits are shared between workers (absent: in each process)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, description='Redis or Valkey, e.g. "redis://127.0.0.1:6379/0"')
    prefix: str = Field(default="turnout", min_length=1, description="start of every key: one per application")
    timeout: float = Field(default=0.05, gt=0, le=10, description="seconds each Redis operation may take")
    hold_ttl: float = Field(
        default=600.0, gt=0, description="seconds a budget hold lives unsettled (a dead worker's money comes back)"
    )
    on_failure: OnFailure = Field(default_factory=OnFailure, description="behaviour per feature when Redis fails")


class SharedReservation(Reservation):
    """A hold on Redis; settled once, from the background thread."""

    def __init__(self, owner: SharedBudgets, keys: list[tuple[str, int]], amount: Decimal, hold_id: str) -> None:
        super().__init__(owner, [], amount)
        self._shared, self._keys, self.hold_id = owner, keys, hold_id

    def _settle(self, spent: Decimal) -> None:
        with self._owner.lock:
            if not self._open:
                return
            self._open = False
        self._shared.state.later(lambda: self._shared.state.settle(self._keys, self.hold_id, spent))


class SharedBudgets(Budgets):
    """The client's budgets, held on Redis (this process's own `Budgets` when Redis fails and ``budgets = "local"``)."""

    def __init__(
        self,
        state: SharedState,
        client: Budget | None,
        aliases: Mapping[str, Budget],
        today: Callable[[], date] | None = None,
        tags: Mapping[str, Budget] | None = None,
    ) -> None:
        """Create the limits; ``state`` is the Redis connection they live on."""
        super().__init__(client, aliases, today, tags)
        self.state = state

    def key(self, limit: _Limit) -> tuple[str, int]:
        """A limit's Redis key for its current period, and how long the key lives (0: for ever)."""
        period = "-".join(f"{part:02d}" for part in limit._key()) or "all"
        ttl = _PERIOD_KEY_TTL.get(limit.budget.period or "", 0)
        return f"{self.state.prefix}:budget:{limit.name}:{period}", ttl

    def shared_outcome(
        self, route: str, amount: Decimal, hold_id: str, raw: list[Any], tags: Mapping[str, str] | None
    ) -> SharedReservation:
        """The hold the reserve script granted, or the error for the limit it found short."""
        limits = self.limits(route, tags)
        failed, spent, held = int(raw[0]), int(raw[1]), int(raw[2])
        if failed:
            limit = limits[failed - 1]
            left = USD(max(limit.budget.max_usd - (Decimal(spent) + Decimal(held)) / _NANO, Decimal(0)))
            raise BudgetExceededError(
                f"{limit.name} budget (shared): this call could cost up to ${fixed_point(amount)}, but only "
                f"${left} of ${fixed_point(limit.budget.max_usd)} is left; nothing was sent",
                budget=limit.name,
                needed=amount,
                remaining=left,
            )
        return SharedReservation(self, [self.key(x) for x in limits], amount, hold_id)

    def when_down(self, route: str, amount: Decimal, exc: BaseException, tags: Mapping[str, str] | None) -> Reservation:
        """Redis failed: this process's own budget (``"local"``), or refuse the call."""
        if self.state.config.on_failure.budgets == "local":
            return Budgets.reserve(self, route, amount, tags)
        limit = self.limits(route, tags)[0]
        raise BudgetExceededError(
            f"{limit.name} budget: the shared state at {self.state.where} could not be reached "
            f"({type(exc).__name__}), so the budget cannot be checked; nothing was sent "
            '(set [state.on_failure] budgets = "local" to fall back to this process\'s own budget)',
            budget=limit.name,
            needed=amount,
            remaining=USD(0),
        ) from None

    def status(self) -> list[BudgetStatus]:
        """Every limit's spending in its current period, as Redis has it (this process's own when Redis fails)."""
        limits = [x for x in (self._client, *self._aliases.values(), *self._tagged.values()) if x is not None]
        try:
            rows = self.state.status([self.key(x)[0] for x in limits])
        except self.state.errors as exc:
            logger.warning("turnout: shared budget status unavailable (%s); showing this process's", type(exc).__name__)
            return super().status()
        return [
            BudgetStatus(x.name, USD(x.budget.max_usd), USD(Decimal(s) / _NANO), USD(Decimal(h) / _NANO))
            for x, (s, h) in zip(limits, rows, strict=True)
        ]


class SharedState:
    """One client's connection to Redis: the scripts, and a thread for what happens after a call."""

    def __init__(self, config: StateConfig) -> None:
        """Prepare the connections (nothing connects yet: a client can be built while Redis is down).

        Raises:
            ConfigError: redis-py is not installed, or the URL is not a Redis URL.
        """
        try:
            import redis
            import redis.asyncio
        except ImportError:  # pragma: no cover - import guard
            raise ConfigError("[state] url needs redis-py: pip install 'turnout[redis]'") from None
        assert config.url is not None
        self.config = config
        self.prefix = config.prefix
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        try:
            self._redis = redis.Redis.from_url(
                config.url, socket_timeout=config.timeout, socket_connect_timeout=config.timeout
            )
        except ValueError as exc:
            raise ConfigError(f"[state] url: {exc} (expected e.g. redis://127.0.0.1:6379/0)") from None
        self.where = _redacted(config.url)
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)
        self._status = self._redis.register_script(_STATUS)
        self._scripts: dict[str, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._down = False
        _STATES.add(self)

    # -- before sending: one script ---------------------------------------------------------------

    def before(
        self,
        budgets: SharedBudgets | None,
        route: str,
        amount: Decimal | None,
        targets: list[str],
        tags: Mapping[str, str] | None = None,
        latency: dict[str, float] | None = None,
        deadline: float | None = None,
        retry: Callable[[str, float], None] | None = None,
    ) -> tuple[Store, Callable[[Any], tuple[Reservation | None, dict[str, float]]]]:
        """The round trip before a call sends (hold ``amount`` if a budget applies, read open circuits).

        With ``latency`` (a route balanced by ``least-latency``), the targets' shared latency
        averages are read too, into that dict. Returns the step to perform and the function that
        turns its raw answer into the hold and the open circuits (target -> seconds until it may
        be tried).
        """
        from .engine.steps import Store

        keys, args, hold_id = self._reserve_args(budgets, route, amount, targets, tags, deadline)
        args += [len(targets), int(latency is not None), int(retry is not None), *targets]
        keys += [
            f"{self.prefix}:{name}" for name, wanted in (("latency", latency), ("retry", retry)) if wanted is not None
        ]
        n_limits = int(args[0])

        def read(raw: Any) -> tuple[Reservation | None, dict[str, float]]:
            if isinstance(raw, BaseException):
                self.note_down(raw)
                if budgets is not None and amount is not None and n_limits:
                    return budgets.when_down(route, amount, raw, tags), {}
                return None, {}
            self._down = False
            hold = None
            if budgets is not None and amount is not None and n_limits:
                hold = budgets.shared_outcome(route, amount, hold_id, raw, tags)
            return hold, _read_extras(raw, targets, latency, retry)

        def run() -> Any:
            try:
                return self._reserve(keys=keys, args=args)
            except self.errors as exc:
                return exc

        async def arun() -> Any:
            try:
                return await self._aclient().evalsha_or_eval(keys, args)
            except self.errors as exc:
                return exc

        return Store(run, arun), read

    def _reserve_args(
        self,
        budgets: SharedBudgets | None,
        route: str,
        amount: Decimal | None,
        targets: list[str],
        tags: Mapping[str, str] | None,
        deadline: float | None = None,
    ) -> tuple[list[str], list[str | int], str]:
        limits = [] if budgets is None or amount is None else budgets.limits(route, tags)
        keys = [budgets.key(x) for x in limits] if budgets is not None else []
        hold_id = uuid.uuid4().hex
        nano = 0 if amount is None else math.ceil(amount * _NANO)
        args: list[str | int] = [len(limits), nano, hold_id, math.ceil(self.hold_for(deadline) * 1000)]
        args += [int(x.budget.max_usd * _NANO) for x in limits]
        args += [ttl for _, ttl in keys]
        return [k for k, _ in keys] + [self._breaker_key(t) for t in targets], args, hold_id

    def script(self, lua: str) -> Any:
        """A Lua script registered on the sync connection (called with ``keys=`` and ``args=``)."""
        found = self._scripts.get(lua)
        if found is None:
            found = self._scripts[lua] = self._redis.register_script(lua)
        return found

    def ascript(self, lua: str) -> Any:
        """The same script on this event loop's asyncio connection."""
        return self._aclient().script(lua)

    def hold_for(self, deadline: float | None) -> float:
        """Seconds a budget hold lives: ``hold_ttl``, or less for a call whose route has a ``deadline``.

        A call ends by its deadline, so its hold needs to outlive it only by the settling time
        (`HOLD_MARGIN_S`); a dead worker's money then comes back sooner.
        """
        if deadline is None:
            return self.config.hold_ttl
        return min(self.config.hold_ttl, deadline + HOLD_MARGIN_S)

    def _aclient(self) -> _AsyncScripts:
        import asyncio

        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            found = self._async[loop] = _AsyncScripts(self.config.url or "", self.config.timeout)
        return found

    # -- after a call: the background thread -------------------------------------------------------

    def later(self, work: Callable[[], object]) -> None:
        """Run ``work`` (a Redis write) on the background thread."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="turnout-shared-state", daemon=True)
                self._thread.start()
                _on_worker_exit()
        self._queue.put(work)

    def drain(self, timeout: float = _CLOSE_WAIT_S) -> None:
        """Wait (up to ``timeout`` s) for the background writes queued so far; the thread then ends."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)

    def _after_fork(self) -> None:
        """In a forked child: the parent's queued writes and thread are the parent's, not ours."""
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            try:
                work()
            except self.errors as exc:
                self.note_down(exc)

    def settle(self, keys: list[tuple[str, int]], hold_id: str, spent: Decimal) -> None:
        """Commit ``spent`` against each limit key and drop the hold (one script)."""
        nano = math.ceil(spent * _NANO)
        self._settle(keys=[k for k, _ in keys], args=[hold_id, nano, *(ttl for _, ttl in keys)])

    def observe(self, target: str, seconds: float, weight: float) -> None:
        """Fold a successful attempt's latency into the shared moving average (background thread)."""
        script = self.script(_OBSERVE)
        self.later(lambda: script(keys=[f"{self.prefix}:latency"], args=[target, seconds, weight]))

    def retry_deposit(self, target: str, ratio: float, burst: float) -> None:
        """Credit one call to ``target``'s shared retry budget (background thread)."""
        script = self.script(_RETRY_DEPOSIT)
        self.later(lambda: script(keys=[f"{self.prefix}:retry"], args=[target, ratio, burst]))

    def retry_spend(self, target: str, burst: float) -> None:
        """Take one retry from ``target``'s shared retry budget (background thread)."""
        script = self.script(_RETRY_SPEND)
        self.later(lambda: script(keys=[f"{self.prefix}:retry"], args=[target, burst]))

    def opened(self, target: str, reason: str | None, cooldown: float) -> None:
        """Tell the other workers that ``target``'s circuit opened, for ``cooldown`` seconds."""
        ms = max(math.ceil(cooldown * 1000), 1)
        self.later(lambda: self._redis.set(self._breaker_key(target), reason or "open", px=ms))

    def status(self, keys: list[str]) -> list[tuple[int, int]]:
        """Spent and held nano-dollars of each budget key (expired holds left out)."""
        rows = self._status(keys=keys, args=[])
        return [(int(s), int(h)) for s, h in rows]

    def _breaker_key(self, target: str) -> str:
        return f"{self.prefix}:breaker:{target}"

    def note_down(self, exc: BaseException) -> None:
        """Log that Redis failed (once, until it answers again)."""
        if not self._down:
            logger.warning("turnout: shared state at %s failed (%s: %s)", self.where, type(exc).__name__, exc)
        self._down = True

    def close(self) -> None:
        """Finish the background writes (waiting a few seconds at most) and close the connections."""
        self.drain()
        self._redis.close()

    async def aclose(self) -> None:
        """`close` on a worker thread (it waits for the background writes), and this loop's connections."""
        import asyncio

        await asyncio.to_thread(self.close)
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found.aclose()


class _AsyncScripts:
    """redis.asyncio on one event loop (its connections belong to the loop that made them)."""

    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio

        self._redis = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._reserve = self._redis.register_script(_RESERVE)
        self._scripts: dict[str, Any] = {}

    def script(self, lua: str) -> Any:
        found = self._scripts.get(lua)
        if found is None:
            found = self._scripts[lua] = self._redis.register_script(lua)
        return found

    async def evalsha_or_eval(self, keys: list[str], args: list[str | int]) -> Any:
        return await self._reserve(keys=keys, args=args)

    async def aclose(self) -> None:
        await self._redis.aclose()


_STATES: weakref.WeakSet[SharedState] = weakref.WeakSet()
_finalizer_pid = 0


def _drain_all() -> None:
    """At interpreter or ``multiprocessing`` worker exit: send the commits still queued."""
    for state in list(_STATES):
        state.drain()


def _on_worker_exit() -> None:
    """In a ``multiprocessing`` child (which ends with ``os._exit``, skipping atexit): drain at its exit."""
    global _finalizer_pid
    if _finalizer_pid == os.getpid() or "multiprocessing" not in sys.modules:
        return
    import multiprocessing
    import multiprocessing.util

    if multiprocessing.parent_process() is not None:
        _finalizer_pid = os.getpid()
        multiprocessing.util.Finalize(None, _drain_all, exitpriority=100)


def _after_fork_in_child() -> None:
    global _finalizer_pid
    _finalizer_pid = 0
    for state in list(_STATES):
        state._after_fork()


atexit.register(_drain_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _read_extras(
    raw: Any, targets: list[str], latency: dict[str, float] | None, retry: Callable[[str, float], None] | None
) -> dict[str, float]:
    """The open circuits in the reserve script's answer (target -> seconds left).

    Latency averages go into ``latency``, retry-budget counts to ``retry(target, tokens)``.
    """
    if latency is not None:
        latency.update({t: float(v) for t, v in zip(targets, raw[4], strict=False) if v is not None})
    if retry is not None:
        for target, tokens in zip(targets, raw[5], strict=False):
            if tokens is not None:
                retry(target, float(tokens))
    return {t: ms / 1000 for t, ms in zip(targets, raw[3], strict=True) if int(ms) > 0}


def _redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
