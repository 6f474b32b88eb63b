"""The typed values turnout takes and returns: messages, requests, replies, chunks, usage and cost.

Unknown counts are ``None``, never a made-up ``0``; an unknown price makes ``cost`` ``None``.
`Usage`, `Cost` and `USD` live in `turnout.money` and are imported here too, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeVar

from . import _defaults
from ._checks import NoBoolNumbers, check_headers
from ._lazy import lazy
from .money import USD, Cost, Usage, USDField
from .money import fixed_point as fixed_point
from .money import to_usd as to_usd
from .options import ProviderOptionsField

if TYPE_CHECKING:
    from ._messages import normalize_messages

__all__ = [
    "Attempt",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "Cost",
    "CustomToolCall",
    "FinishReason",
    "FunctionCall",
    "JSONObject",
    "Message",
    "MessageInput",
    "ParsedT",
    "ProviderRateLimit",
    "Role",
    "TokenLogprob",
    "ToolCall",
    "ToolCallDelta",
    "TopLogprob",
    "USD",
    "USDField",
    "Usage",
    "make_tool_call",
    "normalize_messages",
    "tool_call_id",
    "tool_calls_finish",
]

JSONObject: TypeAlias = dict[str, Any]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
"""Who wrote a message; ``"function"``: the result of a legacy ``function_call`` (OpenAI's functions API)."""
FinishReason = Literal["stop", "length", "tool_calls", "function_call", "content_filter", "error", "other"]
"""Why generation stopped, the same word whichever provider answered.

``"function_call"`` is OpenAI's legacy ``functions`` API: the call is in ``reply.function_call``.
Each provider maps its server's words to these (``turnout.providers``); unknown words are ``"other"``.
"""


def tool_calls_finish(finish: FinishReason | None, has_tool_calls: bool) -> FinishReason | None:
    """``"tool_calls"`` for a choice that made tool calls and stopped normally.

    vLLM says ``"stop"`` for a named ``tool_choice`` and TGI its end-of-sequence word (read as
    ``"stop"``), where OpenAI says ``"tool_calls"``; a host that says ``"function_call"`` while
    sending ``tool_calls`` is read the same way. ``"length"`` (the arguments were cut off) and the others are kept.
    """
    if has_tool_calls and finish in (None, "stop", "other", "function_call"):
        return "tool_calls"
    return finish


class _Model(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class FunctionCall(_Model):
    """The function a tool call invokes, with its arguments as the JSON text the model wrote."""

    name: str
    arguments: str = ""


class CustomToolCall(_Model):
    """The custom tool a tool call invokes (OpenAI's ``"type": "custom"``), with its free-text input."""

    name: str
    input: str = ""


class ToolCall(_Model):
    """One tool call requested by the model (OpenAI's shape), the same whichever provider answered.

    A function call (``type == "function"``) has ``function`` set; a custom tool call (OpenAI's
    ``"type": "custom"``, free-text input) has ``custom`` set. ``name`` and ``arguments`` work for
    both. A call that came without an id (some hosts send none) gets a stable one from `tool_call_id`.

    Example:
        ```python
        for call in reply.tool_calls:
            print(call.name, call.args)  # "get_weather" {"city": "Paris"}
        ```
    """

    id: str
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = None
    custom: CustomToolCall | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> ToolCall:
        """The part named by ``type`` is set, and only that one."""
        if self.type == "function" and (self.function is None or self.custom is not None):
            raise ValueError('a "function" tool call needs function (and no custom)')
        if self.type == "custom" and (self.custom is None or self.function is not None):
            raise ValueError('a "custom" tool call needs custom (and no function)')
        return self

    @property
    def name(self) -> str:
        """The name of the function (or custom tool) called."""
        if self.function is not None:
            return self.function.name
        return self.custom.name if self.custom is not None else ""

    @property
    def arguments(self) -> str:
        """The arguments exactly as the model wrote them (JSON text, maybe invalid); a custom call's input."""
        if self.function is not None:
            return self.function.arguments
        return self.custom.input if self.custom is not None else ""

    def arguments_json(self) -> dict[str, Any]:
        """The arguments parsed into a dict (empty text counts as ``{}``).

        Raises:
            ToolArgumentsError: the model's arguments are not a JSON object (the error names the tool).
            ToolCallError: a custom tool call: its input is free text, not JSON arguments.
        """
        if self.type == "custom":
            from .errors import ToolCallError

            raise ToolCallError(
                f"tool call {self.name!r} is a custom tool call: its input is free text (call.custom.input), "
                "not JSON arguments; run it yourself",
                tool=self.name,
                call_id=self.id,
            )
        text = self.arguments
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            problem = f"not valid JSON ({exc})"
        else:
            if isinstance(value, dict):
                return value
            problem = f"a JSON {type(value).__name__}, not an object"
        from .errors import ToolArgumentsError

        raise ToolArgumentsError(
            f"the arguments the model wrote for tool {self.name!r} are {problem}: {_clip(text)}",
            tool=self.name,
            call_id=self.id,
            arguments=text,
        )

    @property
    def args(self) -> dict[str, Any]:
        """`arguments_json()`: the parsed arguments (raises `ToolArgumentsError` when they are not JSON)."""
        return self.arguments_json()


def make_tool_call(
    position: int, id: str | None, name: str, arguments: str, kind: Literal["function", "custom"] = "function"
) -> ToolCall:
    """A decoded tool call: a function call, or a custom one whose ``arguments`` is its raw input.

    A missing id becomes `tool_call_id` of the call's position, name and arguments.
    """
    call_id = id or tool_call_id(position, name, arguments)
    if kind == "custom":
        return ToolCall(id=call_id, type="custom", custom=CustomToolCall(name=name, input=arguments))
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def tool_call_id(index: int, name: str, arguments: str) -> str:
    """A stable id for a tool call that came without one: the same for the same call, streamed or not."""
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()[:24]
    return f"call_{digest}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class ToolCallDelta(_Model):
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate.

    ``type`` is ``"custom"`` for a custom tool call (``arguments`` then holds pieces of its input),
    ``None`` when the fragment does not say (a function call unless an earlier fragment said otherwise).
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["function", "custom"] | None = None


class Message(BaseModel):
    """One chat message in OpenAI's shape. Unknown fields are kept and sent as they are."""

    model_config = ConfigDict(defer_build=True, extra="allow", frozen=True)

    role: Role
    content: str | list[JSONObject] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = Field(
        default=None, description="OpenAI's legacy functions API: the call an assistant message made"
    )


MessageInput: TypeAlias = str | Message | Mapping[str, Any]
"""One item of ``messages=``: a dict in OpenAI's shape or a `Message` (or a whole string as the only message)."""


class ChatRequest(NoBoolNumbers, _Model):
    """One provider-neutral chat request; providers turn it into their own wire format.

    ``extra_body`` is the documented escape hatch: its keys are merged into the JSON body sent
    to the provider, overriding turnout's own keys of the same name. ``provider_options`` holds
    typed options (`VLLMOptions`, `TGIOptions`); each provider applies those of its own kind.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid", arbitrary_types_allowed=True)

    messages: list[Message]
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(
        default=None, gt=0, description="the call's output cap (set from max_completion_tokens when that is given)"
    )
    max_completion_tokens: int | None = Field(
        default=None, gt=0, description="the output cap, sent under this name (OpenAI's reasoning models need it)"
    )
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[int, int] | None = Field(default=None, description="token id -> bias, -100 to 100")
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = Field(default=None, description='e.g. "minimal", "low", "medium", "high"')
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, gt=0)
    response_format: JSONObject | None = None
    tools: list[JSONObject] | None = None
    tool_choice: Literal["none", "auto", "required"] | JSONObject | None = None
    user: str | None = None
    extra_body: JSONObject | None = None
    extra_headers: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0, le=_defaults.MAX_TIMEOUT)
    provider_options: ProviderOptionsField = ()

    @model_validator(mode="before")
    @classmethod
    def _one_output_cap(cls, data: Any) -> Any:
        """``max_completion_tokens`` is also ``max_tokens``: budgets and estimates read one cap."""
        if not isinstance(data, dict) or data.get("max_completion_tokens") is None:
            return data
        cap, other = data["max_completion_tokens"], data.get("max_tokens")
        if other is not None and other != cap:
            raise ValueError("give max_tokens or max_completion_tokens (the same cap), not both")
        return {**data, "max_tokens": cap}

    @field_validator("extra_headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        return None if headers is None else check_headers(headers)


class Attempt(_Model):
    """One try of one target during a call."""

    provider: str
    model: str
    outcome: str = Field(description="'ok', or the name of the error class that ended the attempt")
    latency: float = Field(description="seconds from sending to the reply (or the error)")
    status_code: int | None = None
    error: str | None = None
    skipped: bool = Field(default=False, description="True when nothing was sent (open circuit, context pre-check)")


def answering_attempt(attempts: list[Attempt]) -> Attempt | None:
    """The attempt whose reply the call returned (a hedge's loser may be recorded after it), else the last."""
    for attempt in reversed(attempts):
        if attempt.outcome == "ok":
            return attempt
    return attempts[-1] if attempts else None


class TopLogprob(_Model):
    """One of the most likely tokens at a position, with its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """A generated token's log probability, and the ``top_logprobs`` most likely tokens at its position."""

    top_logprobs: list[TopLogprob] = []


class Choice(_Model):
    """One of the ``n`` alternatives in a reply.

    ``function_call`` is a legacy ``functions`` API call (OpenAI's ``message.function_call``, finish
    reason ``"function_call"``); it is not a tool call and is not in ``tool_calls``.
    """

    index: int
    text: str
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCall] = []
    logprobs: list[TokenLogprob] | None = Field(default=None, description="per generated token, with logprobs=True")
    function_call: FunctionCall | None = None

    @property
    def message(self) -> Message:
        """This choice as the assistant `Message` to append to a conversation (calls kept as they came)."""
        return _assistant_message(self.text, self.tool_calls, self.function_call)


def _assistant_message(text: str, tool_calls: list[ToolCall], function_call: FunctionCall | None) -> Message:
    return Message(
        role="assistant", content=text or None, tool_calls=list(tool_calls) or None, function_call=function_call
    )


ParsedT = TypeVar("ParsedT", default=Any)
"""The type of `ChatResponse.parsed`: the call's ``response_model`` (``Any`` without one)."""


class ProviderRateLimit(_Model):
    """What the provider's reply headers said of its rate limit (OpenAI's ``x-ratelimit-*``)."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = Field(default=None, description="seconds until the request count resets")
    reset_tokens: float | None = Field(default=None, description="seconds until the token count resets")


class ChatResponse(_Model, Generic[ParsedT]):
    """A complete chat reply.

    ``text``, ``finish_reason``, ``tool_calls`` and ``function_call`` are those of the first choice;
    ``message`` is it as the assistant `Message` to append to a conversation. With
    ``response_model=M``, the client returns a ``ChatResponse[M]`` whose ``parsed`` is the
    validated ``M``; without one, ``parsed`` is None (a bare ``ChatResponse`` is ``ChatResponse[Any]``).
    """

    text: str
    choices: list[Choice]
    usage: Usage
    cost: Cost | None = None
    provider: str = Field(description="the configured provider name that answered")
    model: str = Field(description="the model id that answered, as the server reported it")
    attempts: list[Attempt] = []
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCall] = []
    id: str | None = None
    request_id: str | None = None
    warnings: list[str] = []
    parsed: ParsedT = Field(default=None, description="the validated response_model instance")  # type: ignore[assignment]
    logprobs: list[TokenLogprob] | None = Field(
        default=None, description="the first choice's token log probabilities (with logprobs=True)"
    )
    function_call: FunctionCall | None = Field(
        default=None, description="a legacy functions API call (finish_reason 'function_call'); not a tool call"
    )
    from_cache: bool = Field(
        default=False,
        description="served by turnout's response cache ([cache]): nothing was sent, cost zero "
        "(not the provider's prompt caching, usage.cached_tokens)",
    )
    tags: dict[str, str] | None = Field(default=None, description="the call's tags= (also in the ledger)")
    rate_limit: ProviderRateLimit | None = Field(
        default=None, description="the provider's x-ratelimit-* headers, when it sent them ([limits] reads them)"
    )

    @property
    def message(self) -> Message:
        """The reply as the assistant `Message` to append to a conversation.

        Tool calls (custom ones too) and a legacy ``function_call`` are kept exactly as they came.

        Example:
            ```python
            messages.append(reply.message)  # then run the tools and send their results
            ```
        """
        return _assistant_message(self.text, self.tool_calls, self.function_call)


class ChatChunk(_Model):
    """One streamed piece of a reply. ``usage`` is set only on the final usage chunk.

    ``rate_limit`` is set only on the first chunk, from the stream's response headers (OpenAI's
    ``x-ratelimit-*``, sent before the body), when the provider sent them.

    ``function_call`` is a fragment of a legacy ``functions`` API call (name first, then pieces of
    its arguments; its ``index`` is 0): the final reply's ``function_call``, not a tool call.
    """

    text: str | None = None
    index: int = 0
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCallDelta] = []
    usage: Usage | None = None
    model: str | None = None
    logprobs: list[TokenLogprob] | None = None
    function_call: ToolCallDelta | None = None
    rate_limit: ProviderRateLimit | None = None


# `normalize_messages` lives in `turnout._messages` (which needs `Message`, above); loaded on first use.
__getattr__ = lazy(__name__, {"normalize_messages": "turnout._messages"})
