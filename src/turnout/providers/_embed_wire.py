"""``POST /embeddings`` of the OpenAI wire format (OpenAI, vLLM, OpenAI-compatible hosts).

Request and reply shapes: https://platform.openai.com/docs/api-reference/embeddings.
``encoding_format: "base64"`` (what the openai SDK sends) makes the reply about four times
smaller; each vector is then little-endian float32, decoded here. A reply with float lists is
accepted whatever was asked, since some hosts ignore the field. What a server says when it has
no embeddings for the model becomes `EmbeddingsNotSupportedError`:

- vLLM serving a generation model has no ``/v1/embeddings`` route: 404 ``{"detail":"Not Found"}``
  (seen on vLLM 0.32: FastAPI's body for any unknown route), unlike its 404 for an unknown
  model, which has the error envelope;
- OpenAI refused embeddings from a chat model with 403 "You are not allowed to generate
  embeddings from this model" (reported by users in 2023; not re-checked).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..embeddings import EmbeddingRequest, EmbeddingResponse
from ..errors import (
    APIStatusError,
    AuthenticationError,
    EmbeddingsNotSupportedError,
    NotFoundError,
    ResponseValidationError,
)
from ..money import Usage

if TYPE_CHECKING:
    from ._http import HTTPProvider

__all__ = ["EMBEDDINGS_PATH", "aembed", "build_body", "embed", "parse_reply", "unsupported"]

EMBEDDINGS_PATH = "/embeddings"
Encoding = Literal["float", "base64"]


class _Item(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    index: int
    embedding: list[float] | str


class _Usage(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    prompt_tokens: int | None = None
    total_tokens: int | None = None


class _Reply(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore")
    data: list[_Item]
    model: str | None = None
    usage: _Usage | None = None


def build_body(model: str, request: EmbeddingRequest, encoding: Encoding) -> bytes:
    """The JSON body for one batch; ``extra_body`` keys override turnout's."""
    body: dict[str, Any] = {"model": model, "input": request.input, "encoding_format": encoding}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    if request.extra_body:
        body.update(request.extra_body)
    return json.dumps(body, separators=(",", ":")).encode()


def _vector(value: list[float] | str) -> list[float]:
    if isinstance(value, list):
        return value
    raw = base64.b64decode(value)
    if len(raw) % 4:
        raise ValueError(f"a base64 embedding of {len(raw)} bytes is not float32")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def parse_reply(raw: bytes, *, provider: str, model: str, request_id: str | None) -> EmbeddingResponse:
    """Decode an embeddings reply: vectors sorted by ``index``, usage with ``completion_tokens`` 0.

    Raises:
        ResponseValidationError: the body is not an embeddings list, or the indexes have gaps.
    """
    try:
        reply = _Reply.model_validate_json(raw)
        items = sorted(reply.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(items))):
            raise ValueError(f"indexes {[item.index for item in items]} are not 0..{len(items) - 1}")
        vectors = [_vector(item.embedding) for item in items]
    except (ValidationError, ValueError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise ResponseValidationError(
            f"unexpected embeddings reply: {detail}", provider=provider, model=model, request_id=request_id
        ) from exc
    usage = reply.usage or _Usage()
    prompt = usage.prompt_tokens
    return EmbeddingResponse(
        vectors=vectors,
        usage=Usage(
            prompt_tokens=prompt,
            completion_tokens=None if prompt is None else 0,
            total_tokens=usage.total_tokens if usage.total_tokens is not None else prompt,
        ),
        provider=provider,
        model=reply.model or model,
        request_ids=[request_id] if request_id else [],
    )


def unsupported(exc: APIStatusError, base_url: str) -> EmbeddingsNotSupportedError | None:
    """The clearer error for a server's "no embeddings here" answer, or None for any other error."""
    route_missing = isinstance(exc, NotFoundError) and exc.error_type is None and exc.message.lower() == "not found"
    refused = isinstance(exc, AuthenticationError) and "embeddings from this model" in exc.message
    if not (route_missing or refused):
        return None
    how = "has no /embeddings route (404)" if route_missing else f"refused: {exc.message}"
    error = EmbeddingsNotSupportedError(
        f"{base_url} does not serve embeddings for {exc.model!r}: it {how}. Route embed() to an embedding "
        "model (vLLM: serve it with --runner pooling --convert embed, or an embedding model)",
        body=exc.body,
        provider=exc.provider,
        model=exc.model,
        status_code=exc.status_code,
        request_id=exc.request_id,
        retryable=False,
    )
    return error


def embed(provider: HTTPProvider, model: str, request: EmbeddingRequest, encoding: Encoding) -> EmbeddingResponse:
    """Send one batch to ``provider`` and decode the reply."""
    try:
        response = provider.post(EMBEDDINGS_PATH, build_body(model, request, encoding), request, model)
    except APIStatusError as exc:
        error = unsupported(exc, provider.base_url)
        if error is None:
            raise
        raise error from exc
    return parse_reply(
        response.content, provider=provider.name, model=model, request_id=response.headers.get("x-request-id")
    )


async def aembed(
    provider: HTTPProvider, model: str, request: EmbeddingRequest, encoding: Encoding
) -> EmbeddingResponse:
    """Async twin of `embed`."""
    try:
        response = await provider.apost(EMBEDDINGS_PATH, build_body(model, request, encoding), request, model)
    except APIStatusError as exc:
        error = unsupported(exc, provider.base_url)
        if error is None:
            raise
        raise error from exc
    return parse_reply(
        response.content, provider=provider.name, model=model, request_id=response.headers.get("x-request-id")
    )
