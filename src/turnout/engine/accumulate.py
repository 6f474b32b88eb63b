"""`Accumulator`: the final reply of a stream, built from its chunks as they pass to the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._construct import construct
from ..errors import APITimeoutError
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    FinishReason,
    FunctionCall,
    ProviderRateLimit,
    Usage,
    make_tool_call,
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
        "legacy",
        "mark",
        "model",
        "rate_limit",
        "texts",
        "tools",
        "usage",
    )

    def __init__(self, clock: Clock | None = None, deadline: float | None = None) -> None:
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, FinishReason | None] = {}
        self.tools: dict[int, dict[int, dict[str, str]]] = {}
        self.legacy: dict[int, dict[str, str]] = {}  # a legacy `function_call` per choice
        self.usage: Usage | None = None
        self.model: str | None = None
        self.rate_limit: ProviderRateLimit | None = None
        """The provider's rate-limit headers, from the first chunk that carried them."""
        self.has_content = False
        self.in_tool_call = False
        self.first: float | None = None
        """The clock's time when the first chunk came (for time to first chunk), or None."""
        self.mark = 0
        """Where the current piece's text starts in `delivered_text` (after `restart`)."""
        self._clock, self._deadline = clock, deadline

    def add(self, chunk: ChatChunk) -> ChatChunk:
        """Record ``chunk``; return it, its finish reason made ``"tool_calls"`` when its choice called tools.

        Raises:
            APITimeoutError: the call's deadline passed while the stream was still sending.
        """
        if self._clock is not None and (self.first is None or self._deadline is not None):
            self._tick(self._clock.now())
        text, index, finish = chunk.text, chunk.index, chunk.finish_reason
        if text:
            texts = self.texts.get(index)
            if texts is None:
                self.texts[index] = [text]
            else:
                texts.append(text)
            self.has_content = True
        if chunk.model:
            self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.rate_limit is not None:
            self.rate_limit = chunk.rate_limit
        if chunk.tool_calls or chunk.function_call is not None:
            self._add_calls(chunk)
        if finish is not None:
            self.finish[index] = finish
            if index in self.tools and (called := tool_calls_finish(finish, True)) != finish:
                self.finish[index] = called
                return chunk.model_copy(update={"finish_reason": called})
        return chunk

    def _tick(self, now: float) -> None:
        """Note the first chunk's time; end a stream still sending past the call's deadline."""
        if self.first is None:
            self.first = now
        if self._deadline is not None and now > self._deadline:
            raise APITimeoutError("the call's deadline passed while the stream was still sending")

    def _add_calls(self, chunk: ChatChunk) -> None:
        """Join tool-call fragments (and a legacy ``function_call``'s) by index."""
        self.has_content = self.in_tool_call = True
        for delta in chunk.tool_calls:
            call = self.tools.setdefault(chunk.index, {}).setdefault(
                delta.index, {"id": "", "name": "", "args": "", "type": "function"}
            )
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["args"] += delta.arguments
            call["type"] = delta.type or call["type"]
        if chunk.function_call is not None:
            legacy = self.legacy.setdefault(chunk.index, {"name": "", "args": ""})
            legacy["name"] = chunk.function_call.name or legacy["name"]
            legacy["args"] += chunk.function_call.arguments

    def text(self, index: int = 0) -> str:
        """The text delivered so far for choice ``index``."""
        return "".join(self.texts.get(index, ()))

    def delivered_text(self) -> str:
        """Every choice's text and tool-call arguments delivered so far (for estimating a cut stream's cost)."""
        parts = ["".join(t) for t in self.texts.values()]
        parts += [c["name"] + c["args"] for calls in self.tools.values() for c in calls.values()]
        parts += [c["name"] + c["args"] for c in self.legacy.values()]
        return "".join(parts)

    def piece_text(self) -> str:
        """What `delivered_text` holds since the last `restart` (the piece of a resumed stream)."""
        return self.delivered_text()[self.mark :]

    def restart(self) -> None:
        """A continuation request follows: keep the text, forget the last piece's usage and finish."""
        self.mark = len(self.delivered_text())
        self.usage = None
        self.finish.clear()

    def response(self, provider: str, model: str) -> ChatResponse:
        """The whole reply, once the stream has ended."""
        indexes = sorted({0, *self.texts, *self.finish, *self.tools, *self.legacy})
        choices = [
            construct(  # every field given: the fast builder
                Choice,
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
                logprobs=None,
            )
            for i in indexes
        ]
        return construct(  # every field given (accepted() rebuilds it with the cost and attempts anyway)
            ChatResponse,
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
            parsed=None,
            logprobs=None,
            function_call=choices[0].function_call,
            from_cache=False,
            tags=None,
            rate_limit=self.rate_limit,
        )


def _usage_warnings(usage: Usage | None) -> list[str]:
    """Say when a stream's usage is missing, or lacks the completion count (TGI text mode without details)."""
    if usage is None:
        return ["the server sent no usage for this stream"]
    if usage.completion_tokens is None:
        return ["the server sent no completion token count for this stream"]
    return []
