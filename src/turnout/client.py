"""`Client` and `AsyncClient`: the same methods, with the same names and behaviour.

Everything that does no I/O (config, routes, argument checks) lives in their base class,
`turnout._client_base.BaseClient`; the two clients only run the calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Self

from . import engine
from ._client_base import BaseClient, Messages, ModelT, ToolChoice, call_options
from .options import ProviderOptionsInput
from .streaming import ChatStream
from .types import ChatResponse, JSONObject

if TYPE_CHECKING:
    from ._tool_run import OnToolError, ToolRun
    from .batch import BatchResult, RequestInput
    from .cost.estimate import CostEstimate
    from .embeddings import EmbeddingResponse
    from .tools import ToolInput

__all__ = ["AsyncClient", "Client"]


class Client(BaseClient):
    """The synchronous client.

    Example:
        ```python
        client = turnout.Client.from_config("turnout.toml")
        reply = client.chat(model="fast", messages="Hi", max_tokens=64)
        print(reply.text, reply.cost)
        ```
    """

    def chat(
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
        """Send a chat request along ``model``'s route and return the first successful reply.

        Args:
            model: an alias from ``[models]``, or ``"<provider>:<model-id>"``.
            messages: a string (one user message), or a list of dicts / `Message` objects.
            temperature: sampling temperature.
            top_p: nucleus sampling probability mass.
            max_tokens: the most tokens to generate (OpenAI's reasoning models get it as
                ``max_completion_tokens``, the name they take).
            max_completion_tokens: the same cap under OpenAI's newer name, sent under that name
                (give one of the two; budgets and estimates read either).
            frequency_penalty: -2 to 2: penalise tokens by how often they appeared so far.
            presence_penalty: -2 to 2: penalise tokens that appeared at all so far.
            logit_bias: token id -> bias from -100 to 100 added to its logit.
            logprobs: return each generated token's log probability (``reply.logprobs``,
                ``choice.logprobs``, ``chunk.logprobs``).
            top_logprobs: with ``logprobs``: also the 0-20 most likely tokens at each position.
            parallel_tool_calls: whether the model may call several tools in one turn.
            reasoning_effort: how hard a reasoning model thinks (``"minimal"``, ``"low"``,
                ``"medium"``, ``"high"``; what the model takes).
            stop: stop sequence(s).
            seed: best-effort determinism.
            n: number of choices.
            response_format: OpenAI-style ``response_format``.
            tools: functions, pydantic model classes, `Tool` objects or OpenAI-style tool dicts
                (dicts are sent as they are; see docs/tools.md).
            tool_choice: ``"none"``, ``"auto"``, ``"required"`` or a named function.
            user: an end-user id.
            extra_body: provider-specific JSON keys merged into the request body.
            extra_headers: extra HTTP headers for this call.
            timeout: seconds to wait on each network read or write of this call (default: the provider's).
            deadline: seconds for this whole call, every retry and fallback included (default: the
                route's ``deadline``); each read's timeout is shortened to what is left.
            provider_options: typed provider-specific options (`VLLMOptions`, `TGIOptions`), one
                object or a list with one per kind; each target applies those of its own kind,
                over the config's (see docs/provider-options.md).
            response_model: a pydantic model class: the reply must be JSON of its schema, sent
                in each provider's own form; ``reply.parsed`` is the validated instance (see
                docs/structured-output.md). Not with ``response_format``, ``tools`` or ``n`` > 1.
            output_retries: with ``response_model``: how often a target is re-asked after a reply
                that does not fit (default: the route's ``output_retries``, 1). Each re-ask is an
                attempt, and its tokens count in ``usage`` and ``cost``.
            cache: False: neither look this call up in the response cache nor store its reply
                (default: cached when ``[cache]`` is set and the route does not say ``cache = false``).
            tags: the caller's labels (``{"tenant": "acme"}``): on the reply, in the ledger
                (``turnout usage --by tag:tenant``), and the key of ``[tag_budgets]``.

        Returns:
            The reply, with ``usage``, ``cost`` and the ``attempts`` made.

        Raises:
            InvalidArgumentError: an argument is invalid; nothing was sent.
            UnsupportedFeatureError: no target of the route takes what the call asks (tools, or a
                kind of ``provider_options``); nothing was sent.
            ConfigError: ``model`` cannot be routed.
            ProviderError: the route failed (a subclass says how).
            AllTargetsFailedError: several targets were tried and all failed.
            OutputValidationError: with ``response_model``: the reply did not fit, and no re-ask
                was left (a ``ProviderError``; routes fall back on it with ``"invalid_output"``).
        """
        return engine.chat(self._plan(model, messages, call_options(locals())))

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
    ) -> ChatStream[ModelT]:
        """Stream a chat reply; arguments as for `chat`. Nothing is sent until you iterate.

        Returns:
            A `ChatStream`: iterate it for chunks; ``.response`` holds the final reply.
        """
        return ChatStream(self._plan(model, messages, call_options(locals())))

    def run_tools(
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
        """Chat with tools until the model answers: run each call it makes and send the results back.

        Each round is one `chat` call (with the route's retries and fallback). A forced
        ``tool_choice`` (``"required"`` or a named tool) applies to the first round only, later
        rounds use ``"auto"``, so the model can answer. Tools run in the order the model called them.

        Args:
            model: an alias from ``[models]``, or ``"<provider>:<model-id>"``.
            messages: as for `chat`.
            tools: the tools to offer and run (functions, `Tool` objects with a function, or
                pydantic models given as ``Tool.from_model(M, function=...)``); all must be sync.
            max_rounds: the most requests to send.
            on_error: when a tool raises, or the model calls an unknown tool or writes invalid
                arguments: ``"send"`` the error to the model as the tool's result
                (``"Error: <type>: <message>"``), ``"raise"`` it, or a function
                ``(call, exception) -> str`` giving the result to send.
            tool_choice: ``"auto"``, ``"required"``, ``"none"`` or a named function (first round).
            temperature: as for `chat`; so are the other options.
            top_p: nucleus sampling probability mass.
            max_tokens: the most tokens to generate per round.
            max_completion_tokens: the same cap under OpenAI's newer name, as for `chat`.
            frequency_penalty: as for `chat`.
            presence_penalty: as for `chat`.
            logit_bias: as for `chat`.
            logprobs: as for `chat` (each round's reply has them).
            top_logprobs: as for `chat`.
            parallel_tool_calls: whether the model may call several tools in one round.
            reasoning_effort: as for `chat`.
            stop: stop sequence(s).
            seed: best-effort determinism.
            user: an end-user id.
            extra_body: provider-specific JSON keys merged into each request body.
            extra_headers: extra HTTP headers for each request.
            timeout: seconds to wait on each network read or write.
            provider_options: typed provider options for each request, as for `chat`.
            tags: the labels of every round, as for `chat`.

        Returns:
            A `ToolRun`: the final ``response``, the ``messages`` transcript, every round's reply,
            and their summed ``usage`` and ``cost``.

        Raises:
            InvalidArgumentError: a tool cannot be run (no function, async, duplicate name); nothing was sent.
            UnsupportedFeatureError: no target of the route can take tools; nothing was sent.
            ToolRoundsExceededError: the model still asked for tools after ``max_rounds`` requests
                (``.messages`` holds the transcript).
            ProviderError: a round failed, as for `chat`.
        """
        arguments = locals()
        from . import _tool_run

        runnable = _tool_run.tool_map(tools, need_sync=True)
        msgs, options = self._tool_run_args(messages, arguments)
        send = partial(self.chat, model)
        if self._telemetry is None:
            return _tool_run.run(send, msgs, runnable, max_rounds=max_rounds, on_error=on_error, options=options)
        with self._telemetry.tool_run(model) as note:
            run = _tool_run.run(send, msgs, runnable, max_rounds=max_rounds, on_error=on_error, options=options)
            note(run)
            return run

    def estimate_cost(
        self, model: str, messages: Messages, *, max_tokens: int | None = None, n: int | None = None
    ) -> CostEstimate:
        """Estimate a call's cost before sending it: prompt tokens and a low/high range per target.

        Nothing is generated. vLLM targets count the prompt exactly with ``POST /tokenize`` and
        read their window from ``/v1/models``; other targets use a heuristic (``estimated=True``).

        Args:
            model: an alias from ``[models]``, or ``"<provider>:<model-id>"``.
            messages: as for `chat`.
            max_tokens: the call's ``max_tokens``; without it the high bound assumes the rest of
                the context window is generated (None when the window is unknown).
            n: number of choices.

        Returns:
            A `CostEstimate`, one `TargetEstimate` per target in route order.

        Raises:
            InvalidArgumentError: an argument is invalid.
            ConfigError: ``model`` cannot be routed.
        """
        from .cost.estimate import CostEstimate, estimate_target  # loaded on first use, not by every client

        request = self._request(messages, call_options({"max_tokens": max_tokens, "n": n}))
        targets, _ = self._route(model)
        return CostEstimate(targets=[estimate_target(self._pricing, p, m, request) for p, m in targets])

    def embed(
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
        """Embed texts along ``model``'s route: one vector per input, in input order.

        Inputs beyond the provider's batch size are sent in several requests, all to the same
        target; usage and cost are summed (see docs/embeddings.md).

        Args:
            model: an alias from ``[models]``, or ``"<provider>:<model-id>"``.
            input: one text, or a list of texts.
            dimensions: shorter vectors, where the model supports it (text-embedding-3 and later).
            batch_size: the most inputs per request (default: the provider's, 2048 on OpenAI).
            user: an end-user id.
            extra_body: provider-specific JSON keys merged into each request body.
            extra_headers: extra HTTP headers for this call.
            timeout: seconds to wait on each network read or write of this call.
            deadline: seconds for this whole call, every batch, retry and fallback included
                (default: the route's ``deadline``).
            tags: the caller's labels, as for `chat`.

        Returns:
            The vectors, with ``usage``, ``cost``, ``dimensions`` and the ``attempts`` made.

        Raises:
            InvalidArgumentError: an argument is invalid (e.g. no input); nothing was sent.
            EmbeddingsNotSupportedError: the target serves no embeddings (e.g. a chat model on vLLM).
            ProviderError: the route failed (a subclass says how).
            AllTargetsFailedError: several targets were tried and all failed.
        """
        return engine.embed(self._plan_embed(model, input, call_options(locals())))

    def batch(
        self, requests: Iterable[RequestInput], *, model: str | None = None, concurrency: int = 8
    ) -> Iterator[BatchResult]:
        """Run many chat requests along a route, at most ``concurrency`` at once; yield results as they finish.

        Each request runs as `chat` would run it (retries, fallback, breakers, budgets, cache).
        A failed request is yielded with its ``error``; one refused by a budget stops new ones
        from starting (see docs/bulk.md).

        Args:
            requests: `BatchRequest` objects, or dicts in the OpenAI Batch API's input shape
                (``{"custom_id", "body": {...}}``) or the short form (``{"custom_id", "messages", ...}``).
            model: the route for every request (else each request's own ``model``).
            concurrency: the most requests in flight (worker threads).

        Returns:
            `BatchResult` objects, in the order they finish.

        Raises:
            InvalidArgumentError: a request is malformed, or ``concurrency`` is below 1.
        """
        from .batch import run

        return run(self, requests, model=model, concurrency=concurrency)

    def close(self) -> None:
        """Close every provider's connections; later calls raise `ClientClosedError`."""
        self._closed = True
        for provider in self._providers.values():
            provider.close()
        if self._cache is not None:
            self._cache.backend.close()
        if self._ledger is not None:
            self._ledger.close()
        if self._shared is not None:
            self._shared.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


from .async_client import AsyncClient  # noqa: E402  (the async twin, importable from here as documented)
