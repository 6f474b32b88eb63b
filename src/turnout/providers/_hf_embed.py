"""Embeddings on Hugging Face through ``InferenceClient.feature_extraction`` (huggingface_hub 2.4).

With ``base_url`` (a Text Embeddings Inference server or an Inference Endpoint running one),
huggingface_hub posts ``{"inputs": [...], ...parameters}`` to the server root, which TEI
answers with one float list per input. With ``provider`` the HF router's provider is asked
for ``model``. huggingface_hub returns a numpy array (numpy is required) and no response
headers, so the token count is unknown: ``usage`` counts are None and so is ``cost``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..embeddings import EmbeddingRequest, EmbeddingResponse
from ..errors import BadRequestError, ConfigError, ResponseValidationError
from ..money import Usage

if TYPE_CHECKING:
    from huggingface_hub import AsyncInferenceClient, InferenceClient

    from ._hf_call import HubCalls

__all__ = ["aembed", "embed"]

#: ``extra_body`` keys passed on to ``feature_extraction`` (TEI's own parameters).
OPTIONS = frozenset({"normalize", "prompt_name", "truncate", "truncation_direction"})


def _kwargs(calls: HubCalls, request: EmbeddingRequest) -> dict[str, Any]:
    kwargs = calls._client_kwargs(None, text=True)  # base_url: the server root, where TEI embeds
    kwargs["headers"] = {**kwargs["headers"], **(request.extra_headers or {})}
    if request.timeout is not None:
        kwargs["timeout"] = request.timeout
    return kwargs


def _arguments(calls: HubCalls, model: str, request: EmbeddingRequest) -> dict[str, Any]:
    extra = dict(request.extra_body or {})
    unknown = sorted(set(extra) - OPTIONS)
    if unknown:
        raise BadRequestError(
            f"extra_body keys {unknown} are not feature_extraction options (use: {', '.join(sorted(OPTIONS))})",
            provider=calls.name,
            model=model,
        )
    if request.dimensions is not None:
        extra["dimensions"] = request.dimensions
    if calls.config.base_url is None:
        extra["model"] = model  # the router maps the Hub id; with base_url the URL is the model
    return extra


def _decode(calls: HubCalls, model: str, output: Any) -> EmbeddingResponse:
    rows = output.tolist() if hasattr(output, "tolist") else output
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ResponseValidationError(
            "feature extraction did not return one vector per input (is this a pooled embedding model?)",
            provider=calls.name,
            model=model,
        )
    if rows and rows[0] and isinstance(rows[0][0], list):
        raise ResponseValidationError(
            "feature extraction returned token-level vectors, not one per input: serve a sentence-embedding model",
            provider=calls.name,
            model=model,
        )
    return EmbeddingResponse(vectors=cast("list[list[float]]", rows), usage=Usage(), provider=calls.name, model=model)


def _numpy(calls: HubCalls) -> None:
    try:
        import numpy  # noqa: F401  # huggingface_hub returns embeddings as numpy arrays
    except ImportError as exc:
        raise ConfigError(
            f"providers.{calls.name}: embeddings through huggingface_hub need numpy: pip install 'turnout[huggingface]'"
        ) from exc


def embed(calls: HubCalls, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
    """Embed one batch with ``InferenceClient.feature_extraction``."""
    _numpy(calls)
    arguments = _arguments(calls, model, request)
    with cast("InferenceClient", calls.hub.InferenceClient(**_kwargs(calls, request))) as client:
        output = calls._call(model, lambda: client.feature_extraction(request.input, **arguments))
    return _decode(calls, model, output)


async def aembed(calls: HubCalls, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
    """Async twin of `embed` (``AsyncInferenceClient.feature_extraction``)."""
    _numpy(calls)
    arguments = _arguments(calls, model, request)
    async with cast("AsyncInferenceClient", calls.hub.AsyncInferenceClient(**_kwargs(calls, request))) as client:
        output = await calls._acall(model, lambda: client.feature_extraction(request.input, **arguments))
    return _decode(calls, model, output)
