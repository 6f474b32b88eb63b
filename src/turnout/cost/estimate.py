"""What a call will cost, before it is sent: prompt tokens and a low/high range per target.

The prompt is counted exactly where the provider can (vLLM's ``/tokenize`` runs the served
model's own tokenizer and chat template). Elsewhere a heuristic is used and flagged with
``estimated=True``: about four UTF-8 bytes per token plus a few tokens per message. Its high
bound uses a ceiling instead (byte-level tokenizers never make more tokens than bytes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from ..provider import Provider
    from ..types import ChatRequest
    from .prices import Pricing

__all__ = ["CostEstimate", "TargetEstimate", "aestimate_target", "estimate_target", "heuristic_tokens", "worst_case"]

_BYTES_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4
_TOKENS_PRIMING = 3


class TargetEstimate(BaseModel):
    """The estimate for one target of a route."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    provider: str
    model: str
    prompt_tokens: int = Field(description="the prompt's tokens: exact unless `estimated`")
    estimated: bool = Field(description="True when prompt_tokens is a heuristic, not the model's tokenizer")
    max_output_tokens: int | None = Field(description="max_tokens, or what the context window leaves; None: no cap")
    low: Decimal | None = Field(description="cost with no output; None: no price known")
    high: Decimal | None = Field(description="cost with max_output_tokens of output; None: no price or no cap")
    source: str | None = Field(default=None, description="where the price came from")


class CostEstimate(BaseModel):
    """The estimate for every target of a route, in route order."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    targets: list[TargetEstimate]

    @property
    def low(self) -> Decimal | None:
        """The least any target could cost (None when a target's price is unknown)."""
        lows = [t.low for t in self.targets]
        return None if any(v is None for v in lows) else min(v for v in lows if v is not None)

    @property
    def high(self) -> Decimal | None:
        """The most any target could cost (None when a target's price or output cap is unknown)."""
        highs = [t.high for t in self.targets]
        return None if any(v is None for v in highs) else max(v for v in highs if v is not None)


def heuristic_tokens(request: ChatRequest) -> tuple[int, int]:
    """A rough prompt size and a ceiling for it, for providers that cannot count tokens.

    Message contents, names, tool calls, tool definitions and the response format are measured
    as UTF-8 (JSON where they are not text).

    Returns:
        ``(estimate, ceiling)``: UTF-8 bytes / 4 and UTF-8 bytes, each plus per-message overhead.
    """
    size = sum(len(_text(m.model_dump(exclude_none=True)).encode()) for m in request.messages)
    size += len(_text(request.tools or "").encode()) + len(_text(request.response_format or "").encode())
    overhead = _TOKENS_PER_MESSAGE * len(request.messages) + _TOKENS_PRIMING
    return math.ceil(size / _BYTES_PER_TOKEN) + overhead, size + overhead


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(_text(v) for v in value.values())
    return json.dumps(value, ensure_ascii=False, default=str)


def worst_case(pricing: Pricing, targets: Sequence[tuple[Provider, str]], request: ChatRequest) -> Decimal:
    """The most a call could cost on any of its targets, computed without network I/O.

    The prompt is bounded by its UTF-8 size (tokens never outnumber bytes) and the output by
    ``max_tokens`` times ``n``; the answer is the dearest target's high bound.

    Raises:
        ValueError: without ``max_tokens``, or without a price for a target (no bound exists).
    """
    _, prompt = heuristic_tokens(request)
    if request.max_tokens is None:
        raise ValueError("pass max_tokens so its cost can be bounded")
    highs = []
    for provider, model in targets:
        _, high = pricing.bounds(provider, model, prompt, request.max_tokens * (request.n or 1))
        if high is None:
            raise ValueError(f"no price is known for {provider.name}:{model}; add one to [prices]")
        highs.append(high.total)
    return max(highs)


def _build(
    pricing: Pricing,
    provider: Provider,
    model: str,
    request: ChatRequest,
    counted: int | None,
    window: int | None,
) -> TargetEstimate:
    guess, ceiling = heuristic_tokens(request)
    prompt, top = (counted, counted) if counted is not None else (guess, ceiling)
    max_output = request.max_tokens
    if max_output is None and window is not None:
        max_output = max(window - prompt, 0)
    choices = request.n or 1
    low, _ = pricing.bounds(provider, model, prompt, None)
    _, high = pricing.bounds(provider, model, top, None if max_output is None else max_output * choices)
    return TargetEstimate(
        provider=provider.name,
        model=model,
        prompt_tokens=prompt,
        estimated=counted is None,
        max_output_tokens=max_output,
        low=None if low is None else low.total,
        high=None if high is None else high.total,
        source=None if low is None else low.source,
    )


def estimate_target(pricing: Pricing, provider: Provider, model: str, request: ChatRequest) -> TargetEstimate:
    """Estimate one target: count the prompt (exactly where the provider can), then price it.

    Args:
        pricing: the client's prices.
        provider: the target's provider.
        model: the target's model id.
        request: the request that would be sent.

    Returns:
        The target's prompt tokens and cost range.
    """
    return _build(
        pricing, provider, model, request, provider.count_tokens(model, request), provider.context_window(model)
    )


async def aestimate_target(pricing: Pricing, provider: Provider, model: str, request: ChatRequest) -> TargetEstimate:
    """Async twin of `estimate_target`."""
    counted = await provider.acount_tokens(model, request)
    return _build(pricing, provider, model, request, counted, await provider.acontext_window(model))
