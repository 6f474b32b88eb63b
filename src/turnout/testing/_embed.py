"""``POST /v1/embeddings`` of `FakeServer`: OpenAI's and vLLM's wire format, deterministic vectors.

- vllm flavour with ``runner="generate"`` (the default): the route does not exist, so the answer
  is FastAPI's 404 ``{"detail":"Not Found"}``, as vLLM 0.32 serving a generation model answers
  (seen 2026-11-27). With ``runner="pooling"`` (``vllm serve --runner pooling``) embeddings are served
  and chat is the 404 instead. Replies and errors copy what the real server sent (seen
  2026-11-27): ``id`` ``embd-<hex>``, ``usage`` with ``completion_tokens: 0``, 400 "You must pass
  at least one prompt", 400 for ``dimensions`` on a model without Matryoshka support, the
  context-length error for an input over ``max_model_len``, and the model 404 without aliases.
- openai flavour: every model whose id contains "embedding" is served; another (a chat model)
  gets 403 "You are not allowed to generate embeddings from this model" (what users reported in
  2023; approximate). Invalid input (empty list or string, over 2048 items) is 400 "'$.input'
  is invalid".

Vectors are unit length, derived from a hash of (model, text): the same text always gets the
same vector, and ``dimensions`` truncates and renormalises (like text-embedding-3).
``encoding_format: "base64"`` answers little-endian float32 in base64. Scripted faults
(`Fault`) are consumed as for chat; a scripted `Reply` is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import struct
import time
from typing import TYPE_CHECKING, Any

from turnout.testing import _errors
from turnout.testing._chat import error_context
from turnout.testing._errors import WireError, _error
from turnout.testing._script import Fault
from turnout.testing._wire import count_tokens, dumps

if TYPE_CHECKING:
    from turnout.testing._openai_handler import OpenAIHandler, OpenAIWireServer
    from turnout.testing._openai_server import FakeServer
    from turnout.testing._scripted_server import RecordedRequest

__all__ = ["DEFAULT_DIMENSIONS", "serves_embeddings", "vector"]

#: Length of the fake vectors when the request sets no ``dimensions``.
DEFAULT_DIMENSIONS = 16
_OPENAI_MAX_INPUTS = 2048
_INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


def vector(model: str, text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake server's unit-length vector for ``text`` under ``model``.

    Tests compare it with what a client received: values are float32, so base64 replies decode exactly.
    """
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{model}\0{text}\0{counter}".encode()).digest()
        values.extend(b / 127.5 - 1.0 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def serves_embeddings(fake: FakeServer) -> bool:
    """Whether ``fake`` has an embeddings route (OpenAI always; vLLM only as a pooling server)."""
    return fake.flavor == "openai" or fake.runner == "pooling"


def answer(handler: OpenAIHandler, record: RecordedRequest) -> None:
    """Answer one ``POST /v1/embeddings`` on ``handler``'s connection."""
    fake = handler.fake
    body = record.json if isinstance(record.json, dict) else {}
    model = body.get("model")
    model = model if isinstance(model, str) else ""
    problem = _check(fake, body, model)
    if problem is not None:
        handler._send_error(problem)
        return
    item = fake._next(model)
    if isinstance(item, Fault) and (item.is_error or item.kind == "drop"):
        if item.kind == "drop":
            handler.close_connection = True
            return
        handler._send_error(_errors.render_fault(item, error_context(fake, model)))
        return
    texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
    handler._send(200, dumps(_reply(fake, model, texts, body), fake.flavor))


def _check(fake: OpenAIWireServer, body: dict[str, Any], model: str) -> WireError | None:
    return _check_vllm(fake, body, model) if fake.flavor == "vllm" else _check_openai(fake, body, model)


def _check_vllm(fake: OpenAIWireServer, body: dict[str, Any], model: str) -> WireError | None:
    ctx = error_context(fake, model)
    texts = body.get("input")
    if not fake._serves(model):
        return _error(ctx, 404, f"The model `{model}` does not exist.")
    if not isinstance(texts, str | list) or not texts:
        return _error(ctx, 400, "You must pass at least one prompt", "BadRequestError")
    if body.get("dimensions") is not None:
        return _error(
            ctx,
            400,
            f"Model '{model}' does not support Matryoshka embeddings; dimensions must be unset "
            f"(received dimensions={body['dimensions']}).",
            "BadRequestError",
        )
    limit = fake.max_model_len
    for text in [texts] if isinstance(texts, str) else texts:
        if limit is not None and isinstance(text, str) and count_tokens(text) + 1 > limit:
            return _errors.context_error(ctx, limit, count_tokens(text) + 1)
    return None


def _check_openai(fake: OpenAIWireServer, body: dict[str, Any], model: str) -> WireError | None:
    ctx = error_context(fake, model)
    texts = body.get("input")
    if "embedding" not in model:
        return _error(ctx, 403, "You are not allowed to generate embeddings from this model")
    if not fake._serves(model):
        return _errors.render_fault(Fault.not_found(model), ctx)
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, list) or not items or len(items) > _OPENAI_MAX_INPUTS:
        return _errors.bad_request(ctx, _INVALID_INPUT)
    if not all(isinstance(t, str) and t for t in items):
        return _errors.bad_request(ctx, _INVALID_INPUT)
    return None


def _reply(fake: OpenAIWireServer, model: str, texts: list[str], body: dict[str, Any]) -> dict[str, Any]:
    dims = body.get("dimensions") or fake.embedding_dimensions
    encoding = body.get("encoding_format") or "float"
    data = []
    for index, text in enumerate(texts):
        values = vector(model, text, dims)
        embedding: list[float] | str = values
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_tokens(text) + (1 if fake.flavor == "vllm" else 0) for text in texts)  # vLLM adds BOS
    if fake.flavor == "vllm":
        usage = {
            "prompt_tokens": tokens,
            "total_tokens": tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        }
        return {
            "id": f"embd-{secrets.token_hex(8)}",
            "object": "list",
            "created": int(time.time()),
            "model": model,
            "data": data,
            "usage": usage,
        }
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
