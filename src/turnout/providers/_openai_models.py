"""pydantic models of the OpenAI chat-completions wire, for the replies and chunks the fast path does not take.

`turnout.providers._openai_fast` reads plain text replies and chunks without them; these models
validate everything else (tool calls, logprobs, legacy function calls, odd shapes) and load on the
first such reply or chunk. Shapes: https://platform.openai.com/docs/api-reference/chat.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__: list[str] = []  # private to turnout.providers._openai_wire


class _Wire(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")


def _json_text(value: object) -> str | None:
    """Text as it is; any other JSON value (TGI's arguments as an object) as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


class _Function(_Wire):
    name: str | None = None
    arguments: str | None = None

    _text = field_validator("arguments", mode="before")(_json_text)


class _Custom(_Wire):
    """A custom tool call's part: OpenAI's ``{"name", "input"}`` (input is free text)."""

    name: str | None = None
    input: str | None = None

    _text = field_validator("input", mode="before")(_json_text)


class _ToolCall(_Wire):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: _Function | None = None
    custom: _Custom | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        """TGI 1.4 numbers its calls (``"id": 0``): an id is text, whatever the server wrote."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def kind(self) -> Literal["function", "custom"] | None:
        """``"custom"`` or ``"function"`` from ``type`` or the part present; None when neither says."""
        if self.type == "custom" or (self.custom is not None and self.function is None):
            return "custom"
        if self.type in (None, "function"):
            return "function" if self.function is not None or self.type == "function" else None
        return None


class _Message(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    function_call: _Function | None = None


class _TopLogprob(_Wire):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None


class _TokenLogprob(_TopLogprob):
    top_logprobs: list[_TopLogprob] | None = None


class _Logprobs(_Wire):
    content: list[_TokenLogprob] | None = None


class _Choice(_Wire):
    index: int = 0
    message: _Message
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _PromptDetails(_Wire):
    cached_tokens: int | None = None


class _CompletionDetails(_Wire):
    reasoning_tokens: int | None = None


class _Usage(_Wire):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Completion(_Wire):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice]
    usage: _Usage | None = None


class _Delta(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    function_call: _Function | None = None


class _ChunkChoice(_Wire):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _Chunk(_Wire):
    model: str | None = None
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    error: Any = None
