"""Embeddings: the request and reply types, and how a large input is split into batches.

``client.embed(model=..., input=[...])`` sends the texts along the route in batches of at most
``batch_size`` inputs (the provider's default: 2048 on OpenAI, fewer elsewhere), every batch to
the *same* target, and puts the vectors back in input order. Usage and cost are summed over the
batches. Vectors from different models cannot be compared, so a batch never falls back alone:
when a target fails, the whole input moves on to the next target.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from . import _defaults
from ._checks import NoBoolNumbers, check_headers
from .types import Attempt, Cost, JSONObject, Usage

__all__ = ["EmbeddingRequest", "EmbeddingResponse", "combine", "split"]


class EmbeddingRequest(NoBoolNumbers):
    """One provider-neutral embeddings request (a whole call's input, or one batch of it).

    ``extra_body`` keys are merged into the JSON body (e.g. vLLM's ``truncate_prompt_tokens``);
    for Hugging Face they are passed to ``feature_extraction`` (``normalize``, ``truncate``,
    ``truncation_direction``, ``prompt_name``).
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    input: list[str] = Field(min_length=1, description="the texts to embed, in order")
    dimensions: int | None = Field(default=None, gt=0, description="shorter vectors (text-embedding-3 and later)")
    user: str | None = None
    extra_body: JSONObject | None = None
    extra_headers: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0, le=_defaults.MAX_TIMEOUT)

    @field_validator("extra_headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        return None if headers is None else check_headers(headers)


class EmbeddingResponse(BaseModel):
    """The vectors of every input, in input order, with usage, cost and the attempts made.

    ``usage.completion_tokens`` is 0 when the server counted the input (nothing is generated);
    every count is None when it did not (Hugging Face feature extraction), and so is ``cost``.
    """

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    vectors: list[list[float]]
    usage: Usage
    cost: Cost | None = None
    provider: str = Field(description="the configured provider name that answered")
    model: str = Field(description="the model id that answered, as the server reported it")
    attempts: list[Attempt] = []
    request_ids: list[str] = Field(default=[], description="the server's request id of each batch, when sent")
    tags: dict[str, str] | None = Field(default=None, description="the call's tags= (also in the ledger)")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dimensions(self) -> int:
        """The length of each vector (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0


def split(request: EmbeddingRequest, batch_size: int) -> list[EmbeddingRequest]:
    """``request`` as consecutive batches of at most ``batch_size`` inputs (the same request if it fits)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if len(request.input) <= batch_size:
        return [request]
    return [
        request.model_copy(update={"input": request.input[i : i + batch_size]})
        for i in range(0, len(request.input), batch_size)
    ]


def combine(parts: Sequence[EmbeddingResponse], provider: str, model: str) -> EmbeddingResponse:
    """One reply from the replies of consecutive batches: vectors concatenated, usage summed.

    A count is summed only when every batch reported it; otherwise it is None (`Usage.sum`).
    """
    if len(parts) == 1:
        return parts[0]

    usage = Usage.sum(p.usage for p in parts)
    return EmbeddingResponse(
        vectors=[v for p in parts for v in p.vectors],
        usage=usage,
        provider=provider,
        model=parts[0].model if parts else model,
        request_ids=[r for p in parts for r in p.request_ids],
    )
