"""The typed values turnout takes and returns: messages, requests, replies, chunks, usage and cost.

Unknown counts are ``None``, never a made-up ``0``; an unknown price makes ``cost`` ``None``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Generic, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, TypeAdapter, field_validator
from typing_extensions import TypeVar

from . import _defaults
from ._checks import NoBoolNumbers, check_headers
from .options import ProviderOptionsField

__all__ = [
    "Attempt",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "Cost",
    "FinishReason",
    "FunctionCall",
    "JSONObject",
    "Message",
    "MessageInput",
    "ParsedT",
    "Role",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "normalize_messages",
    "tool_call_id",
    "tool_calls_finish",
]

JSONObject: TypeAlias = dict[str, Any]
Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]
"""Why generation stopped, the same word whichever provider answered."""

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos_token": "stop",  # TGI
    "stop_sequence": "stop",  # TGI
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def finish_reason_from_wire(value: str | None) -> FinishReason | None:
    """Normalise a provider's finish reason (unknown words become ``"other"``)."""
    if value is None:
        return None
    return _FINISH_REASONS.get(value, "other")


def tool_calls_finish(finish: FinishReason | None, has_tool_calls: bool) -> FinishReason | None:
    """``"tool_calls"`` for a choice that made tool calls and stopped normally.

    vLLM says ``"stop"`` for a named ``tool_choice`` and TGI ``"eos_token"``, where OpenAI says
    ``"tool_calls"``. ``"length"`` (the arguments were cut off) and the others are kept.
    """
    if has_tool_calls and finish in (None, "stop", "other"):
        return "tool_calls"
    return finish


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FunctionCall(_Model):
    """The function a tool call invokes, with its arguments as the JSON text the model wrote."""

    name: str
    arguments: str = ""


class ToolCall(_Model):
    """One tool call requested by the model (OpenAI's shape), the same whichever provider answered.

    A call that came without an id (some hosts send none) gets a stable one from `tool_call_id`.

    Example:
        ```python
        for call in reply.tool_calls:
            print(call.name, call.args)  # "get_weather" {"city": "Paris"}
        ```
    """

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def name(self) -> str:
        """The name of the function called."""
        return self.function.name

    @property
    def arguments(self) -> str:
        """The arguments exactly as the model wrote them (JSON text, maybe invalid)."""
        return self.function.arguments

    def arguments_json(self) -> dict[str, Any]:
        """The arguments parsed into a dict (empty text counts as ``{}``).

        Raises:
            ToolArgumentsError: the model's arguments are not a JSON object (the error names the tool).
        """
        text = self.function.arguments
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


def tool_call_id(index: int, name: str, arguments: str) -> str:
    """A stable id for a tool call that came without one: the same for the same call, streamed or not."""
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()[:24]
    return f"call_{digest}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class ToolCallDelta(_Model):
    """A fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Message(BaseModel):
    """One chat message in OpenAI's shape. Unknown fields are kept and sent as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Role
    content: str | list[JSONObject] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


MessageInput: TypeAlias = str | Message | Mapping[str, Any]
"""One item of ``messages=``: a dict in OpenAI's shape or a `Message` (or a whole string as the only message)."""
_MESSAGES = TypeAdapter(list[Message])


def normalize_messages(messages: str | list[Message] | list[Mapping[str, Any]] | list[MessageInput]) -> list[Message]:
    """Validate ``messages`` into a list of `Message`.

    Raises:
        pydantic.ValidationError: a message has a wrong role or field type.
        ValueError: the list is empty.
    """
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    if not messages:
        raise ValueError("messages must not be empty")
    if all(type(m) is Message for m in messages):
        return list(messages)  # type: ignore[arg-type]
    return _MESSAGES.validate_python([m if isinstance(m, Message) else dict(m) for m in messages])  # type: ignore[arg-type]


class ChatRequest(NoBoolNumbers, _Model):
    """One provider-neutral chat request; providers turn it into their own wire format.

    ``extra_body`` is the documented escape hatch: its keys are merged into the JSON body sent
    to the provider, overriding turnout's own keys of the same name. ``provider_options`` holds
    typed options (`VLLMOptions`, `TGIOptions`); each provider applies those of its own kind.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    messages: list[Message]
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
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

    @field_validator("extra_headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        return None if headers is None else check_headers(headers)


class Usage(_Model):
    """Token counts as the server reported them; ``None`` where it did not say."""

    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    total_tokens: NonNegativeInt | None = None
    cached_tokens: NonNegativeInt | None = None
    reasoning_tokens: NonNegativeInt | None = None


class Cost(_Model):
    """What a call cost in US dollars, exactly, from the price in ``source``."""

    input: Decimal
    output: Decimal
    total: Decimal
    source: str = Field(description="where the price came from, e.g. 'config' or 'genai-prices 0.2.3'")

    def __str__(self) -> str:
        return f"${_usd(self.total)} (in ${_usd(self.input)} + out ${_usd(self.output)}; {self.source})"


def _usd(value: Decimal) -> str:
    """Every significant digit, no exponent: Decimal('3.7E-6') -> '0.0000037'."""
    return format(value.normalize(), "f") if value else "0"


class Attempt(_Model):
    """One try of one target during a call."""

    provider: str
    model: str
    outcome: str = Field(description="'ok', or the name of the error class that ended the attempt")
    latency: float = Field(description="seconds from sending to the reply (or the error)")
    status_code: int | None = None
    error: str | None = None
    skipped: bool = Field(default=False, description="True when nothing was sent (open circuit, context pre-check)")


class Choice(_Model):
    """One of the ``n`` alternatives in a reply."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCall] = []


ParsedT = TypeVar("ParsedT", default=Any)
"""The type of `ChatResponse.parsed`: the call's ``response_model`` (``Any`` without one)."""


class ChatResponse(_Model, Generic[ParsedT]):
    """A complete chat reply.

    ``text``, ``finish_reason`` and ``tool_calls`` are those of the first choice. With
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


class ChatChunk(_Model):
    """One streamed piece of a reply. ``usage`` is set only on the final usage chunk."""

    text: str | None = None
    index: int = 0
    finish_reason: FinishReason | None = None
    tool_calls: list[ToolCallDelta] = []
    usage: Usage | None = None
    model: str | None = None
