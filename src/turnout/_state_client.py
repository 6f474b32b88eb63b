"""`SharedState`: one client's connection to Redis for ``[state]`` (see `turnout.shared`).

Loaded only by a client whose config has ``[state] url``.
"""

from __future__ import annotations

import logging
import math
import uuid
import weakref
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import _state_scripts as scripts
from ._state_budgets import NANO, SharedBudgets, keys_of
from ._state_writes import Background
from .errors import ConfigError
from .shared import HOLD_MARGIN_S, StateConfig

if TYPE_CHECKING:
    import asyncio

    from .cost.budgets import Reservation
    from .engine.steps import Store

__all__ = ["SharedState"]

logger = logging.getLogger("turnout")


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
        self.base = scripts.key_base(config.prefix)
        """The start of every key: ``{prefix}``, so all of them hash to one Redis Cluster slot."""
        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        try:
            self._redis = redis.Redis.from_url(
                config.url, socket_timeout=config.timeout, socket_connect_timeout=config.timeout
            )
        except ValueError as exc:
            raise ConfigError(f"[state] url: {exc} (expected e.g. redis://127.0.0.1:6379/0)") from None
        self.where = _redacted(config.url)
        self._reserve = self._redis.register_script(scripts.RESERVE)
        self._settle = self._redis.register_script(scripts.SETTLE)
        self._status = self._redis.register_script(scripts.STATUS)
        self._scripts: dict[str, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._down = False
        self.background = Background(self.errors, self.note_down, self._note_up)
        """The thread that writes after calls, and the commits kept while Redis is down."""

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
            f"{self.base}:{name}" for name, wanted in (("latency", latency), ("retry", retry)) if wanted is not None
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
        nano = 0 if amount is None else math.ceil(amount * NANO)
        hold_ms, lapse_ms = math.ceil(self.hold_for(deadline) * 1000), scripts.LAPSE_MEMORY_S * 1000
        args: list[str | int] = [len(limits), nano, hold_id, hold_ms, lapse_ms]
        args += [int(x.budget.max_usd * NANO) for x in limits]
        args += [ttl for _, ttl in keys]
        return keys_of(keys) + [self.breaker_key(t) for t in targets], args, hold_id

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
        self.background.later(work)

    def commit(self, hold_id: str, work: Callable[[], object]) -> None:
        """Run a budget commit on the background thread; kept and sent again while Redis is down."""
        self.background.commit(hold_id, work)

    def drain(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` s) for the background writes queued so far; the thread then ends."""
        self.background.drain(timeout)

    def settle(self, keys: list[tuple[str, int]], hold_id: str, spent: Decimal) -> bool:
        """Commit ``spent`` against each limit key and drop the hold (one script); False: counted before."""
        nano = math.ceil(spent * NANO)
        return bool(self._settle(keys=keys_of(keys), args=[hold_id, nano, *(ttl for _, ttl in keys)]))

    def observe(self, target: str, seconds: float, weight: float) -> None:
        """Fold a successful attempt's latency into the shared moving average (background thread)."""
        script = self.script(scripts.OBSERVE)
        self.later(lambda: script(keys=[f"{self.base}:latency"], args=[target, seconds, weight]))

    def retry_deposit(self, target: str, ratio: float, burst: float) -> None:
        """Credit one call to ``target``'s shared retry budget (background thread)."""
        script = self.script(scripts.RETRY_DEPOSIT)
        self.later(lambda: script(keys=[f"{self.base}:retry"], args=[target, ratio, burst]))

    def retry_spend(self, target: str, burst: float) -> None:
        """Take one retry from ``target``'s shared retry budget (background thread)."""
        script = self.script(scripts.RETRY_SPEND)
        self.later(lambda: script(keys=[f"{self.base}:retry"], args=[target, burst]))

    def opened(self, target: str, reason: str | None, cooldown: float) -> None:
        """Tell the other workers that ``target``'s circuit opened, for ``cooldown`` seconds."""
        ms = max(math.ceil(cooldown * 1000), 1)

        def write() -> None:
            with self._redis.pipeline(transaction=True) as pipe:  # one MULTI: both keys are in one slot
                pipe.set(self.breaker_key(target), reason or "open", px=ms)
                pipe.hset(f"{self.base}:breakers", target, 1)  # the targets `open_circuits` looks at
                pipe.execute()

        self.later(write)

    def status(self, keys: list[str]) -> list[tuple[int, int]]:
        """Spent and held nano-dollars of each budget key (expired holds left out)."""
        rows = self._status(keys=[k for key in keys for k in scripts.budget_keys(key)[:3]], args=[])
        return [(int(s), int(h)) for s, h in rows]

    def breaker_key(self, target: str) -> str:
        """The key that says ``target``'s circuit is open (its value the reason, its TTL the cooldown left)."""
        return f"{self.base}:breaker:{target}"

    def open_circuits(self) -> dict[str, tuple[str, float]]:
        """Every circuit some worker opened that is still open: target -> (reason, seconds left).

        Raises:
            redis.RedisError: Redis cannot be reached (also ``OSError``; see ``errors``).
        """
        registry = f"{self.base}:breakers"
        targets = [t.decode() if isinstance(t, bytes) else t for t in self._redis.hkeys(registry)]
        if not targets:
            return {}
        with self._redis.pipeline(transaction=False) as pipe:
            for target in targets:
                pipe.get(self.breaker_key(target))
                pipe.pttl(self.breaker_key(target))
            found = pipe.execute()
        out, closed = {}, []
        for target, reason, ms in zip(targets, found[::2], found[1::2], strict=True):
            if reason is not None and int(ms) > 0:
                out[target] = (reason.decode(errors="replace"), int(ms) / 1000)
            else:
                closed.append(target)
        if closed:
            self._redis.hdel(registry, *closed)
        return out

    def note_down(self, exc: BaseException) -> None:
        """Log that Redis failed (once, until it answers again)."""
        if not self._down:
            logger.warning("turnout: shared state at %s failed (%s: %s)", self.where, type(exc).__name__, exc)
        self._down = True

    def _note_up(self) -> None:
        self._down = False

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
        self._reserve = self._redis.register_script(scripts.RESERVE)
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
