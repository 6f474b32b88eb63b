"""The steps a call's flow asks its driver to perform: the only I/O in a call.

A flow (`turnout.engine.flow`) is a generator that yields these and receives each one's outcome
(or has its error thrown in), in the way httpx's ``Auth.auth_flow`` yields requests to a sync or
an async transport (https://www.python-httpx.org/advanced/authentication/#custom-authentication-schemes).
The sync and async drivers (`turnout.engine.drive`) perform them; nothing else does I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    from ..provider import Provider
    from ..types import ChatRequest, ChatResponse
    from .accumulate import Accumulator
    from .hooks import ReplyStore

__all__ = ["CacheGet", "CachePut", "Count", "Flow", "Gather", "Race", "Send", "Sleep", "Store", "Stream", "Window"]

T = TypeVar("T")
Flow: TypeAlias = Generator["Step", Any, T]
"""A decision flow: yields steps, receives their outcomes, returns the call's result."""


class Send:
    """Send one request to one target; the outcome is the provider's reply (chat or embeddings)."""

    __slots__ = ("embed", "model", "provider", "request")

    def __init__(self, provider: Provider, model: str, request: Any, embed: bool = False) -> None:
        self.provider, self.model, self.request, self.embed = provider, model, request, embed


class Stream:
    """Stream one request from one target, handing each chunk to the caller through ``acc``.

    ``first`` and ``stall`` are the route's ``first_token_timeout`` and ``stall_timeout``
    (seconds, or None): past them the driver raises `StreamTimeoutError`.
    """

    __slots__ = ("acc", "first", "model", "provider", "request", "stall")

    def __init__(
        self,
        provider: Provider,
        model: str,
        request: ChatRequest,
        acc: Accumulator,
        first: float | None = None,
        stall: float | None = None,
    ) -> None:
        self.provider, self.model, self.request, self.acc = provider, model, request, acc
        self.first, self.stall = first, stall


class Sleep:
    """Wait ``seconds`` on the call's clock (between retries, or for a circuit to half-open)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Window:
    """Ask a target for its context window (tokens, or None when unknown)."""

    __slots__ = ("model", "provider")

    def __init__(self, provider: Provider, model: str) -> None:
        self.provider, self.model = provider, model


class Count:
    """Count a request's prompt tokens on a target (None when it cannot)."""

    __slots__ = ("model", "provider", "request")

    def __init__(self, provider: Provider, model: str, request: ChatRequest) -> None:
        self.provider, self.model, self.request = provider, model, request


class Gather:
    """Run several flows (one per batch) and return their results in order; the first error wins.

    The sync driver runs them one after another, the async driver up to ``limit`` at once.
    """

    __slots__ = ("flows", "limit")

    def __init__(self, flows: list[Flow[Any]], limit: int) -> None:
        self.flows, self.limit = flows, limit


class Race:
    """Hedging: run ``first``; if it has no result after ``delay`` seconds, run ``rest`` beside it.

    The outcome is the first result that is not `FELL_THROUGH`; the driver runs each side under
    `turnout.engine.hedge.SIDE`, so the winning side's record also holds the request the other
    side still had out (``cancelled``) and nothing the loser does later. A side that ends with
    `FELL_THROUGH` (its target failed and the route falls back) starts ``rest`` at once. When no
    side has a result, the error of ``rest`` (the route's last word) is raised, or that of
    ``first`` when ``rest`` never started.
    """

    __slots__ = ("delay", "first", "rest")

    def __init__(self, first: Flow[Any], rest: Flow[Any], delay: float) -> None:
        self.first, self.rest, self.delay = first, rest, delay


class CacheGet:
    """Look the call up in its response cache; the outcome is the stored reply or None."""

    __slots__ = ("slot",)

    def __init__(self, slot: ReplyStore) -> None:
        self.slot = slot


class CachePut:
    """Store the call's complete, successful reply in its response cache."""

    __slots__ = ("reply", "slot")

    def __init__(self, slot: ReplyStore, reply: ChatResponse) -> None:
        self.slot, self.reply = slot, reply


class Store:
    """One round trip to the shared state store ([state]): ``run()`` on the sync path, ``arun()`` on the async one.

    Both return the same outcome (what the store said); the flow hands it back to the `Call`.
    """

    __slots__ = ("arun", "run")

    def __init__(self, run: Callable[[], Any], arun: Callable[[], Awaitable[Any]]) -> None:
        self.run, self.arun = run, arun


Step: TypeAlias = Send | Stream | Sleep | Window | Count | Gather | Race | CacheGet | CachePut | Store


class _FellThrough:
    """What a slice of a route returns when its last target failed and the call falls back."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FELL_THROUGH"


FELL_THROUGH: Any = _FellThrough()
