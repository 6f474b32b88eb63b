"""`AsyncClient`: `Client`'s methods, awaited (the same names, arguments, replies and errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Self

from . import engine
from ._client_base import BaseClient, Messages, ModelT, ToolChoice, call_options
from .options import ProviderOptionsInput
from .streaming import AsyncChatStream
from .types import ChatResponse, JSONObject

if TYPE_CHECKING:
    from ._tool_run import OnToolError, ToolRun
    from .batch import BatchResult, RequestInput
    from .cost.estimate import CostEstimate
    from .embeddings import EmbeddingResponse
    from .tools import ToolInput

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """The asynchronous client: `Client`'s methods, awaited.

    Example:
        ```python
        async with turnout.AsyncClient.from_config("turnout.toml") as client:
            reply = await client.chat(model="fast", messages="Hi")
            async with client.stream(model="fast", messages="Hi") as stream:
                async for chunk in stream:
                    print(chunk.text or "", end="")
        ```
    """

    async def chat(
        self,
        model: str,
        messages: Messages,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        logit_bias: Mapping[int, int] | Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        parallel_tool_calls: bool | None = None,
        reasoning_effort: str | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        n: int | None = None,
        response_format: JSONObject | None = None,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
        cache: bool | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ChatResponse[ModelT]:
        """Async twin of `Client.chat`, with the same arguments, reply and errors."""
        return await engine.achat(self._plan(model, messages, call_options(locals())))

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        logit_bias: Mapping[int, int] | Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        parallel_tool_calls: bool | None = None,
        reasoning_effort: str | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        n: int | None = None,
        response_format: JSONObject | None = None,
        tools: Sequence[ToolInput] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
        cache: bool | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> AsyncChatStream[ModelT]:
        """Async twin of `Client.stream`: use ``async with`` and ``async for``."""
        return AsyncChatStream(self._plan(model, messages, call_options(locals())))

    async def run_tools(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[ToolInput],
        max_rounds: int = 5,
        on_error: OnToolError = "send",
        tool_choice: ToolChoice | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        frequency_penalty: float | None = None,
        presence_penalty: float | None = None,
        logit_bias: Mapping[int, int] | Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        parallel_tool_calls: bool | None = None,
        reasoning_effort: str | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        provider_options: ProviderOptionsInput | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ToolRun:
        """Async twin of `Client.run_tools`.

        Async tools are awaited; sync tools run directly in the event loop (no thread is started:
        make a blocking tool ``async``, e.g. with ``asyncio.to_thread`` inside it). The calls of
        one round run concurrently; their results are sent in the order the model called them.
        """
        arguments = locals()
        from . import _tool_run

        runnable = _tool_run.tool_map(tools, need_sync=False)
        msgs, options = self._tool_run_args(messages, arguments)
        send = partial(self.chat, model)
        if self._telemetry is None:
            return await _tool_run.arun(send, msgs, runnable, max_rounds=max_rounds, on_error=on_error, options=options)
        with self._telemetry.tool_run(model) as note:
            run = await _tool_run.arun(send, msgs, runnable, max_rounds=max_rounds, on_error=on_error, options=options)
            note(run)
            return run

    async def estimate_cost(
        self, model: str, messages: Messages, *, max_tokens: int | None = None, n: int | None = None
    ) -> CostEstimate:
        """Async twin of `Client.estimate_cost`."""
        from .cost.estimate import CostEstimate, aestimate_target

        request = self._request(messages, call_options({"max_tokens": max_tokens, "n": n}))
        targets, _ = self._route(model)
        return CostEstimate(targets=[await aestimate_target(self._pricing, p, m, request) for p, m in targets])

    async def embed(
        self,
        model: str,
        input: str | Sequence[str],  # noqa: A002 - the name OpenAI's API uses
        *,
        dimensions: int | None = None,
        batch_size: int | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> EmbeddingResponse:
        """Async twin of `Client.embed`; batches are sent concurrently (at most 4 at a time)."""
        return await engine.aembed(self._plan_embed(model, input, call_options(locals())))

    def batch(
        self, requests: Iterable[RequestInput], *, model: str | None = None, concurrency: int = 8
    ) -> AsyncIterator[BatchResult]:
        """Async twin of `Client.batch`: ``async for result in client.batch(...)`` (tasks, not threads)."""
        from .batch import arun

        return arun(self, requests, model=model, concurrency=concurrency)

    async def aclose(self) -> None:
        """Close every provider's connections; later calls raise `ClientClosedError`."""
        self._closed = True
        for provider in self._providers.values():
            await provider.aclose()
        if self._cache is not None:
            await self._cache.backend.aclose()
        if self._ledger is not None:
            await self._ledger.aclose()
        if self._shared is not None:
            await self._shared.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
