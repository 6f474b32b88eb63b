"""The bytes a fake server sends on success: completions, stream chunks, model lists, token counts.

Two flavors share the chat-completions shape and differ in details:

- `openai`: pretty-printed JSON bodies; `refusal`/`annotations` in messages; `service_tier`
  "default"; stream chunks carry `usage: null`; the finish reason comes in its own chunk with
  `delta: {}`.
- `vllm`: compact JSON; vLLM's extra fields (`stop_reason`, `token_ids`, `prompt_logprobs`, …);
  `system_fingerprint` "vllm-0.32.0-…"; stream chunks have no `usage` key; the finish reason rides
  on the last content chunk.

The fake tokenizer is deterministic: a token is a run of word characters or one other
non-space character.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "DONE",
    "VLLM_VERSION",
    "Flavor",
    "Generation",
    "StreamPlan",
    "chat_token_ids",
    "completion_body",
    "count_chat_tokens",
    "count_tokens",
    "dumps",
    "message_text",
    "model_card",
    "models_body",
    "new_completion_id",
    "new_request_id",
    "new_tool_call_id",
    "split_text",
    "sse",
    "stream_plan",
    "token_ids",
]

#: Which server a `FakeServer` imitates.
Flavor: TypeAlias = Literal["openai", "vllm"]

VLLM_VERSION = "0.32.0"
#: The stream terminator.
DONE = b"data: [DONE]\n\n"

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"\s*\S+")
_ALNUM = string.ascii_letters + string.digits
#: Tokens added around each chat message, and once to prime the assistant's reply.
_PER_MESSAGE = 3
_PRIMING = 3
_OPENAI_FINGERPRINT = "fp_" + secrets.token_hex(5)
_VLLM_FINGERPRINT = f"vllm-{VLLM_VERSION}-{secrets.token_hex(4)}"
#: Tool-call arguments are streamed in fragments of this many characters.
_ARGUMENT_FRAGMENT = 8


def count_tokens(text: str) -> int:
    """Count tokens with the fake tokenizer: runs of word characters, and every other non-space.

    Args:
        text: Any text.

    Returns:
        The number of tokens; `count_tokens("Hello, world!") == 4`.
    """
    return len(_TOKEN_RE.findall(text))


def message_text(content: Any) -> str:
    """The text of a message's `content`: a string, a list of parts (text parts joined) or null."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _message_words(message: Mapping[str, Any]) -> list[str]:
    words = _TOKEN_RE.findall(str(message.get("role", "")))
    words += _TOKEN_RE.findall(message_text(message.get("content")))
    if isinstance(message.get("name"), str):
        words += _TOKEN_RE.findall(message["name"])
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    legacy = message.get("function_call")
    for part in [c.get("function") or c.get("custom") for c in calls] + [legacy]:
        if isinstance(part, dict):
            text = part.get("arguments", part.get("input", ""))
            words += _TOKEN_RE.findall(f"{part.get('name', '')} {text}")
    return words


def count_chat_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Count a chat prompt the way the fake server does for `usage.prompt_tokens` and `/tokenize`.

    Each message costs 3 + the tokens of its role, content, name and tool calls; the prompt costs
    3 more for priming the reply.

    Args:
        messages: Chat messages in the OpenAI request shape.

    Returns:
        The prompt token count.
    """
    return sum(_PER_MESSAGE + len(_message_words(m)) for m in messages) + _PRIMING


def token_ids(text: str) -> list[int]:
    """Deterministic fake token ids for `text`, one per `count_tokens` token."""
    return [_token_id(word) for word in _TOKEN_RE.findall(text)]


def chat_token_ids(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """Fake token ids for a chat prompt; `len(chat_token_ids(m)) == count_chat_tokens(m)`."""
    ids: list[int] = []
    for message in messages:
        ids += [1, 2, 3] + [_token_id(word) for word in _message_words(message)]
    return ids + [1, 4, 3]


def _token_id(word: str) -> int:
    return 10 + zlib.crc32(word.encode()) % 32000


def new_request_id() -> str:
    """An OpenAI-style `x-request-id` value: `req_` and 32 hex digits."""
    return "req_" + secrets.token_hex(16)


def new_completion_id(flavor: Flavor) -> str:
    """A completion id: `chatcmpl-` and 29 letters/digits (openai) or 16 hex digits (vllm)."""
    if flavor == "vllm":
        return "chatcmpl-" + secrets.token_hex(8)
    return "chatcmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29))


def new_tool_call_id(flavor: Flavor) -> str:
    """A tool-call id: `call_` and 24 letters/digits (openai) or `chatcmpl-tool-` and hex (vllm)."""
    if flavor == "vllm":
        return "chatcmpl-tool-" + secrets.token_hex(8)
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def dumps(obj: Any, flavor: Flavor, *, indent: int | None = 2) -> bytes:
    """Serialize a JSON body as the flavor does: openai indented, vllm compact."""
    if flavor == "vllm":
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    return json.dumps(obj, ensure_ascii=False, indent=indent).encode()


def sse(obj: Any) -> bytes:
    """One server-sent event: `data: <compact JSON>` and a blank line."""
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def split_text(text: str, chunks: int | None) -> list[str]:
    """Split `text` into stream deltas that join back to it exactly.

    Args:
        text: The content.
        chunks: `None` gives one delta per word (leading whitespace kept with the word); a number
            gives that many pieces of nearly equal length (fewer if the text is shorter).

    Returns:
        The deltas; `[]` for empty text.
    """
    if not text:
        return []
    if chunks is None:
        words = _WORD_RE.findall(text)
        if not words:
            return [text]
        words[-1] += text[sum(map(len, words)) :]
        return words
    size = math.ceil(len(text) / min(chunks, len(text)))
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class Generation:
    """A `Reply` resolved against one request: exactly what the fake model answered."""

    model: str
    content: str | None
    finish_reason: str
    usage: dict[str, Any] | None
    n: int = 1
    chunks: int | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    function_call: dict[str, Any] | None = None
    logprobs: int | None = None
    """`None`: no logprobs; else the `top_logprobs` count (one entry per stream delta of the content)."""


def _token_logprob(piece: str, top: int) -> dict[str, Any]:
    """A logprobs entry for one piece of content: the piece at -0.25, then `top - 1` alternatives."""
    alternatives = [(piece, -0.25)] + [(f"alt{k}", -2.0 - k) for k in range(1, top)]
    entry: dict[str, Any] = {"token": piece, "logprob": -0.25, "bytes": list(piece.encode())}
    entry["top_logprobs"] = [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in alternatives[:top]]
    return entry


def logprobs_body(gen: Generation, pieces: list[str]) -> dict[str, Any] | None:
    """A choice's `logprobs` object for `pieces` of content (`None` when the request asked for none)."""
    if gen.logprobs is None:
        return None
    return {"content": [_token_logprob(p, gen.logprobs) for p in pieces], "refusal": None}


def _usage_body(gen: Generation, flavor: Flavor) -> dict[str, Any] | None:
    if gen.usage is None:
        return None
    usage = gen.usage
    if flavor == "vllm":
        body: dict[str, Any] = {
            "prompt_tokens": usage["prompt_tokens"],
            "total_tokens": usage["total_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "prompt_tokens_details": usage.get("prompt_tokens_details"),
        }
        if "completion_tokens_details" in usage:
            body["completion_tokens_details"] = usage["completion_tokens_details"]
        return body
    return dict(usage)


def _tool_call_body(call: dict[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {} if call["id"] == "" else {"id": call["id"]}
    if call["type"] == "custom":
        return head | {"type": "custom", "custom": {"name": call["name"], "input": call["arguments"]}}
    return head | {"type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def _tool_calls_body(gen: Generation) -> list[dict[str, Any]]:
    return [_tool_call_body(c) for c in gen.tool_calls]


def _function_call_body(gen: Generation) -> dict[str, Any] | None:
    call = gen.function_call
    return None if call is None else {"name": call["name"], "arguments": call["arguments"]}


def _message_body(gen: Generation, flavor: Flavor) -> dict[str, Any]:
    if flavor == "vllm":
        return {
            "role": "assistant",
            "content": gen.content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": _function_call_body(gen),
            "tool_calls": _tool_calls_body(gen),
            "reasoning": None,
        }
    message: dict[str, Any] = {"role": "assistant", "content": gen.content, "refusal": None}
    if gen.tool_calls:
        message["tool_calls"] = _tool_calls_body(gen)
    if gen.function_call is not None:
        message["function_call"] = _function_call_body(gen)
    message["annotations"] = []
    return message


def _choice_body(gen: Generation, flavor: Flavor, index: int) -> dict[str, Any]:
    pieces = split_text(gen.content or "", gen.chunks)
    choice: dict[str, Any] = {"index": index, "message": _message_body(gen, flavor)}
    choice["logprobs"] = logprobs_body(gen, pieces)
    choice["finish_reason"] = gen.finish_reason
    if flavor == "vllm":
        choice |= {"stop_reason": None, "token_ids": None}
    return choice


def completion_body(gen: Generation, flavor: Flavor, completion_id: str, created: int) -> dict[str, Any]:
    """The non-streaming `chat.completion` object, with `gen.n` identical choices."""
    body: dict[str, Any] = {"id": completion_id, "object": "chat.completion", "created": created}
    body["model"] = gen.model
    body["choices"] = [_choice_body(gen, flavor, i) for i in range(gen.n)]
    usage = _usage_body(gen, flavor)
    if flavor == "vllm":
        body |= {"service_tier": None, "system_fingerprint": _VLLM_FINGERPRINT}
        if usage is not None:
            body["usage"] = usage
        return body | {"prompt_logprobs": None, "prompt_token_ids": None, "kv_transfer_params": None}
    if usage is not None:
        body["usage"] = usage
    return body | {"service_tier": "default", "system_fingerprint": _OPENAI_FINGERPRINT}


@dataclass
class StreamPlan:
    """The events of one stream, `data: [DONE]` not included.

    `head` holds the role chunks, `body` the content and tool-call deltas (the chunks stream faults
    count) and `tail` the finish and usage chunks.
    """

    head: list[dict[str, Any]]
    body: list[dict[str, Any]]
    tail: list[dict[str, Any]]


class _Chunker:
    """Builds `chat.completion.chunk` objects for one stream."""

    def __init__(self, gen: Generation, flavor: Flavor, completion_id: str, created: int) -> None:
        self.flavor = flavor
        self.gen = gen
        self.base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": gen.model,
        }
        if flavor == "openai":
            self.base |= {"service_tier": "default", "system_fingerprint": _OPENAI_FINGERPRINT}

    def chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        content = delta.get("content")
        choice: dict[str, Any] = {"index": index, "delta": delta}
        choice["logprobs"] = logprobs_body(self.gen, [content]) if content else None
        choice["finish_reason"] = finish_reason
        if self.flavor == "vllm" and finish_reason is not None:
            choice |= {"stop_reason": None, "token_ids": None}
        chunk = self.base | {"choices": [choice]}
        return chunk | {"usage": None} if self.flavor == "openai" else chunk

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        if self.flavor == "vllm":
            return self.base | {"choices": [], "usage": usage, "system_fingerprint": _VLLM_FINGERPRINT}
        return self.base | {"choices": [], "usage": usage}


def _fragments(text: str) -> list[str]:
    return [text[i : i + _ARGUMENT_FRAGMENT] for i in range(0, len(text), _ARGUMENT_FRAGMENT)]


def _tool_deltas(index: int, call: dict[str, Any]) -> list[dict[str, Any]]:
    """A call's deltas: id, type and name first, then its arguments (input) in fragments.

    Arguments given as an object are sent whole in the first delta (they cannot be cut).
    """
    key, text = ("custom", "input") if call["type"] == "custom" else ("function", "arguments")
    first: dict[str, Any] = {"index": index} | ({"id": call["id"]} if call["id"] != "" else {})
    arguments = call["arguments"]
    whole = "" if isinstance(arguments, str) else arguments
    deltas = [{"tool_calls": [first | {"type": call["type"], key: {"name": call["name"], text: whole}}]}]
    for fragment in _fragments(arguments) if isinstance(arguments, str) else ():
        deltas.append({"tool_calls": [{"index": index, key: {text: fragment}}]})
    return deltas


def _deltas(gen: Generation, flavor: Flavor) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"content": piece} for piece in split_text(gen.content or "", gen.chunks)]
    for index, call in enumerate(gen.tool_calls):
        deltas += _tool_deltas(index, call)
    if gen.function_call is not None:  # the legacy functions API: name first, then the arguments
        arguments = gen.function_call["arguments"]
        whole = "" if isinstance(arguments, str) else arguments
        deltas.append({"function_call": {"name": gen.function_call["name"], "arguments": whole}})
        for fragment in _fragments(arguments) if isinstance(arguments, str) else ():
            deltas.append({"function_call": {"arguments": fragment}})
    if flavor == "vllm" and not deltas:
        deltas.append({"content": ""})
    return deltas


def stream_plan(gen: Generation, flavor: Flavor, completion_id: str, created: int, include_usage: bool) -> StreamPlan:
    """Plan the chunks of a streamed completion (choices interleave when `gen.n > 1`).

    Args:
        gen: What to stream.
        flavor: The server flavor.
        completion_id: The `id` shared by all chunks.
        created: The `created` timestamp shared by all chunks.
        include_usage: Add the final `choices: []` usage chunk (if `gen.usage` is set).

    Returns:
        The plan.
    """
    chunker = _Chunker(gen, flavor, completion_id, created)
    role: dict[str, Any] = {"role": "assistant", "content": "" if gen.content is not None else None}
    if flavor == "openai":
        role["refusal"] = None
    deltas = _deltas(gen, flavor)
    last = deltas.pop() if flavor == "vllm" else {}
    choices = range(gen.n)
    head = [chunker.chunk(i, dict(role)) for i in choices]
    body = [chunker.chunk(i, delta) for delta in deltas for i in choices]
    tail = [chunker.chunk(i, last, gen.finish_reason) for i in choices]
    usage = _usage_body(gen, flavor)
    if include_usage and usage is not None:
        tail.append(chunker.usage(usage))
    return StreamPlan(head, body, tail)


def with_running_usage(plan: StreamPlan, gen: Generation) -> StreamPlan:
    """VLLM's ``stream_options.continuous_usage_stats``: every chunk carries the counts so far."""
    if gen.usage is None:
        return plan
    prompt, final = gen.usage["prompt_tokens"], gen.usage["completion_tokens"]
    written = ""
    for chunk in [*plan.head, *plan.body, *plan.tail]:
        if not chunk["choices"]:
            continue
        for choice in chunk["choices"]:
            written += choice["delta"].get("content") or ""
        done = any(c.get("finish_reason") for c in chunk["choices"])
        completion = final if done else min(count_tokens(written), final)
        chunk["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}
    return plan


def models_body(models: Sequence[str], flavor: Flavor, max_model_len: int | None, created: int) -> dict[str, Any]:
    """The `GET /v1/models` list (vllm cards carry `max_model_len` and `owned_by` "vllm")."""
    return {"object": "list", "data": [model_card(m, flavor, max_model_len, created) for m in models]}


def model_card(model: str, flavor: Flavor, max_model_len: int | None, created: int) -> dict[str, Any]:
    """One model object, as listed by `GET /v1/models`."""
    if flavor == "openai":
        return {"id": model, "object": "model", "created": created, "owned_by": "system"}
    permission = {
        "id": "modelperm-" + secrets.token_hex(16),
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card: dict[str, Any] = {"id": model, "object": "model", "created": created, "owned_by": "vllm"}
    return card | {"root": model, "parent": None, "max_model_len": max_model_len, "permission": [permission]}
