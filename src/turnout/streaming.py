"""Streamed replies: iterate chunks, then read the final reply from ``stream.response``.

Until the first content chunk arrives a failing target is left for the next one in the route;
after that a failure raises `StreamInterruptedError` carrying the partial text, never a silent
short answer. Leaving the ``with`` block early closes the connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Generic

from ._run import aprecheck, precheck
from ._structured import OutputCheck
from .errors import ProviderError, TurnoutError
from .types import (
    ChatChunk,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    ParsedT,
    Usage,
    make_tool_call,
    tool_calls_finish,
)

if TYPE_CHECKING:
    from ._routing import Call
    from .provider import Provider

__all__ = ["AsyncChatStream", "ChatStream"]


class _Accumulator:
    """Builds the final reply from chunks (text per choice, tool-call fragments, usage)."""

    def __init__(self) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, FinishReason | None] = {}
        self.tools: dict[int, dict[int, dict[str, str]]] = {}
        self.legacy: dict[int, dict[str, str]] = {}  # a legacy `function_call` per choice
        self.usage: Usage | None = None
        self.model: str | None = None
        self.has_content = False

    def add(self, chunk: ChatChunk) -> ChatChunk:
        """Record ``chunk``; return it, its finish reason made ``"tool_calls"`` when its choice called tools."""
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
            call = self.tools.setdefault(chunk.index, {}).setdefault(
                delta.index, {"id": "", "name": "", "args": "", "type": "function"}
            )
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["args"] += delta.arguments
            call["type"] = delta.type or call["type"]
        if chunk.function_call is not None:
            self.has_content = True
            legacy = self.legacy.setdefault(chunk.index, {"name": "", "args": ""})
            legacy["name"] = chunk.function_call.name or legacy["name"]
            legacy["args"] += chunk.function_call.arguments
        if chunk.finish_reason is not None and chunk.index in self.tools:
            finish = tool_calls_finish(chunk.finish_reason, True)
            if finish != chunk.finish_reason:
                self.finish[chunk.index] = finish
                return chunk.model_copy(update={"finish_reason": finish})
        return chunk

    def text(self, index: int = 0) -> str:
        return "".join(self.texts.get(index, ()))

    def response(self, provider: str, model: str) -> ChatResponse:
        indexes = sorted({0, *self.texts, *self.finish, *self.tools, *self.legacy})
        choices = [
            Choice.model_construct(
                index=i,
                text=self.text(i),
                finish_reason=tool_calls_finish(self.finish.get(i), i in self.tools),
                tool_calls=[
                    make_tool_call(n, c["id"], c["name"], c["args"], "custom" if c["type"] == "custom" else "function")
                    for n, (_, c) in enumerate(sorted(self.tools.get(i, {}).items()))
                ],
                function_call=(
                    FunctionCall(name=self.legacy[i]["name"], arguments=self.legacy[i]["args"])
                    if i in self.legacy
                    else None
                ),
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
            warnings=_usage_warnings(self.usage),
            function_call=choices[0].function_call,
        )


def _usage_warnings(usage: Usage | None) -> list[str]:
    """Say when a stream's usage is missing, or lacks the completion count (TGI text mode without details)."""
    if usage is None:
        return ["the server sent no usage for this stream"]
    if usage.completion_tokens is None:
        return ["the server sent no completion token count for this stream"]
    return []


class _StreamBase(Generic[ParsedT]):
    def __init__(self, call: Call) -> None:
        self._call = call
        self._response: ChatResponse[ParsedT] | None = None

    @property
    def response(self) -> ChatResponse[ParsedT]:
        """The final reply (text, usage, cost, attempts), once the stream has been read to its end.

        Raises:
            TurnoutError: the stream has not finished (iterate it to the end, or use ``get_response()``).
        """
        if self._response is None:
            raise TurnoutError("the stream has not finished: iterate it to the end, or call get_response()")
        return self._response

    def _give_up(
        self, exc: ProviderError, blocked: ProviderError | None, provider: Provider, model: str, more: bool
    ) -> BaseException | None:
        if exc is blocked:
            return self._call.skipped(provider, model, exc, more)
        return self._call.target_failed(exc, more)

    def _failed(
        self, exc: ProviderError, acc: _Accumulator, provider: Provider, model: str, started: float
    ) -> ProviderError:
        """Record a failed attempt; after content, turn it into a `StreamInterruptedError` (never retried)."""
        self._call.attempt_failed(provider, model, exc, started)
        return self._call.interrupted(exc, acc.text()) if acc.has_content else exc


class ChatStream(_StreamBase[ParsedT]):
    """A streamed chat reply. Use it as a context manager and iterate it for `ChatChunk` objects."""

    def __init__(self, call: Call) -> None:
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
            self._chunks = self._run()
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

    def _run(self) -> Generator[ChatChunk, None, None]:
        self._call.reserve()
        error: BaseException | None = None
        try:
            yield from self._route()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._call.finish(self._response, error)

    def _route(self) -> Generator[ChatChunk, None, None]:
        call = self._call
        last = len(call.targets) - 1
        for position, (provider, model) in enumerate(call.targets):
            blocked = call.gate(provider, model) or precheck(call, provider, model)
            try:
                if blocked is not None:
                    raise blocked
                yield from self._attempts(provider, model)
                return
            except ProviderError as exc:
                error = self._give_up(exc, blocked, provider, model, position < last)
                if error is None:
                    continue
                if error is exc:
                    raise
                raise error from None

    def _attempts(self, provider: Provider, model: str) -> Generator[ChatChunk, None, None]:
        call, retries = self._call, None
        while True:
            acc, started = _Accumulator(), call.clock.now()
            chunks = provider.stream(model, call.request_for_attempt())
            try:
                for chunk in chunks:
                    yield acc.add(chunk)
            except ProviderError as exc:
                failure = self._failed(exc, acc, provider, model, started)
                if failure is not exc:
                    raise failure from exc  # content was delivered: never retried
                retries = retries or call.retries(provider, model)
                call.clock.sleep(retries.after(exc))  # re-raises exc when no retry is due
                continue
            finally:
                chunks.close()  # type: ignore[attr-defined]
            response = acc.response(provider.name, model)
            if call.output is not None:  # response_model: validate the whole reply (a stream is never re-asked)
                response = OutputCheck(call, provider, model).verify_streamed(response, started)
            self._response = call.succeeded(provider, model, started, response)
            return


class AsyncChatStream(_StreamBase[ParsedT]):
    """Async twin of `ChatStream`: ``async with`` and ``async for``."""

    def __init__(self, call: Call) -> None:
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
            self._chunks = self._run()
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

    async def _run(self) -> AsyncGenerator[ChatChunk, None]:
        self._call.reserve()
        error: BaseException | None = None
        try:
            routed = self._route()
            try:
                async for chunk in routed:
                    yield chunk
            finally:
                await routed.aclose()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._call.finish(self._response, error)

    async def _route(self) -> AsyncGenerator[ChatChunk, None]:
        call = self._call
        last = len(call.targets) - 1
        for position, (provider, model) in enumerate(call.targets):
            blocked = call.gate(provider, model) or await aprecheck(call, provider, model)
            try:
                if blocked is not None:
                    raise blocked
                attempts = self._attempts(provider, model)
                try:
                    async for chunk in attempts:
                        yield chunk
                finally:
                    await attempts.aclose()  # async generators are not closed by leaving `async for`
                return
            except ProviderError as exc:
                error = self._give_up(exc, blocked, provider, model, position < last)
                if error is None:
                    continue
                if error is exc:
                    raise
                raise error from None

    async def _attempts(self, provider: Provider, model: str) -> AsyncGenerator[ChatChunk, None]:
        call, retries = self._call, None
        while True:
            acc, started = _Accumulator(), call.clock.now()
            chunks = provider.astream(model, call.request_for_attempt())
            try:
                async for chunk in chunks:
                    yield acc.add(chunk)
            except ProviderError as exc:
                failure = self._failed(exc, acc, provider, model, started)
                if failure is not exc:
                    raise failure from exc
                retries = retries or call.retries(provider, model)
                await call.clock.asleep(retries.after(exc))
                continue
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            response = acc.response(provider.name, model)
            if call.output is not None:  # response_model: validate the whole reply (a stream is never re-asked)
                response = OutputCheck(call, provider, model).verify_streamed(response, started)
            self._response = call.succeeded(provider, model, started, response)
            return
