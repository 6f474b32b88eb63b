"""`Accumulator`: the final reply of a stream, built from its chunks as they pass to the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import APITimeoutError
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    ToolCall,
    Usage,
    tool_call_id,
    tool_calls_finish,
)

if TYPE_CHECKING:
    from ..policies.clock import Clock

__all__ = ["Accumulator"]


class Accumulator:
    """Builds the final reply from chunks (text per choice, tool-call fragments, usage).

    With a deadline it also ends a stream that is still sending when the call's time is up.
    """

    __slots__ = (
        "_clock",
        "_deadline",
        "finish",
        "first",
        "has_content",
        "in_tool_call",
        "model",
        "texts",
        "tools",
        "usage",
    )

    def __init__(self, clock: Clock | None = None, deadline: float | None = None) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, FinishReason | None] = {}
        self.tools: dict[int, dict[int, dict[str, str]]] = {}
        self.usage: Usage | None = None
        self.model: str | None = None
        self.has_content = False
        self.in_tool_call = False
        self.first: float | None = None
        """The clock's time when the first chunk came (for time to first chunk), or None."""
        self._clock, self._deadline = clock, deadline

    def add(self, chunk: ChatChunk) -> ChatChunk:
        """Record ``chunk``; return it, its finish reason made ``"tool_calls"`` when its choice called tools.

        Raises:
            APITimeoutError: the call's deadline passed while the stream was still sending.
        """
        if self.first is None and self._clock is not None:
            self.first = self._clock.now()
        if self._deadline is not None and self._clock is not None and self._clock.now() > self._deadline:
            raise APITimeoutError("the call's deadline passed while the stream was still sending")
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
            self.has_content = self.in_tool_call = True
            call = self.tools.setdefault(chunk.index, {}).setdefault(delta.index, {"id": "", "name": "", "args": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["args"] += delta.arguments
        if chunk.finish_reason is not None and chunk.index in self.tools:
            finish = tool_calls_finish(chunk.finish_reason, True)
            if finish != chunk.finish_reason:
                self.finish[chunk.index] = finish
                return chunk.model_copy(update={"finish_reason": finish})
        return chunk

    def text(self, index: int = 0) -> str:
        """The text delivered so far for choice ``index``."""
        return "".join(self.texts.get(index, ()))

    def delivered_text(self) -> str:
        """Every choice's text and tool-call arguments delivered so far (for estimating a cut stream's cost)."""
        parts = ["".join(t) for t in self.texts.values()]
        parts += [c["name"] + c["args"] for calls in self.tools.values() for c in calls.values()]
        return "".join(parts)

    def response(self, provider: str, model: str) -> ChatResponse:
        """The whole reply, once the stream has ended."""
        indexes = sorted({0, *self.texts, *self.finish, *self.tools})
        choices = [
            Choice.model_construct(
                index=i,
                text=self.text(i),
                finish_reason=tool_calls_finish(self.finish.get(i), i in self.tools),
                tool_calls=[
                    ToolCall(
                        id=c["id"] or tool_call_id(n, c["name"], c["args"]),
                        function=FunctionCall(name=c["name"], arguments=c["args"]),
                    )
                    for n, (_, c) in enumerate(sorted(self.tools.get(i, {}).items()))
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
