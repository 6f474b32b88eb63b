"""`Client` and `AsyncClient`: the same methods, with the same names and behaviour.

Everything that does no I/O (config, routing, argument checks, fallback decisions, pricing)
lives in `_BaseClient` and `CallLog`; the two clients only run the loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import ValidationError

from . import _run
from ._estimate import CostEstimate, aestimate_target, estimate_target
from ._routing import Call, RouteState, Target
from .budget import Budget, Budgets
from .config import Config, find_config_file, load_config, split_target
from .errors import ConfigError, InvalidArgumentError
from .ledger import Ledger, ledger_path
from .policies.breaker import TargetHealth
from .policies.clock import Clock, SystemClock
from .policies.route import RoutePolicy
from .pricing import Pricing
from .provider import Provider
from .streaming import AsyncChatStream, ChatStream
from .types import ChatRequest, ChatResponse, JSONObject, MessageInput, normalize_messages

__all__ = ["AsyncClient", "Client"]

ConfigInput = Config | Mapping[str, Any] | str | os.PathLike[str] | None
Messages = str | Sequence[MessageInput]
ToolChoice = Literal["none", "auto", "required"] | JSONObject


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
        try:
            return ChatRequest(
                messages=normalize_messages(messages if isinstance(messages, str) else list(messages)),
                **options,
            )
        except (ValidationError, ValueError) as exc:
            raise InvalidArgumentError(_describe_arguments(exc)) from None

    def _plan(self, model: str, messages: Messages, options: dict[str, Any]) -> Call:
        request = self._request(messages, options)
        route = self._routes.get(model)
        if route is None:  # resolved once per model argument: the config is frozen
            targets = [(self.provider(p), m) for p, m in self.targets(model)]
            route = self._routes[model] = (targets, self.config.policy(model))
        return Call(model, route[1], request, route[0], self._state)


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
        tools: list[JSONObject] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ChatResponse:
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
            tools: OpenAI-style tool definitions.
            tool_choice: ``"none"``, ``"auto"``, ``"required"`` or a named function.
            user: an end-user id.
            extra_body: provider-specific JSON keys merged into the request body.
            extra_headers: extra HTTP headers for this call.
            timeout: seconds to wait on each network read or write of this call (default: the provider's).

        Returns:
            The reply, with ``usage``, ``cost`` and the ``attempts`` made.

        Raises:
            InvalidArgumentError: an argument is invalid; nothing was sent.
            ConfigError: ``model`` cannot be routed.
            ProviderError: the route failed (a subclass says how).
            AllTargetsFailedError: several targets were tried and all failed.
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
        tools: list[JSONObject] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ChatStream:
        """Stream a chat reply; arguments as for `chat`. Nothing is sent until you iterate.

        Returns:
            A `ChatStream`: iterate it for chunks; ``.response`` holds the final reply.
        """
        return ChatStream(self._plan(model, messages, _options(locals())))

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
        tools: list[JSONObject] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ChatResponse:
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
        tools: list[JSONObject] | None = None,
        tool_choice: ToolChoice | None = None,
        user: str | None = None,
        extra_body: JSONObject | None = None,
        extra_headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> AsyncChatStream:
        """Async twin of `Client.stream`: use ``async with`` and ``async for``."""
        return AsyncChatStream(self._plan(model, messages, _options(locals())))

    async def estimate_cost(
        self, model: str, messages: Messages, *, max_tokens: int | None = None, n: int | None = None
    ) -> CostEstimate:
        """Async twin of `Client.estimate_cost`."""
        request = self._request(messages, _options({"max_tokens": max_tokens, "n": n}))
        targets = [(self.provider(p), m) for p, m in self.targets(model)]
        return CostEstimate(targets=[await aestimate_target(self._pricing, p, m, request) for p, m in targets])

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
