"""Streamed replies: iterate chunks, then read the final reply from ``stream.response``.

Until the first content chunk arrives a failing target is left for the next one in the route;
after that a failure raises `StreamInterruptedError` carrying the partial text, never a silent
short answer. Leaving the ``with`` block early closes the connection.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import ProviderError, TurnoutError
from .types import ChatChunk, ChatResponse, Choice, FinishReason, FunctionCall, ToolCall, Usage

if TYPE_CHECKING:
    from ._routing import CallLog
    from .provider import Provider
    from .types import ChatRequest

__all__ = ["AsyncChatStream", "ChatStream"]


class _Accumulator:
    """Builds the final reply from chunks (text per choice, tool-call fragments, usage)."""

    def __init__(self) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, FinishReason | None] = {}
        self.tools: dict[int, dict[int, dict[str, str]]] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.has_content = False

    def add(self, chunk: ChatChunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.model:
            self.model = chunk.model
        if chunk.text:
            self.texts.setdefault(chunk.index, []).append(chunk.text)
            self.has_content = True
        if chunk.finish_reason is not None:
            self.finish[chunk.index] = chunk.finish_reason
        for delta in chunk.tool_calls:
            self.has_content = True
            call = self.tools.setdefault(chunk.index, {}).setdefault(delta.index, {"id": "", "name": "", "args": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["args"] += delta.arguments

    def text(self, index: int = 0) -> str:
        return "".join(self.texts.get(index, ()))

    def response(self, provider: str, model: str) -> ChatResponse:
        indexes = sorted({0, *self.texts, *self.finish, *self.tools})
        choices = [
            Choice.model_construct(
                index=i,
                text=self.text(i),
                finish_reason=self.finish.get(i),
                tool_calls=[
                    ToolCall(id=c["id"] or f"call_{n}", function=FunctionCall(name=c["name"], arguments=c["args"]))
                    for n, c in sorted(self.tools.get(i, {}).items())
                ],
            )
            for i in indexes
        ]
        return ChatResponse.model_construct(
            text=choices[0].text,
            choices=choices,
            usage=self.usage or Usage(),
            cost=None,
            provider=provider,
            model=self.model or model,
            attempts=[],
            finish_reason=choices[0].finish_reason,
            tool_calls=choices[0].tool_calls,
            id=None,
            request_id=None,
            warnings=[] if self.usage else ["the server sent no usage for this stream"],
        )


class _StreamBase:
    def __init__(self, targets: list[tuple[Provider, str]], request: ChatRequest, log: CallLog) -> None:
        self._targets = targets
        self._request = request
        self._log = log
        self._response: ChatResponse | None = None
        self._closed = False

    @property
    def response(self) -> ChatResponse:
        """The final reply (text, usage, cost, attempts), once the stream has been read to its end.

        Raises:
            TurnoutError: the stream has not finished (iterate it to the end, or use ``get_response()``).
        """
        if self._response is None:
            raise TurnoutError("the stream has not finished: iterate it to the end, or call get_response()")
        return self._response

    def _failed(
        self, exc: ProviderError, acc: _Accumulator, provider: Provider, model: str, started: float, more: bool
    ) -> BaseException | None:
        """Return the error to raise, or None to go on with the next target."""
        if acc.has_content:
            self._log.failed(exc, provider.name, model, started, more=False)
            return self._log.interrupted(exc, acc.text())
        return self._log.failed(exc, provider.name, model, started, more=more)


class ChatStream(_StreamBase):
    """A streamed chat reply. Use it as a context manager and iterate it for `ChatChunk` objects."""

    def __init__(self, targets: list[tuple[Provider, str]], request: ChatRequest, log: CallLog) -> None:
        super().__init__(targets, request, log)
        self._chunks: Iterator[ChatChunk] | None = None

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[ChatChunk]:
        if self._chunks is None:
            self._chunks = self._run()
        return self._chunks

    def get_response(self) -> ChatResponse:
        """Read whatever is left of the stream and return the final reply."""
        for _ in self:
            pass
        return self.response

    def close(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        self._closed = True
        if self._chunks is not None:
            self._chunks.close()  # type: ignore[attr-defined]

    def _run(self) -> Iterator[ChatChunk]:
        for position, (provider, model) in enumerate(self._targets):
            more = position + 1 < len(self._targets)
            acc, started = _Accumulator(), time.perf_counter()
            chunks = provider.stream(model, self._request)
            try:
                for chunk in chunks:
                    acc.add(chunk)
                    yield chunk
            except ProviderError as exc:
                error = self._failed(exc, acc, provider, model, started, more)
                if error is None:
                    continue
                if error is exc:
                    raise
                raise error from exc
            finally:
                chunks.close()  # type: ignore[attr-defined]
            self._response = self._log.succeeded(provider, model, started, acc.response(provider.name, model))
            return


class AsyncChatStream(_StreamBase):
    """Async twin of `ChatStream`: ``async with`` and ``async for``."""

    def __init__(self, targets: list[tuple[Provider, str]], request: ChatRequest, log: CallLog) -> None:
        super().__init__(targets, request, log)
        self._chunks: AsyncIterator[ChatChunk] | None = None

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[ChatChunk]:
        if self._chunks is None:
            self._chunks = self._run()
        return self._chunks

    async def get_response(self) -> ChatResponse:
        """Read whatever is left of the stream and return the final reply."""
        async for _ in self:
            pass
        return self.response

    async def close(self) -> None:
        """Stop reading and release the connection (safe to call twice)."""
        self._closed = True
        if self._chunks is not None:
            await self._chunks.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> AsyncIterator[ChatChunk]:
        for position, (provider, model) in enumerate(self._targets):
            more = position + 1 < len(self._targets)
            acc, started = _Accumulator(), time.perf_counter()
            chunks = provider.astream(model, self._request)
            try:
                async for chunk in chunks:
                    acc.add(chunk)
                    yield chunk
            except ProviderError as exc:
                error = self._failed(exc, acc, provider, model, started, more)
                if error is None:
                    continue
                if error is exc:
                    raise
                raise error from exc
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            self._response = self._log.succeeded(provider, model, started, acc.response(provider.name, model))
            return
