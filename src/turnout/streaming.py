"""Streamed replies: iterate chunks, then read the final reply from ``stream.response``.

Until the first content chunk arrives a failing target is left for the next one in the route;
after that a failure raises `StreamInterruptedError` carrying the partial text, never a silent
short answer. Leaving the ``with`` block early closes the connection, and the tokens generated
so far are recorded as spent (see docs/streaming.md). The route's decisions are the engine's
(`turnout.engine`), the same as for ``chat()``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Generic

from . import engine
from .errors import TurnoutError
from .types import ChatChunk, ChatResponse, ParsedT

if TYPE_CHECKING:
    from .engine import ChatCall

__all__ = ["AsyncChatStream", "ChatStream"]


class _StreamBase(Generic[ParsedT]):
    def __init__(self, call: ChatCall) -> None:
        self._call = call
        self._done: list[ChatResponse] = []

    @property
    def response(self) -> ChatResponse[ParsedT]:
        """The final reply (text, usage, cost, attempts), once the stream has been read to its end.

        Raises:
            TurnoutError: the stream has not finished (iterate it to the end, or use ``get_response()``).
        """
        if not self._done:
            raise TurnoutError("the stream has not finished: iterate it to the end, or call get_response()")
        return self._done[0]


class ChatStream(_StreamBase[ParsedT]):
    """A streamed chat reply. Use it as a context manager and iterate it for `ChatChunk` objects."""

    def __init__(self, call: ChatCall) -> None:
        super().__init__(call)
        self._chunks: Generator[ChatChunk, None, None] | None = None

    def __enter__(self) -> ChatStream[ParsedT]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[ChatChunk]:
        if self._chunks is None:
            self._chunks = engine.stream(self._call, self._done)
        return self._chunks

    def get_response(self) -> ChatResponse[ParsedT]:
        """Read whatever is left of the stream and return the final reply."""
        for _ in self:
            pass
        return self.response

    def close(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        if self._chunks is not None:
            self._chunks.close()


class AsyncChatStream(_StreamBase[ParsedT]):
    """Async twin of `ChatStream`: ``async with`` and ``async for``."""

    def __init__(self, call: ChatCall) -> None:
        super().__init__(call)
        self._chunks: AsyncGenerator[ChatChunk, None] | None = None

    async def __aenter__(self) -> AsyncChatStream[ParsedT]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        if self._chunks is None:
            self._chunks = engine.astream(self._call, self._done)
        return self._chunks

    async def get_response(self) -> ChatResponse[ParsedT]:
        """Read whatever is left of the stream and return the final reply."""
        async for _ in self:
            pass
        return self.response

    async def close(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        if self._chunks is not None:
            await self._chunks.aclose()
