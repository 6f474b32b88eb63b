"""The bytes a fake TGI server sends: bodies, stream events, ``/tokenize`` and error bodies.

``/info``, ``/generate`` bodies and stream events, Messages API chunks, ``/tokenize``, and
``{"error", "error_type"}`` error bodies, plus the validation of a ``/generate`` request.

Shapes follow TGI 3.3 (https://huggingface.github.io/text-generation-inference/): compact JSON;
``/generate_stream`` events carry
``token`` and, on the last one only, ``generated_text`` and ``details`` (with ``input_length``);
Llama's first streamed token keeps the space before the word, which ``generated_text`` drops; the
chat route's ids are ``""`` and ``system_fingerprint`` is ``"{version}-native"``.

The fake tokenizer: a token is ``<s>``, ``</s>``, a run of word characters, or one other
non-space character; TGI adds BOS (``<s>``) to every input.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = [
    "BOS",
    "EOS",
    "TGI_VERSION",
    "GenerateRequest",
    "TGIError",
    "chat_body",
    "chat_chunk",
    "context_message",
    "dumps",
    "error_body",
    "generate_body",
    "info_body",
    "input_tokens",
    "last_user_text",
    "parse_generate",
    "stream_event",
    "tokenize_body",
    "validation_message",
]

TGI_VERSION = "3.3.6"
BOS, EOS = "<s>", "</s>"
_TOKEN_RE = re.compile(r"</?s>|\w+|[^\w\s]")
#: ``error_type`` TGI sends with each status it produces itself.
_ERROR_TYPES = {422: "validation", 424: "generation", 429: "overloaded", 500: "incomplete_generation"}
_MESSAGES = {
    422: "Input validation error",
    424: "Request failed during generation",
    429: "Model is overloaded",
    500: "Incomplete generation",
}
_GRAMMARS = ("json", "json_object", "regex", "json_schema")


def dumps(obj: Any) -> bytes:
    """Compact JSON, as axum's ``Json`` writes it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _token_id(text: str) -> int:
    return {BOS: 1, EOS: 2}.get(text, 10 + zlib.crc32(text.encode()) % 32000)


def input_tokens(inputs: str) -> list[str]:
    """The fake tokenizer's tokens of ``inputs``, BOS first (TGI adds it)."""
    return [BOS, *_TOKEN_RE.findall(inputs)]


def tokenize_body(inputs: str) -> list[dict[str, Any]]:
    """``POST /tokenize``: one ``{id, text, start, stop}`` per token."""
    tokens, position, body = input_tokens(inputs), 0, []
    for index, text in enumerate(tokens):
        start = inputs.find(text, position) if index else 0
        stop = start + len(text) if index else 0
        position = stop
        body.append({"id": _token_id(text), "text": text, "start": start, "stop": stop})
    return body


def last_user_text(inputs: str) -> str:
    """What the fake model echoes for a raw prompt: the last ``[INST]`` turn without its system block."""
    turn = inputs.rsplit("[INST]", 1)[-1].split("[/INST]", 1)[0]
    return turn.rsplit("<</SYS>>", 1)[-1].strip()


def info_body(model_id: str, max_input_tokens: int, max_total_tokens: int) -> dict[str, Any]:
    """``GET /info`` of a TGI 3.3 server."""
    return {
        "model_id": model_id,
        "model_sha": None,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": max_input_tokens,
        "max_total_tokens": max_total_tokens,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": TGI_VERSION,
        "sha": None,
        "docker_label": None,
    }


@dataclass(frozen=True)
class TGIError(Exception):
    """An error response (or, in a stream, an error event): status, message and ``error_type``."""

    status: int
    message: str
    error_type: str | None = None
    plain: bool = False  # axum's own 422 for a body it cannot deserialize is text/plain


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> dict[str, Any]:
    """``{"error", "error_type"}``; statuses TGI does not produce itself (proxies) carry only ``error``."""
    body: dict[str, Any] = {"error": message or _MESSAGES.get(status) or HTTPStatus(status).phrase}
    kind = error_type or _ERROR_TYPES.get(status)
    if kind is not None:
        body["error_type"] = kind
    return body


def validation_message(detail: str) -> str:
    """TGI's wording of a validation failure (``InferError::ValidationError``)."""
    return f"Input validation error: {detail}"


def context_message(max_total: int, length: int, new: int) -> str:
    """TGI's 422 message for a prompt plus ``max_new_tokens`` over ``max_total_tokens``."""
    detail = f"`inputs` tokens + `max_new_tokens` must be <= {max_total}. Given: {length} `inputs` tokens"
    return validation_message(f"{detail} and {new} `max_new_tokens`")


@dataclass(frozen=True)
class GenerateRequest:
    """A validated ``/generate`` body."""

    inputs: str
    parameters: dict[str, Any]
    stream: bool
    input_length: int
    max_new_tokens: int


def _check_parameters(params: dict[str, Any]) -> str | None:
    temperature, top_p, stop = params.get("temperature"), params.get("top_p"), params.get("stop") or []
    if temperature is not None and temperature <= 0:
        return "`temperature` must be strictly positive"
    if top_p is not None and not 0 < top_p < 1:
        return "`top_p` must be > 0.0 and < 1.0"
    if len(stop) > 4:
        return f"`stop` supports up to 4 stop sequences. Given: {len(stop)}"
    grammar = params.get("grammar")
    if grammar is not None and (not isinstance(grammar, dict) or grammar.get("type") not in _GRAMMARS):
        return 'grammar is not a TGI grammar ({"type": "json" | "regex" | "json_schema", "value": ...})'
    return None


def parse_generate(body: Any, stream: bool, max_input: int, max_total: int) -> GenerateRequest:
    """Validate a ``/generate`` body as TGI does (the limits, then the sampling parameters).

    Raises:
        TGIError: 422 with TGI's message.
    """
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
        raise TGIError(
            422, "Failed to deserialize the JSON body into the target type: missing field `inputs`", plain=True
        )
    params = body.get("parameters") or {}
    if stream and params.get("decoder_input_details"):
        raise TGIError(
            422, validation_message("`decoder_input_details` == true is not supported when streaming tokens")
        )
    inputs = body["inputs"]
    if not inputs:
        raise TGIError(422, validation_message("`inputs` cannot be empty"))
    length = len(input_tokens(inputs))
    if length > max_input:
        raise TGIError(422, validation_message(f"`inputs` must have less than {max_input} tokens. Given: {length}"))
    new = params.get("max_new_tokens") or max_total - length  # TGI 3: "auto", the rest of the window
    if length + new > max_total:
        raise TGIError(422, context_message(max_total, length, new))
    problem = _check_parameters(params)
    if problem is not None:
        raise TGIError(422, validation_message(problem))
    return GenerateRequest(inputs, params, stream or body.get("stream") is True, length, new)


def _token(text: str, special: bool = False) -> dict[str, Any]:
    return {"id": _token_id(text), "text": text, "logprob": -0.25, "special": special}


def stream_event(
    index: int, text: str, *, special: bool = False, final: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One ``/generate_stream`` event; ``final`` holds ``generated_text`` and ``details`` of the last one."""
    event: dict[str, Any] = {"index": index, "token": _token(text, special), "top_tokens": None}
    event |= final or {"generated_text": None, "details": None}
    return event


def generate_body(text: str, tokens: list[str], finish_reason: str, generated: int, seed: Any) -> dict[str, Any]:
    """The ``/generate`` reply with ``details`` (prefill is empty without ``decoder_input_details``)."""
    details = {
        "finish_reason": finish_reason,
        "generated_tokens": generated,
        "seed": seed,
        "prefill": [],
        "tokens": [_token(t) for t in tokens] + ([_token(EOS, True)] if finish_reason == "eos_token" else []),
    }
    return {"generated_text": text, "details": details}


def chat_body(model: str, created: int, message: dict[str, Any], finish: str, usage: Any) -> dict[str, Any]:
    """A Messages API ``chat.completion`` as TGI writes it."""
    body: dict[str, Any] = {
        "object": "chat.completion",
        "id": "",
        "created": created,
        "model": model,
        "system_fingerprint": f"{TGI_VERSION}-native",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def chat_chunk(
    model: str, created: int, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    """A Messages API stream chunk (``delta`` None: the ``choices: []`` usage chunk)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {
        "object": "chat.completion.chunk",
        "id": "",
        "created": created,
        "model": model,
        "system_fingerprint": f"{TGI_VERSION}-native",
        "choices": choices,
        "usage": usage,
    }
