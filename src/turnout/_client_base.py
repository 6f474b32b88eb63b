"""What `Client` and `AsyncClient` share: configuration, routes and argument checks (no I/O)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, PydanticUserError, ValidationError
from typing_extensions import TypeVar

from ._construct import construct_set
from ._defaults import MAX_TIMEOUT
from ._messages import normalize_messages
from ._response_model import OutputHook, take_output
from .config import Config, find_config_file, load_config, split_target
from .cost.budgets import Budget, Budgets
from .cost.prices import Pricing
from .cost.spend_ledger import Ledger, ledger_path
from .engine import CallHook, ChatCall, EmbedCall, RouteState, Target
from .errors import ClientClosedError, ConfigError, InvalidArgumentError
from .events import E
from .policies.breaker import TargetHealth
from .policies.clock import Clock, SystemClock
from .policies.route import RoutePolicy
from .provider import Provider
from .types import ChatRequest, JSONObject, Message, MessageInput

if TYPE_CHECKING:
    from ._telemetry import Telemetry
    from .cache import ResponseCache
    from .shared import SharedState

__all__ = ["BaseClient", "ConfigInput", "Messages", "ModelT", "ToolChoice", "call_options"]

ConfigInput = Config | Mapping[str, Any] | str | os.PathLike[str] | None
Messages = str | Sequence[MessageInput]
ToolChoice = Literal["none", "auto", "required"] | JSONObject
ModelT = TypeVar("ModelT", bound=BaseModel, default=Any)
"""A call's ``response_model``: ``reply.parsed`` has its type (``Any`` without one)."""


class BaseClient:
    """Configuration, routing and argument checking shared by both clients."""

    def __init__(
        self,
        config: ConfigInput = None,
        *,
        clock: Clock | None = None,
        budget: Budget | None = None,
        telemetry: bool | None = None,
    ) -> None:
        """Create a client.

        Args:
            config: a `Config`, a dict of the same shape, a path to a TOML file, or None to use
                ``$TURNOUT_CONFIG`` or ``./turnout.toml``; without either, ``$OPENAI_API_KEY`` gives
                one provider, ``openai`` (``$OPENAI_BASE_URL`` honoured), and bare OpenAI model ids.
            clock: where retries and deadlines read the time and sleep (tests pass a fake one).
            budget: a spending limit on every call (replaces the config's ``[budget]``).
            telemetry: emit OpenTelemetry spans and metrics (True/False replaces the config's
                ``[telemetry] enabled``; needs ``pip install 'turnout[otel]'``).

        Raises:
            ConfigError: the config is invalid, telemetry is on without ``opentelemetry-api``,
                or a ``[hooks]`` function cannot be imported.
        """
        self.config, self._bare_provider = _resolve_config(config)
        self._pricing = Pricing(self.config.prices)
        self._providers: dict[str, Provider] = {}
        self._routes: dict[str, tuple[list[Target], RoutePolicy]] = {}  # model argument -> its route
        self._shared = None if self.config.state.url is None else _shared_state(self.config)
        self.budgets = _budgets(self.config, budget, self._shared)
        path = ledger_path(self.config.ledger)
        ledger = self.config.ledger
        self._ledger = None if path is None else Ledger(path, ledger.spool, ledger.replay_interval)
        self._state = RouteState(clock or SystemClock(), self._pricing, self.budgets, self._ledger, self._shared)
        self._state.limits = self.config.limits
        self._telemetry = _start_telemetry(self.config, telemetry, self._state)
        _attach_hooks(self.config, self._state)
        self._cache = _open_cache(self.config)
        self._closed = False  # set by close()/aclose(): a closed client sends nothing more

    def on(self, event: type[E], callback: Callable[[E], object]) -> None:
        """Call ``callback(event)`` for every event of that type from this client's calls.

        Events (`turnout.events`): `CallStarted`, `AttemptStarted`, `AttemptFinished`,
        `RetryScheduled`, `StreamAbandoned`, `CallFinished`. Callbacks run synchronously on the
        calling thread (in the event loop, for `AsyncClient`; on a worker thread for the attempts
        of a hedged `Client` call), so keep them quick and never block; an exception in one is
        logged and never reaches the call.

        Example:
            ```python
            client.on(turnout.events.CallFinished, lambda e: print(e.route, e.cost))
            ```
        """
        self._state.events.subscribe(event, callback)

    def health(self) -> list[TargetHealth]:
        """The circuit of every target used so far: state, reason and seconds until a retry.

        With ``[state]``, a circuit another worker opened (and this process has not) is listed
        too, open, with ``source="shared"``: two short Redis round trips on the calling thread
        (each bounded by ``[state] timeout``); when Redis cannot be reached, only this process's.
        """
        local = self._state.health()
        if self._shared is None:
            return local
        return _with_shared_circuits(local, self._shared)

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
        if self._bare_provider is not None and model:
            return [(self._bare_provider, model)]  # no config file: a bare OpenAI model id, like OpenAI()
        aliases = ", ".join(sorted(self.config.models)) or "none"
        providers = ", ".join(sorted(self.config.providers)) or "none"
        raise ConfigError(
            f"model {model!r} is neither an alias in [models] (aliases: {aliases}) nor "
            f"'<provider>:<model-id>' with a configured provider (providers: {providers})."
        )

    def _request(self, messages: Messages, options: dict[str, Any]) -> ChatRequest:
        _check_messages(messages)
        if not options:  # the usual call: only messages, which normalize_messages has just validated
            try:
                normalized = normalize_messages(messages if isinstance(messages, str) else list(messages), _check_items)
            except (ValidationError, ValueError) as exc:
                raise InvalidArgumentError(_describe_arguments(exc)) from None
            return construct_set(ChatRequest, messages=normalized)  # validated just now: not again
        if options.get("tools"):
            from .tools import tool_definitions

            options["tools"] = tool_definitions(options["tools"])
        try:
            return ChatRequest(
                messages=normalize_messages(messages if isinstance(messages, str) else list(messages), _check_items),
                **options,
            )
        except (ValidationError, ValueError) as exc:
            raise InvalidArgumentError(_describe_arguments(exc)) from None

    def _plan(self, model: str, messages: Messages, options: dict[str, Any]) -> ChatCall:
        self._check_open()
        output = use_cache = tags = deadline = None
        if options:  # without options (the usual call) there is nothing to take out of them
            try:
                output = take_output(options)  # response_model -> response_format
            except PydanticUserError as exc:  # a field type without a JSON schema (a callable, an arbitrary class)
                raise InvalidArgumentError(
                    f"response_model: no JSON schema can be made for it ({str(exc).splitlines()[0]}). "
                    "Use field types that JSON can carry (str, int, float, bool, lists, dicts, nested models)."
                ) from None
            use_cache = options.pop("cache", None)
            tags = _check_tags(options.pop("tags", None))
            deadline = _check_deadline(options.pop("deadline", None))
        request = self._request(messages, options)
        targets, policy = self._route(model)
        if deadline is not None:
            policy = policy.model_copy(update={"deadline": deadline})
        hooks: list[CallHook] = [] if output is None else [OutputHook(output)]
        if use_cache is not False and self._cache is not None:
            route = self.config.models.get(model)
            if route is None or route.cache:
                from .cache import CacheHook

                hooks.append(CacheHook(self._cache))
        elif use_cache and self._cache is None:
            raise InvalidArgumentError("cache=True but no response cache is configured: add a [cache] table")
        if request.provider_options:
            from ._provider_options import OptionsHook, check_route

            check_route(model, request, targets)
            hooks.append(OptionsHook())
        if request.tools or request.tool_choice is not None:
            from ._tool_run import capable_targets

            capable, skipped = capable_targets(targets, request)
            call = ChatCall(model, policy, request, capable, self._state, hooks)
            call.attempts.extend(skipped)
        else:
            call = ChatCall(model, policy, request, targets, self._state, hooks)
        call.tags = tags
        return call

    def _route(self, model: str) -> tuple[list[Target], RoutePolicy]:
        """The targets and policy of a ``model`` argument (resolved once: the config is frozen)."""
        self._check_open()
        route = self._routes.get(model) if isinstance(model, str) else None
        if route is None:
            if not isinstance(model, str):
                raise InvalidArgumentError(
                    f"model must be a string (an alias from [models] or '<provider>:<model-id>'), "
                    f"not {type(model).__name__}"
                )
            targets = [(self.provider(p), m) for p, m in self.targets(model)]
            route = self._routes[model] = (targets, self.config.policy(model))
        return route

    def _plan_embed(self, model: str, texts: str | Sequence[str], options: dict[str, Any]) -> EmbedCall:
        self._check_open()
        if not isinstance(texts, str) and (not isinstance(texts, Sequence) or isinstance(texts, bytes)):
            raise InvalidArgumentError(
                f"input must be a string or a list of strings, not {type(texts).__name__}: e.g. input=['first text']"
            )
        tags = _check_tags(options.pop("tags", None))
        deadline = _check_deadline(options.pop("deadline", None))
        batch_size = options.pop("batch_size", None)
        options.pop("input", None)  # passed as ``texts``
        from .embeddings import EmbeddingRequest  # loaded by the first embeddings call

        try:
            request = EmbeddingRequest(input=[texts] if isinstance(texts, str) else list(texts), **options)
            if batch_size is not None and batch_size < 1:
                raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        except (ValidationError, ValueError) as exc:
            raise InvalidArgumentError(_describe_arguments(exc)) from None
        targets, policy = self._route(model)
        if deadline is not None:
            policy = policy.model_copy(update={"deadline": deadline})
        call = EmbedCall(model, policy, request, targets, self._state, batch_size)
        call.tags = tags
        return call

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                f"this {type(self).__name__} was closed; nothing was sent. Create a new client (or keep one open "
                "for the life of your program and close it once, at exit)."
            )

    def _tool_run_args(self, messages: Messages, arguments: dict[str, Any]) -> tuple[list[Message], dict[str, Any]]:
        """The normalised messages and the chat options (those set) among a `run_tools` call's arguments."""
        options = {k: v for k, v in arguments.items() if k not in _NOT_TOOL_OPTIONS and v is not None}
        return self._request(messages, {}).messages, options


_NOT_OPTIONS = frozenset({"self", "model", "messages"})


def call_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The request options among a method's arguments (those the caller set)."""
    return {k: v for k, v in arguments.items() if v is not None and k not in _NOT_OPTIONS}  # most are None


_NOT_TOOL_OPTIONS = _NOT_OPTIONS | {"tools", "max_rounds", "on_error"}


def _open_cache(config: Config) -> ResponseCache | None:
    """The client's response cache, when ``[cache]`` is set and enabled."""
    if config.cache is None or not config.cache.enabled:
        return None
    from .cache import ResponseCache, open_backend

    return ResponseCache(open_backend(config.cache), config.cache.ttl)


def _start_telemetry(config: Config, enabled: bool | None, state: RouteState) -> Telemetry | None:
    """Spans and metrics subscribed to the client's events, when telemetry is on (else nothing is imported)."""
    if not (config.telemetry.enabled if enabled is None else enabled):
        return None
    try:
        from ._telemetry import Telemetry
    except ImportError as exc:
        raise ConfigError(
            f"telemetry is enabled but OpenTelemetry cannot be imported ({exc}): "
            "pip install 'turnout[otel]', or turn it off ([telemetry] enabled = false, telemetry=False)."
        ) from None
    found = Telemetry(config.telemetry.capture_content)
    found.subscribe(state.events)
    return found


_HOOK_EVENTS = {
    "on_call_started": "CallStarted",
    "on_attempt_started": "AttemptStarted",
    "on_attempt_finished": "AttemptFinished",
    "on_retry_scheduled": "RetryScheduled",
    "on_stream_abandoned": "StreamAbandoned",
    "on_call_finished": "CallFinished",
}


def _attach_hooks(config: Config, state: RouteState) -> None:
    """Subscribe the functions named in ``[hooks]`` (``"package.module:function"``)."""
    from . import events

    for key, kind in _HOOK_EVENTS.items():
        for ref in getattr(config.hooks, key):
            module, _, name = ref.partition(":")
            try:
                function = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    f"hooks.{key}: cannot import {ref!r} ({exc}). Fix the module path or the name."
                ) from None
            if not callable(function):
                raise ConfigError(f"hooks.{key}: {ref!r} is not callable.")
            state.events.subscribe(getattr(events, kind), function)


def _check_messages(messages: object) -> None:
    """Turn the common wrong shapes of ``messages`` into an error that shows the right one."""
    if type(messages) is list or isinstance(messages, str):  # the usual shapes, before the slower ABC checks
        return
    if isinstance(messages, Mapping):
        raise InvalidArgumentError(
            "messages is one message (a dict), not a list: wrap it in a list, messages=[{...}], or pass a string"
        )
    if not isinstance(messages, Sequence) or isinstance(messages, bytes):
        raise InvalidArgumentError(
            f"messages must be a string or a list of messages, not {type(messages).__name__}: "
            'e.g. messages="Hi" or messages=[{"role": "user", "content": "Hi"}]'
        )


def _check_items(messages: Sequence[object]) -> None:
    """The common wrong kinds of message, named (`normalize_messages` calls it when an item is not a dict)."""
    for position, message in enumerate(messages):
        if isinstance(message, str):
            raise InvalidArgumentError(
                f"messages[{position}] is a bare string: give each message a role, "
                f'{{"role": "user", "content": {_clip(message)!r}}}, or pass one string as messages="..."'
            )
        if not isinstance(message, Message | Mapping):
            raise InvalidArgumentError(
                f"messages[{position}] must be a dict like {{'role': 'user', 'content': '...'}} or a Message, "
                f"not {type(message).__name__}"
            )


def _check_deadline(value: object) -> float | None:
    """A call's own ``deadline=``: seconds > 0, at most a day (like every duration in turnout)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise InvalidArgumentError(
            f"deadline must be a number of seconds, more than 0 and at most {MAX_TIMEOUT:g}, not {value!r}"
        )
    return float(value)


def _check_tags(tags: object) -> dict[str, str] | None:
    """``tags=`` as a plain dict of strings.

    Raises:
        InvalidArgumentError: not a mapping of non-empty strings to strings.
    """
    if tags is None:
        return None
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidArgumentError(
            f"tags must map names to strings, e.g. tags={{'tenant': 'acme'}}, not {_clip(repr(tags))}"
        )
    return dict(tags) or None


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _with_shared_circuits(local: list[TargetHealth], shared: SharedState) -> list[TargetHealth]:
    """``local``, with the circuits other workers opened on Redis where this process's are not open."""
    try:
        found = shared.open_circuits()
    except shared.errors as exc:
        shared.note_down(exc)
        return local
    merged = {h.target: h for h in local}
    for target, (reason, left) in found.items():
        mine = merged.get(target)
        if mine is None or mine.state == "closed":
            failures = 0 if mine is None else mine.consecutive_failures
            merged[target] = TargetHealth(
                target=target,
                state="open",
                reason=reason,
                retry_in=left,
                consecutive_failures=failures,
                source="shared",
            )
    return [merged[t] for t in sorted(merged)]


def _budgets(config: Config, budget: Budget | None, shared: SharedState | None) -> Budgets | None:
    client = budget or config.budget
    aliases = {alias: route.budget for alias, route in config.models.items() if route.budget is not None}
    if client is None and not aliases and not config.tag_budgets:
        return None
    if shared is None:
        return Budgets(client, aliases, tags=config.tag_budgets)
    from .shared import SharedBudgets

    return SharedBudgets(shared, client, aliases, tags=config.tag_budgets)


def _shared_state(config: Config) -> SharedState:
    """The connection to ``[state] url`` (the Redis code loads only for a client that has one)."""
    from .shared import SharedState

    return SharedState(config.state)


def _resolve_config(config: ConfigInput) -> tuple[Config, str | None]:
    """The config, and the provider bare model ids go to (only for the implicit OpenAI config)."""
    if isinstance(config, Config):
        return config, None
    if isinstance(config, Mapping):
        return Config.from_dict(config), None
    if isinstance(config, str | os.PathLike):
        return load_config(config), None
    if config is not None:
        raise ConfigError(
            "config must be a Config, a dict of the same shape, or the path of a TOML file, "
            f"not {type(config).__name__}"
        )
    found = find_config_file()
    if found is not None:
        return load_config(found), None
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise ConfigError(
            "no configuration: pass config=... (a path, a dict or a Config), create ./turnout.toml, "
            "set TURNOUT_CONFIG to a config file's path, or set OPENAI_API_KEY to use OpenAI alone."
        )
    # Like openai.OpenAI(): the key and base URL from the environment (https://github.com/openai/openai-python#usage).
    provider = {"type": "openai", "api_key": key, "base_url": os.environ.get("OPENAI_BASE_URL") or None}
    return Config.from_dict(
        {"providers": {"openai": provider}}, source="the environment (OPENAI_API_KEY, OPENAI_BASE_URL)"
    ), "openai"


def _describe_arguments(exc: ValidationError | ValueError) -> str:
    if not isinstance(exc, ValidationError):
        return f"invalid argument: {exc}"
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid arguments: " + "; ".join(parts)
