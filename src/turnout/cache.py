"""The response cache: a repeated request answered from a store instead of the network.

``[cache]`` in turnout.toml picks a backend (``"memory"``, ``"sqlite"`` with ``path``, ``"redis"``
with ``url``) and a ``ttl``. The key is a SHA-256 of the canonical request: the route (alias or
target), each target's provider type, base URL (without credentials) and model id, the messages,
every generation parameter, tools and response format. API keys, headers and timeouts are never
part of it. Only complete, successful replies are stored (the engine stores what a call returns,
never an error, an interrupted stream or a reply that failed ``response_model``). A hit comes
back with ``reply.from_cache`` True and a zero cost; the ledger records it with the cost it saved.

A store that fails (a Redis server down, a locked SQLite file) is logged and treated as a miss:
the cache never fails a call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._secrets import mask_url, split_userinfo
from .config import CacheConfig
from .engine.hooks import CallHook
from .types import Attempt, ChatChunk, ChatResponse, Cost, ToolCallDelta

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from .engine import Call, Target
    from .provider import Provider
    from .types import ChatRequest

__all__ = [
    "CacheBackend",
    "CacheConfig",
    "CacheHook",
    "CacheSlot",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "SQLiteCache",
    "open_backend",
    "replay_chunks",
    "request_key",
]

logger = logging.getLogger("turnout")

_KEY_VERSION = "turnout-cache-1"  # change it when the key's recipe changes: old entries then miss


# -- backends -----------------------------------------------------------------------------------


class CacheBackend(Protocol):
    """Bytes by key, with an optional time to live; sync and async."""

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None."""

    async def aget(self, key: str) -> bytes | None:
        """Async twin of `get`."""

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: no expiry)."""

    async def aput(self, key: str, value: bytes, ttl: float | None) -> None:
        """Async twin of `put`."""

    def close(self) -> None:
        """Release connections."""

    async def aclose(self) -> None:
        """Async twin of `close`."""


class MemoryCache:
    """A dict in this process (thread-safe), the oldest entry dropped beyond ``max_entries``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        """Keep at most ``max_entries`` replies."""
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The value under ``key`` unless it expired."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, expires = found
            if expires is not None and expires <= time.monotonic():
                del self._entries[key]
                return None
            return value

    async def aget(self, key: str) -> bytes | None:
        """`get` (no I/O)."""
        return self.get(key)

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; drop the oldest entries beyond the size."""
        with self._lock:
            self._entries[key] = (value, None if ttl is None else time.monotonic() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    async def aput(self, key: str, value: bytes, ttl: float | None) -> None:
        """`put` (no I/O)."""
        self.put(key, value, ttl)

    def close(self) -> None:
        """Nothing to release."""

    async def aclose(self) -> None:
        """Nothing to release."""


class SQLiteCache:
    """A table in a SQLite file, shared by every process that opens it (WAL mode).

    The async methods run the same statements directly: a local SQLite read or write takes
    microseconds, less than handing it to a thread.
    """

    def __init__(self, path: str | Path) -> None:
        """Open (and create) the cache file at ``path``."""
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)")
            self._db = db
        return self._db

    def get(self, key: str) -> bytes | None:
        """The value under ``key`` unless it expired."""
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT value FROM replies WHERE key = ? AND (expires IS NULL OR expires > ?)", (key, time.time())
                )
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    async def aget(self, key: str) -> bytes | None:
        """`get`, on the event loop (a local read)."""
        return self.get(key)

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` (replacing an older one)."""
        expires = None if ttl is None else time.time() + ttl
        with self._lock:
            self._connect().execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, value, expires))

    async def aput(self, key: str, value: bytes, ttl: float | None) -> None:
        """`put`, on the event loop (a local write)."""
        self.put(key, value, ttl)

    def close(self) -> None:
        """Close the file (a later call opens it again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def aclose(self) -> None:
        """`close`."""
        self.close()


class RedisCache:
    """Keys in a Redis server (``pip install 'turnout[redis]'``), shared by every client that uses it.

    Entries expire on the server (``SET key value PX ttl``, https://redis.io/docs/latest/commands/set/).
    The async methods use ``redis.asyncio``, one connection pool per event loop.
    """

    def __init__(self, url: str, prefix: str = "turnout:cache:") -> None:
        """Use the server at ``url`` (``redis://[:password@]host:port/db``).

        Raises:
            ConfigError: the ``redis`` package is not installed.
        """
        try:
            import redis
            import redis.asyncio
        except ImportError:  # pragma: no cover - import guard
            from .errors import ConfigError

            raise ConfigError(
                "[cache] backend = \"redis\" needs the redis package: pip install 'turnout[redis]'"
            ) from None
        self.url, self.prefix = url, prefix
        self._sync = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._new_async = redis.asyncio.Redis.from_url

    def __repr__(self) -> str:
        return f"RedisCache(url={mask_url(self.url)!r})"

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()  # a pool belongs to one loop (a closed loop's id may be reused)
        found = self._async.get(loop)
        if found is None:
            found = self._async[loop] = self._new_async(self.url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return found

    def get(self, key: str) -> bytes | None:
        """``GET``."""
        return cast("bytes | None", self._sync.get(self.prefix + key))

    async def aget(self, key: str) -> bytes | None:
        """``GET``, awaited."""
        return cast("bytes | None", await self._aclient().get(self.prefix + key))

    def put(self, key: str, value: bytes, ttl: float | None) -> None:
        """``SET`` (with ``PX`` when there is a ttl)."""
        self._sync.set(self.prefix + key, value, px=None if ttl is None else max(1, int(ttl * 1000)))

    async def aput(self, key: str, value: bytes, ttl: float | None) -> None:
        """``SET``, awaited."""
        await self._aclient().set(self.prefix + key, value, px=None if ttl is None else max(1, int(ttl * 1000)))

    def close(self) -> None:
        """Close the sync pool."""
        self._sync.close()

    async def aclose(self) -> None:
        """Close this loop's async pool, and the sync one."""
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found.aclose()
        self._sync.close()


def open_backend(config: CacheConfig) -> CacheBackend:
    """The backend ``config`` names.

    Raises:
        ConfigError: the backend needs a package that is not installed.
    """
    if config.backend == "sqlite":
        assert config.path is not None  # checked by CacheConfig
        return SQLiteCache(config.path)
    if config.backend == "redis":
        assert config.url is not None
        return RedisCache(config.url)
    return MemoryCache(config.max_entries)


# -- keys and entries ---------------------------------------------------------------------------

_NOT_IN_KEY = frozenset({"timeout", "extra_headers"})  # how long to wait and which headers: not what is asked


def request_key(route: str, targets: Sequence[Target], request: ChatRequest) -> str:
    """The cache key of ``request`` on ``route``: a SHA-256 of its canonical JSON.

    It holds the route, each target's provider type, base URL (credentials removed) and model,
    and every field of the request except ``timeout`` and ``extra_headers``. No API key.
    """
    body = request.model_dump(mode="json", exclude=set(_NOT_IN_KEY), exclude_none=True)
    where = [
        [p.config.type, None if p.config.base_url is None else split_userinfo(p.config.base_url)[0], m]
        for p, m in targets
    ]
    canonical = json.dumps([_KEY_VERSION, route, where, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """A backend, its ttl, and the (de)serialisation of replies; failures are logged misses."""

    def __init__(self, backend: CacheBackend, ttl: float | None = None) -> None:
        """Keep replies in ``backend`` for ``ttl`` seconds."""
        self.backend, self.ttl = backend, ttl

    def _load(self, raw: bytes | None) -> ChatResponse | None:
        if raw is None:
            return None
        try:
            return ChatResponse.model_validate_json(raw)
        except ValueError:
            logger.warning("turnout: a cache entry could not be read; treated as a miss")
            return None

    @staticmethod
    def _dump(reply: ChatResponse) -> bytes:
        return reply.model_copy(update={"parsed": None, "from_cache": False}).model_dump_json().encode()

    def get(self, key: str) -> ChatResponse | None:
        """The stored reply, or None (a miss, or a backend failure)."""
        try:
            return self._load(self.backend.get(key))
        except Exception as exc:
            logger.warning("turnout: the response cache failed (%s); treated as a miss", type(exc).__name__)
            return None

    async def aget(self, key: str) -> ChatResponse | None:
        """Async twin of `get`."""
        try:
            return self._load(await self.backend.aget(key))
        except Exception as exc:
            logger.warning("turnout: the response cache failed (%s); treated as a miss", type(exc).__name__)
            return None

    def put(self, key: str, reply: ChatResponse) -> None:
        """Store ``reply`` (a failure is logged)."""
        try:
            self.backend.put(key, self._dump(reply), self.ttl)
        except Exception as exc:
            logger.warning("turnout: the response cache could not store a reply (%s)", type(exc).__name__)

    async def aput(self, key: str, reply: ChatResponse) -> None:
        """Async twin of `put`."""
        try:
            await self.backend.aput(key, self._dump(reply), self.ttl)
        except Exception as exc:
            logger.warning("turnout: the response cache could not store a reply (%s)", type(exc).__name__)


class CacheSlot:
    """One call's place in the cache: the cache and the call's key (what the engine's cache steps use)."""

    __slots__ = ("cache", "key")

    def __init__(self, cache: ResponseCache, key: str) -> None:
        self.cache, self.key = cache, key

    def get(self) -> ChatResponse | None:
        """The stored reply, or None."""
        return self.cache.get(self.key)

    async def aget(self) -> ChatResponse | None:
        """Async twin of `get`."""
        return await self.cache.aget(self.key)

    def put(self, reply: ChatResponse) -> None:
        """Store the call's reply."""
        self.cache.put(self.key, reply)

    async def aput(self, reply: ChatResponse) -> None:
        """Async twin of `put`."""
        await self.cache.aput(self.key, reply)

    def served(self, stored: ChatResponse) -> tuple[ChatResponse, Cost | None]:
        """The reply a hit returns (``from_cache``, cost zero, one ``"cached"`` attempt) and the cost saved."""
        saved = stored.cost
        zero = Cost(input=Decimal(0), output=Decimal(0), total=Decimal(0), source="cache")
        attempt = Attempt(provider=stored.provider, model=stored.model, outcome="cached", latency=0.0)
        return stored.model_copy(update={"from_cache": True, "cost": zero, "attempts": [attempt]}), saved

    def replayer(self, stored: ChatResponse) -> Provider:
        """A stand-in provider whose stream is ``stored`` again, chunk by chunk."""
        return cast("Provider", _Replay(stored))


class _Replay:
    """What the engine's stream step reads for a cache hit: the stored reply as chunks (no I/O)."""

    def __init__(self, reply: ChatResponse) -> None:
        self.name, self._reply = reply.provider, reply

    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:  # noqa: ARG002 - a provider's signature
        yield from replay_chunks(self._reply)

    async def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:  # noqa: ARG002
        for chunk in replay_chunks(self._reply):
            yield chunk


class CacheHook(CallHook):
    """Plugs the cache into a chat or stream call: its slot, and how a stored reply is served."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    def cache_slot(self, call: Call[Any, Any]) -> CacheSlot:
        """The call's slot: the cache and the key of its request on its route."""
        return CacheSlot(self.cache, request_key(call.route, call.targets, call.request))


def replay_chunks(reply: ChatResponse, piece: int = 16) -> Iterator[ChatChunk]:
    """A stored reply as stream chunks: its text in pieces, tool calls whole, then finish and usage."""
    for choice in reply.choices:
        text = choice.text
        for start in range(0, len(text), piece):
            yield ChatChunk(text=text[start : start + piece], index=choice.index, model=reply.model)
        if choice.tool_calls:
            deltas = [
                ToolCallDelta(index=n, id=c.id, name=c.name, arguments=c.arguments, type=c.type)
                for n, c in enumerate(choice.tool_calls)
            ]
            yield ChatChunk(index=choice.index, tool_calls=deltas, model=reply.model)
        yield ChatChunk(index=choice.index, finish_reason=choice.finish_reason, model=reply.model)
    yield ChatChunk(usage=reply.usage, model=reply.model)
