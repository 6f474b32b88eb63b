"""What a fake TGI server answers: a `Reply` resolved against a ``/generate`` or chat request.

Pure functions: `resolve_text` / `text_events` for raw generation, `resolve_chat` /
`chat_message` / `chat_events` for the Messages API, and the checks and headers around them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.testing._script import Reply
from turnout.testing._tgi_bytes import EOS, GenerateRequest, chat_chunk, generate_body, last_user_text, stream_event
from turnout.testing._wire import message_text, split_text

__all__ = [
    "ChatGen",
    "TextGen",
    "chat_events",
    "chat_message",
    "check_response_format",
    "resolve_chat",
    "resolve_text",
    "text_body",
    "text_events",
    "timing_headers",
]

_TGI_FINISH = {None: "eos_token", "stop": "eos_token"}  # OpenAI's word -> TGI's
_GRAMMARS = ("json", "json_object", "regex", "json_schema")


@dataclass
class TextGen:
    """A raw generation: the text, its streamed tokens and the numbers of ``details``."""

    text: str
    tokens: list[str]
    finish: str
    generated: int
    prompt: int
    seed: Any
    details: bool


def resolve_text(reply: Reply, req: GenerateRequest) -> TextGen:
    """What the fake model generates for ``req`` (echoing the last ``[INST]`` turn by default).

    A prompt that ends with the start of the scripted answer after its last ``[/INST]`` (a
    continuation: the prompt plus the text already written) gets only the rest of that answer.
    """
    text = reply.text if reply.text is not None else last_user_text(req.inputs)
    written = req.inputs.rpartition("[/INST]")[2].strip()  # an answer already begun: the model goes on from it
    if written and text.startswith(written):
        text = text[len(written) :].lstrip()  # its first token carries the space again
    finish = _TGI_FINISH.get(reply.finish_reason, reply.finish_reason or "eos_token")
    tokens = split_text(text, reply.chunks)
    generated = reply.completion_tokens
    if generated is None:
        generated = len(tokens) + (finish == "eos_token")  # TGI counts the EOS it generated
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else req.input_length
    details = bool(req.parameters.get("details")) and reply.usage
    return TextGen(text, tokens, finish, generated, prompt, req.parameters.get("seed"), details)


def text_body(gen: TextGen) -> dict[str, Any]:
    """The ``/generate`` reply (``details`` only when asked for)."""
    body = generate_body(gen.text, gen.tokens, gen.finish, gen.generated, gen.seed)
    if not gen.details:
        body.pop("details")
    return body


def text_events(gen: TextGen) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``/generate_stream`` events: one per token, then the last one with ``generated_text`` and ``details``.

    Llama's first streamed token keeps the space before its word; the last event's token is the
    special ``</s>`` when generation stopped at EOS.
    """
    pieces = [" " + gen.tokens[0], *gen.tokens[1:]] if gen.tokens else []
    last = EOS if gen.finish == "eos_token" or not pieces else pieces.pop()
    details = {"finish_reason": gen.finish, "generated_tokens": gen.generated, "input_length": gen.prompt}
    final = {"generated_text": gen.text, "details": {**details, "seed": gen.seed} if gen.details else None}
    events = [stream_event(i, piece) for i, piece in enumerate(pieces)]
    return events, [stream_event(len(events), last, special=last == EOS, final=final)]


def timing_headers(req: GenerateRequest, gen: TextGen, reply: Reply) -> dict[str, str]:
    """The ``x-*`` headers TGI puts on a non-stream reply (times in ms, compute time in s)."""
    return {
        "x-compute-type": "gpu+optimized",
        "x-compute-time": "0.012",
        "x-compute-characters": str(len(req.inputs)),
        "x-total-time": "12",
        "x-validation-time": "1",
        "x-queue-time": "0",
        "x-inference-time": "11",
        "x-time-per-token": str(11 // max(gen.generated, 1)),
        "x-prompt-tokens": str(gen.prompt),
        "x-generated-tokens": str(gen.generated),
        **reply.headers,
    }


def check_response_format(fmt: Any) -> str | None:
    """Why ``fmt`` is not TGI's ``GrammarType`` (tagged ``type`` + ``value``), or None when it is."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in _GRAMMARS:
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        return f"unknown variant `{kind}`, expected one of `json`, `json_object`, `regex`, `json_schema`"
    if "value" not in fmt:
        return "missing field `value`"
    return None


@dataclass
class ChatGen:
    """A Messages API answer: text or tool calls, finish reason and usage."""

    model: str
    text: str
    finish: str
    prompt: int
    completion: int
    usage: dict[str, int] | None
    calls: list[dict[str, Any]] = field(default_factory=list)


def resolve_chat(
    reply: Reply,
    messages: list[dict[str, Any]],
    prompt: int,
    model: str,
    *,
    numeric_ids: bool = False,
    object_arguments: bool = False,
) -> ChatGen:
    """What the fake model answers to a chat (echoing the last user message by default).

    A call without an id gets its position: ``"0"``, or ``0`` with ``numeric_ids`` (TGI 1.4).
    ``object_arguments`` sends JSON-text arguments as an object (TGI 1.4-3.0).
    """
    calls = [
        {
            "id": (i if numeric_ids else str(i)) if c.id is None or c.id == "" else c.id,
            "type": "function",
            "function": {"description": None, "name": c.name, "arguments": _arguments(c.arguments, object_arguments)},
        }
        for i, c in enumerate(reply.tool_calls or ())
    ]
    users = [m for m in messages if m.get("role") == "user"]
    text = reply.text
    if text is None:
        text = "" if calls or not users else message_text(users[-1].get("content"))
    completion = reply.completion_tokens
    if completion is None:
        completion = len(split_text(text, None)) + len(calls)
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    finish = reply.finish_reason or ("tool_calls" if calls else "stop")
    return ChatGen(reply.model or model, text, finish, prompt, completion, usage if reply.usage else None, calls)


def _arguments(arguments: str | Mapping[str, Any], as_object: bool) -> Any:
    if not isinstance(arguments, str):
        return dict(arguments)
    return json.loads(arguments or "{}") if as_object else arguments


def chat_message(gen: ChatGen) -> dict[str, Any]:
    """The assistant message of a non-stream reply."""
    if gen.calls:
        return {"role": "assistant", "tool_calls": gen.calls}
    return {"role": "assistant", "content": gen.text}


def chat_events(
    gen: ChatGen, created: int, chunks: int | None, include_usage: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stream chunks: content (or tool-call) deltas, then the finish chunk and the usage chunk."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": p} for p in split_text(gen.text, chunks)]
    for index, call in enumerate(gen.calls):
        function = {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}
        tool = {"index": index, "id": call["id"], "type": "function", "function": function}
        deltas.append({"role": "assistant", "tool_calls": [tool]})
    events = [chat_chunk(gen.model, created, d) for d in deltas]
    tail = [chat_chunk(gen.model, created, {"role": "assistant", "content": ""}, gen.finish)]
    if include_usage and gen.usage is not None:
        tail.append(chat_chunk(gen.model, created, None, usage=gen.usage))
    return events, tail
