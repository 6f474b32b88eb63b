"""The fast path of the OpenAI wire: text-only replies and chunks decoded from plain JSON.

Most replies and stream events carry only text. They are read here with exact type checks,
without validating them into the wire models of `_openai_wire`; anything else (tool calls,
logprobs, errors, a field of an unexpected type) returns None and takes the validated path.
"""

from __future__ import annotations

from typing import Literal

from .._construct import builder, construct
from ..types import ChatChunk, ChatResponse, Choice, FinishReason, Usage
from ._tgi_words import TGI_FINISH_REASONS

__all__ = ["finish_reason_from_wire", "make_reply", "plain_chunks", "plain_completion"]

#: Finish-reason words -> turnout's `FinishReason`: OpenAI's, the ``end_turn`` / ``max_tokens`` of
#: Anthropic's API that compatible gateways pass on (https://docs.anthropic.com/en/api/messages),
#: and TGI's (its Messages API sends them too).
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "function_call",  # the legacy `functions` API (message.function_call)
    "content_filter": "content_filter",
    "error": "error",
    **TGI_FINISH_REASONS,
}


def finish_reason_from_wire(value: str | None) -> FinishReason | None:
    """Normalise a server's finish reason (unknown words become ``"other"``)."""
    if value is None:
        return None
    return _FINISH_REASONS.get(value, "other")


def make_reply(
    choices: list[Choice], usage: Usage, model: str, id: str | None, provider: str, request_id: str | None
) -> ChatResponse:
    first = choices[0]
    return construct(
        ChatResponse,
        text=first.text,
        choices=choices,
        usage=usage,
        cost=None,
        provider=provider,
        model=model,
        attempts=[],
        finish_reason=first.finish_reason,
        tool_calls=first.tool_calls,
        id=id,
        request_id=request_id,
        warnings=[],
        parsed=None,
        logprobs=first.logprobs,
        function_call=first.function_call,
        from_cache=False,
        tags=None,
        rate_limit=None,
    )


def plain_completion(body: object, provider: str, model: str, request_id: str | None) -> ChatResponse | None:
    """The reply of a text-only completion, or None when it needs the validated path.

    Text-only: a JSON object whose choices have no tool calls, legacy function call or logprobs,
    every field of the expected type (integers that are ints, not floats or text). Most replies
    are; the others (and anything odd, errors included) are validated into the wire models.
    """
    if type(body) is not dict:
        return None
    wire_id, wire_model, wire_choices = body.get("id"), body.get("model"), body.get("choices")
    if not (wire_id is None or type(wire_id) is str) or not (wire_model is None or type(wire_model) is str):
        return None
    if type(wire_choices) is not list or not wire_choices:
        return None
    usage = _usage(body.get("usage"))
    if usage is None:
        return None
    choices = []
    for choice in wire_choices:
        if type(choice) is not dict:
            return None
        message, index, finish = choice.get("message"), choice.get("index", 0), choice.get("finish_reason")
        if type(message) is not dict or type(index) is not int or choice.get("logprobs") is not None:
            return None
        text = message.get("content")
        if message.get("tool_calls") is not None or message.get("function_call") is not None:
            return None
        if not (text is None or type(text) is str) or not (finish is None or type(finish) is str):
            return None
        choices.append(
            construct(
                Choice,
                index=index,
                text=text or "",
                finish_reason=finish_reason_from_wire(finish),
                tool_calls=[],
                logprobs=None,
                function_call=None,
            )
        )
    return make_reply(choices, usage, wire_model or model, wire_id, provider, request_id)


def _usage(usage: object) -> Usage | None:
    """A usage object whose counts are all ints (or absent), or None when it needs the validated path."""
    if usage is None:
        return Usage()
    if type(usage) is not dict:
        return None
    prompt, completion, total = usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    cached = _detail(usage.get("prompt_tokens_details"), "cached_tokens")
    reasoning = _detail(usage.get("completion_tokens_details"), "reasoning_tokens")
    if cached is False or reasoning is False:
        return None
    for count in (prompt, completion, total):
        if count is not None and type(count) is not int:
            return None
    return construct(
        Usage,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        estimated=False,
    )


def _detail(details: object, name: str) -> int | None | Literal[False]:
    """``details[name]`` when it is an int or absent; False when it needs the validated path."""
    if details is None:
        return None
    if type(details) is not dict:
        return False
    value = details.get(name)
    return value if value is None or type(value) is int else False


def plain_chunks(event: object) -> list[ChatChunk] | None:
    """The chunks of a text-only event, or None when it needs the validated path.

    Text-only: a JSON object without ``error`` or tool calls, every field of the expected type
    (a usage's counts ints). Most events of a stream are, its usage event too; the others (and
    anything odd) are validated. Usage rides on the last choice's chunk, or on a chunk of its own
    when the event has no choices, as on the validated path. One function, every check inline: it
    runs for nearly every chunk of a stream.
    """
    if type(event) is not dict or event.get("error") is not None:
        return None
    model, choices, usage = event.get("model"), event.get("choices", []), event.get("usage")
    if not (model is None or type(model) is str) or type(choices) is not list:
        return None
    if usage is not None and (usage := _usage(usage)) is None:
        return None
    if usage is not None and not choices:
        choices = [{}]  # usage alone: one chunk with no text, as an empty choice gives
    make = builder(ChatChunk)
    chunks = []
    last = len(choices) - 1
    for n, choice in enumerate(choices):
        if type(choice) is not dict:
            return None
        delta, index, finish = choice.get("delta") or {}, choice.get("index", 0), choice.get("finish_reason")
        if (
            type(delta) is not dict
            or delta.get("tool_calls")
            or delta.get("function_call")
            or type(index) is not int
            or choice.get("logprobs")
        ):
            return None
        text = delta.get("content")
        if not (text is None or type(text) is str) or not (finish is None or type(finish) is str):
            return None
        chunks.append(
            make(
                text=text,
                index=index,
                finish_reason=None if finish is None else finish_reason_from_wire(finish),
                tool_calls=[],
                usage=usage if n == last else None,  # running counts (vLLM continuous_usage_stats) ride along
                model=model,
                logprobs=None,
                function_call=None,
                rate_limit=None,
            )
        )
    return chunks
