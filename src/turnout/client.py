"""`Client` and `AsyncClient`: the same methods, with the same names and behaviour.

Everything that does no I/O (config, routing, argument checks, fallback decisions, pricing)
lives in `_BaseClient` and `CallLog`; the two clients only run the loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ValidationError
from typing_extensions import TypeVar

from . import _embed_run, _run
from ._embed_run import EmbedCall
from ._estimate import CostEstimate, aestimate_target, estimate_target
from ._routing import Call, RouteState, Target
from ._structured import take_output
from .budget import Budget, Budgets
from .config import Config, find_config_file, load_config, split_target
from .embeddings import EmbeddingRequest, EmbeddingResponse
from .errors import ConfigError, InvalidArgumentError
from .ledger import Ledger, ledger_path
from .options import ProviderOptionsInput
from .policies.breaker import TargetHealth
from .policies.clock import Clock, SystemClock
from .policies.route import RoutePolicy
from .pricing import Pricing
from .provider import Provider
from .streaming import AsyncChatStream, ChatStream
from .types import ChatRequest, ChatResponse, JSONObject, Message, MessageInput, normalize_messages

if TYPE_CHECKING:
    from ._tool_run import OnToolError, ToolRun
    from .tools import ToolInput

__all__ = ["AsyncClient", "Client"]

ConfigInput = Config | Mapping[str, Any] | str | os.PathLike[str] | None
Messages = str | Sequence[MessageInput]
ToolChoice = Literal["none", "auto", "required"] | JSONObject
ModelT = TypeVar("ModelT", bound=BaseModel, default=Any)
"""A call's ``response_model``: ``reply.parsed`` has its type (``Any`` without one)."""


class _BaseClient:
    """Configuration, routing and argument checking shared by both clients."""

    def __init__(self, config: ConfigInput = None, *, clock: Clock | None = None, budget: Budget | None = None) -> None:
        """Create a client.

        Args:
            config: a `Config`, a dict of the same shape, a path to a TOML file, or None to use
                ``$TURNOUT_CONFIG`` or ``./turnout.toml``.
            clock: where retries and deadlines read the time and sleep (tests pass a fake one).
            budget: a spending limit on every call (replaces the config's ``[budget]``).
        """
        self.config = _resolve_config(config)
        self._pricing = Pricing(self.config.prices)
        self._providers: dict[str, Provider] = {}
        self._routes: dict[str, tuple[list[Target], RoutePolicy]] = {}  # model argument -> its route
        self.budgets = _budgets(self.config, budget)
        path = ledger_path(self.config.ledger)
        self._ledger = None if path is None else Ledger(path)
        self._state = RouteState(clock or SystemClock(), self._pricing, self.budgets, self._ledger)

    def health(self) -> list[TargetHealth]:
        """The circuit of every target used so far: state, reason and seconds until a retry."""
        return self._state.health()

    @classmethod
    def from_config(cls, path: str | os.PathLike[str]) -> Self:
        """Create a client from a turnout.toml file.

        Raises:
            ConfigError: the file is missing or invalid (the message names the key and the fix).
        """
        return cls(config=load_config(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={sorted(self.config.providers)}, models={sorted(self.config.models)})"

    def provider(self, name: str) -> Provider:
        """The configured provider called ``name`` (created on first use).

        Raises:
            ConfigError: no provider has that name, or its settings cannot be used.
        """
        found = self._providers.get(name)
        if found is None:
            config = self.config.providers.get(name)
            if config is None:
                known = ", ".join(sorted(self.config.providers)) or "none"
                raise ConfigError(f"no provider named {name!r} is configured (configured: {known}).")
            from .providers import provider_class

            found = provider_class(config.type)(name, config)
            self._providers[name] = found
        return found

    def targets(self, model: str) -> list[tuple[str, str]]:
        """The ``(provider, model id)`` pairs a ``model`` argument routes to, in order.

        Raises:
            ConfigError: ``model`` is neither an alias in ``[models]`` nor ``"<provider>:<model-id>"``
                with a configured provider.
        """
        route = self.config.models.get(model)
        if route is not None:
            return [split_target(t) for t in route.targets]
        provider, sep, model_id = model.partition(":")
        if sep and model_id and provider in self.config.providers:
            return [(provider, model_id)]
        aliases = ", ".join(sorted(self.config.models)) or "none"
        providers = ", ".join(sorted(self.config.providers)) or "none"
        raise ConfigError(
            f"model {model!r} is neither an alias in [models] (aliases: {aliases}) nor "
            f"'<provider>:<model-id>' with a configured provider (providers: {providers})."
        )

    def _request(self, messages: Messages, options: dict[str, Any]) -> ChatRequest:
        if options.get("tools"):
            from .tools import tool_definitions

            options["tools"] = tool_definitions(options["tools"])
        try:
            return ChatRequest(
                messages=normalize_messages(messages if isinstance(messages, str) else list(messages)),
                **options,
            )
        except (ValidationError, ValueError) as exc:
            raise InvalidArgumentError(_describe_arguments(exc)) from None

    def _plan(self, model: str, messages: Messages, options: dict[str, Any]) -> Call:
        output = take_output(options)  # response_model -> response_format
        request = self._request(messages, options)
        route = self._routes.get(model)
        if route is None:  # resolved once per model argument: the config is frozen
            targets = [(self.provider(p), m) for p, m in self.targets(model)]
            route = self._routes[model] = (targets, self.config.policy(model))
        if request.provider_options:
            from ._provider_options import check_route

            check_route(model, request, route[0])
        if request.tools or request.tool_choice is not None:
            from ._tool_run import capable_targets

            targets, skipped = capable_targets(route[0], request)
            call = Call(model, route[1], request, targets, self._state, output)
            call.attempts.extend(skipped)
            return call
        return Call(model, route[1], request, route[0], self._state, output)

    def _plan_embed(self, model: str, texts: str | Sequence[str], options: dict[str, Any]) -> EmbedCall:
        batch_size = options.pop("batch_size", None)
        options.pop("input", None)  # passed as ``texts``
        try:
            request = EmbeddingRequest(input=[texts] if isinstance(texts, str) else list(texts), **options)
            if batch_size is not None and batch_size < 1:
                raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        except (ValidationError, ValueError) as exc:
            raise InvalidArgumentError(_describe_arguments(exc)) from None
        route = self._routes.get(model)
        if route is None:
            targets = [(self.provider(p), m) for p, m in self.targets(model)]
            route = self._routes[model] = (targets, self.config.policy(model))
        return EmbedCall(model, route[1], request, route[0], self._state, batch_size)

    def _tool_options(self, messages: Messages, options: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        """The normalised messages and the chat options of a `run_tools` call."""
        return self._request(messages, {}).messages, {k: v for k, v in options.items() if v is not None}


class Client(_BaseClient):
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
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
    ) -> ChatResponse[ModelT]:
        """Send a chat request along ``model``'s route and return the first successful reply.

        Args:
            model: an alias from ``[models]``, or ``"<provider>:<model-id>"``.
            messages: a string (one user message), or a list of dicts / `Message` objects.
            temperature: sampling temperature.
            top_p: nucleus sampling probability mass.
            max_tokens: the most tokens to generate.
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
            provider_options: typed provider-specific options (`VLLMOptions`, `TGIOptions`), one
                object or a list with one per kind; each target applies those of its own kind,
                over the config's (see docs/provider-options.md).
            response_model: a pydantic model class: the reply must be JSON of its schema, sent
                in each provider's own form; ``reply.parsed`` is the validated instance (see
                docs/structured-output.md). Not with ``response_format``, ``tools`` or ``n`` > 1.
            output_retries: with ``response_model``: how often a target is re-asked after a reply
                that does not fit (default: the route's ``output_retries``, 1). Each re-ask is an
                attempt, and its tokens count in ``usage`` and ``cost``.

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
        return _run.chat(self._plan(model, messages, _options(locals())))

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
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
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
    ) -> ChatStream[ModelT]:
        """Stream a chat reply; arguments as for `chat`. Nothing is sent until you iterate.

        Returns:
            A `ChatStream`: iterate it for chunks; ``.response`` holds the final reply.
        """
        return ChatStream(self._plan(model, messages, _options(locals())))

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
        stop: str | list[str] | None = None,
        seed: int | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        provider_options: ProviderOptionsInput | None = None,
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
            stop: stop sequence(s).
            seed: best-effort determinism.
            user: an end-user id.
            extra_body: provider-specific JSON keys merged into each request body.
            extra_headers: extra HTTP headers for each request.
            timeout: seconds to wait on each network read or write.
            provider_options: typed provider options for each request, as for `chat`.

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
        chat_options = _tool_call_options(locals())
        from . import _tool_run

        runnable = _tool_run.tool_map(tools, need_sync=True)
        msgs, options = self._tool_options(messages, chat_options)
        return _tool_run.run(
            lambda m, **o: self.chat(model, m, **o),
            msgs,
            runnable,
            max_rounds=max_rounds,
            on_error=on_error,
            options=options,
        )

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
        request = self._request(messages, _options({"max_tokens": max_tokens, "n": n}))
        targets = [(self.provider(p), m) for p, m in self.targets(model)]
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

        Returns:
            The vectors, with ``usage``, ``cost``, ``dimensions`` and the ``attempts`` made.

        Raises:
            InvalidArgumentError: an argument is invalid (e.g. no input); nothing was sent.
            EmbeddingsNotSupportedError: the target serves no embeddings (e.g. a chat model on vLLM).
            ProviderError: the route failed (a subclass says how).
            AllTargetsFailedError: several targets were tried and all failed.
        """
        return _embed_run.embed(self._plan_embed(model, input, _options(locals())))

    def close(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            provider.close()
        if self._ledger is not None:
            self._ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
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
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
    ) -> ChatResponse[ModelT]:
        """Async twin of `Client.chat`, with the same arguments, reply and errors."""
        return await _run.achat(self._plan(model, messages, _options(locals())))

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
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
        provider_options: ProviderOptionsInput | None = None,
        response_model: type[ModelT] | None = None,
        output_retries: int | None = None,
    ) -> AsyncChatStream[ModelT]:
        """Async twin of `Client.stream`: use ``async with`` and ``async for``."""
        return AsyncChatStream(self._plan(model, messages, _options(locals())))

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
        stop: str | list[str] | None = None,
        seed: int | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        provider_options: ProviderOptionsInput | None = None,
    ) -> ToolRun:
        """Async twin of `Client.run_tools`.

        Async tools are awaited; sync tools run directly in the event loop (no thread is started:
        make a blocking tool ``async``, e.g. with ``asyncio.to_thread`` inside it). The calls of
        one round run concurrently; their results are sent in the order the model called them.
        """
        chat_options = _tool_call_options(locals())
        from . import _tool_run

        runnable = _tool_run.tool_map(tools, need_sync=False)
        msgs, options = self._tool_options(messages, chat_options)
        return await _tool_run.arun(
            lambda m, **o: self.chat(model, m, **o),
            msgs,
            runnable,
            max_rounds=max_rounds,
            on_error=on_error,
            options=options,
        )

    async def estimate_cost(
        self, model: str, messages: Messages, *, max_tokens: int | None = None, n: int | None = None
    ) -> CostEstimate:
        """Async twin of `Client.estimate_cost`."""
        request = self._request(messages, _options({"max_tokens": max_tokens, "n": n}))
        targets = [(self.provider(p), m) for p, m in self.targets(model)]
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
    ) -> EmbeddingResponse:
        """Async twin of `Client.embed`; batches are sent concurrently (at most 4 at a time)."""
        return await _embed_run.aembed(self._plan_embed(model, input, _options(locals())))

    async def aclose(self) -> None:
        """Close every provider's connections."""
        for provider in self._providers.values():
            await provider.aclose()
        if self._ledger is not None:
            self._ledger.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


_NOT_OPTIONS = frozenset({"self", "model", "messages"})


def _options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The request options among a method's arguments (those the caller set)."""
    return {k: v for k, v in arguments.items() if k not in _NOT_OPTIONS and v is not None}


_NOT_TOOL_OPTIONS = _NOT_OPTIONS | {"tools", "max_rounds", "on_error"}


def _tool_call_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The chat options among `run_tools`'s arguments."""
    return {k: v for k, v in arguments.items() if k not in _NOT_TOOL_OPTIONS}


def _budgets(config: Config, budget: Budget | None) -> Budgets | None:
    client = budget or config.budget
    aliases = {alias: route.budget for alias, route in config.models.items() if route.budget is not None}
    return Budgets(client, aliases) if client is not None or aliases else None


def _resolve_config(config: ConfigInput) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return Config.from_dict(config)
    if config is not None:
        return load_config(config)
    found = find_config_file()
    if found is None:
        raise ConfigError(
            "no configuration: pass config=... (a path, a dict or a Config), create ./turnout.toml, "
            "or set TURNOUT_CONFIG to a config file's path."
        )
    return load_config(found)


def _describe_arguments(exc: ValidationError | ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return f"invalid argument: {exc}"
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        parts.append(f"{loc}: {error['msg']}")
    return "invalid arguments: " + "; ".join(parts)
