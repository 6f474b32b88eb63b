"""The typed result of a comparison, and the arithmetic that sums one model's requests (no I/O)."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import Price, hourly_price
from ..money import USD, USDField, fixed_point

__all__ = ["CompareResult", "JudgeSummary", "ModelResult", "Sample", "percentile", "summarise"]

_THOUSAND = Decimal(1000)
_MILLION = Decimal(1_000_000)

CostBasis = Literal["per-token", "gpu-hour"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Sample(_Frozen):
    """One request of a comparison: what came back, how fast, what it cost and how it scored."""

    id: str = Field(description="the prompt line's id")
    ok: bool
    target: str | None = Field(default=None, description="'provider:model' that answered")
    answer: str | None = None
    score: float | None = Field(default=None, description="1 or 0; None when the line has no expected answer")
    latency: float | None = Field(default=None, description="seconds from sending to the last chunk")
    ttft: float | None = Field(default=None, description="seconds to the first chunk with text")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: USDField | None = None
    error: str | None = None


class ModelResult(_Frozen):
    """One model's numbers over every prompt (and repeat) of a comparison."""

    model: str = Field(description="the --models entry: an alias or 'provider:model'")
    targets: list[str] = Field(description="the 'provider:model' targets that answered")
    requests: int
    errors: int
    skipped: int = Field(default=0, description="requests not sent because the --max-usd budget ran out")
    score: float | None = Field(description="mean score of the answered lines with an expected answer")
    scored: int = Field(description="how many answers were scored")
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    wall_seconds: float = Field(description="from this model's first request to its last reply")
    output_tokens_per_second: float | None = Field(description="completion tokens / wall_seconds, at the concurrency")
    prompt_tokens: int | None = Field(description="None when a reply did not report its usage")
    completion_tokens: int | None
    cost: USDField | None = Field(description="exact total; None (unknown), never 0, when a reply had no price")
    cost_per_1k: USDField | None = Field(description="cost / answered requests x 1,000")
    cost_per_1m: USDField | None = Field(
        description="per 1 M requests: per token, or the GPU hour at the measured rate"
    )
    cost_basis: CostBasis | None = None
    usd_per_hour: USDField | None = Field(default=None, description="a self-hosted target's GPU-hour price")
    error_kinds: dict[str, int] = Field(default_factory=dict)
    samples: list[Sample] = Field(default_factory=list, repr=False)


class JudgeSummary(_Frozen):
    """The judge model's own requests and cost (kept apart from the compared models')."""

    model: str
    requests: int
    errors: int
    unclear: int = Field(description="verdicts that were neither CORRECT nor INCORRECT (not scored)")
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: USDField | None


class CompareResult(_Frozen):
    """What `turnout.compare` returns and ``turnout compare --json`` prints."""

    run_id: str = Field(default_factory=lambda: f"compare-{uuid.uuid4().hex[:12]}")
    started_at: datetime
    prompts: int
    repeat: int
    concurrency: int
    models: list[ModelResult]
    judge: JudgeSummary | None = None

    def to_json(self, *, indent: int | None = 2, samples: bool = True) -> str:
        """JSON in which every amount is a JSON number with all its digits (exact, not a float's)."""
        data = self.model_dump(mode="python", exclude={"models": {"__all__": {"samples"}}} if not samples else None)
        return _dumps(data, indent)


def _dumps(data: Any, indent: int | None) -> str:
    """``json.dumps`` with Decimals written as number literals (``json.loads(parse_float=Decimal)`` reads them back)."""
    mark = f"@{uuid.uuid4().hex}@"

    def default(value: object) -> object:
        if isinstance(value, Decimal):
            return f"{mark}{fixed_point(value)}{mark}"
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    text = json.dumps(data, indent=indent, default=default, ensure_ascii=False)
    return text.replace(f'"{mark}', "").replace(f'{mark}"', "")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated linearly between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _total(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def summarise(
    model: str, samples: Sequence[Sample], wall_seconds: float, prices: dict[str, Price], skipped: int = 0
) -> ModelResult:
    """One model's `ModelResult` from its samples.

    Args:
        model: the --models entry.
        samples: every request sent so far.
        wall_seconds: time from the first request to the last reply.
        prices: the config's ``[prices]`` (for the GPU-hour cost at the measured throughput).
        skipped: requests not sent (the budget ran out).
    """
    answered = [s for s in samples if s.ok]
    scores = [s.score for s in answered if s.score is not None]
    prompt = _total([s.prompt_tokens for s in answered])
    completion = _total([s.completion_tokens for s in answered])
    cost = None if any(s.cost is None for s in answered) else sum((s.cost for s in answered if s.cost), Decimal(0))
    per_1k = None if cost is None or not answered else cost / len(answered) * _THOUSAND
    targets = sorted({s.target for s in answered if s.target})
    rate = completion / wall_seconds if completion is not None and wall_seconds > 0 else None
    per_1m, basis, hourly = _volume(targets, prices, answered, prompt, completion, wall_seconds)
    if per_1m is None and per_1k is not None:
        per_1m, basis = per_1k * _THOUSAND, "per-token"
    latencies = [s.latency for s in answered if s.latency is not None]
    ttfts = [s.ttft for s in answered if s.ttft is not None]
    return ModelResult(
        model=model,
        targets=targets,
        requests=len(samples),
        errors=len(samples) - len(answered),
        skipped=skipped,
        score=sum(scores) / len(scores) if scores else None,
        scored=len(scores),
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        ttft_p50=percentile(ttfts, 50),
        ttft_p95=percentile(ttfts, 95),
        wall_seconds=wall_seconds,
        output_tokens_per_second=rate,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=None if cost is None else USD(cost),
        cost_per_1k=None if per_1k is None else USD(per_1k),
        cost_per_1m=None if per_1m is None else USD(per_1m),
        cost_basis=basis if per_1m is not None else None,
        usd_per_hour=hourly,
        error_kinds=dict(Counter((s.error or "").split(":")[0] for s in samples if not s.ok)),
        samples=list(samples),
    )


def _volume(
    targets: list[str],
    prices: dict[str, Price],
    answered: Sequence[Sample],
    prompt: int | None,
    completion: int | None,
    wall_seconds: float,
) -> tuple[Decimal | None, CostBasis | None, Decimal | None]:
    """Per 1 M requests for one self-hosted target priced by the hour, at the throughput this run measured.

    The configured ``tokens_per_second`` is replaced by ``completion_tokens / wall_seconds``;
    ``utilization`` and ``input_weight`` are kept (see docs/compare.md).
    """
    price = prices.get(targets[0]) if len(targets) == 1 else None
    if price is None or price.usd_per_hour is None:
        return None, None, None
    if prompt is None or not completion or wall_seconds <= 0:
        return None, "gpu-hour", price.usd_per_hour
    measured = Decimal(completion) / Decimal(repr(wall_seconds))
    output_per_million = hourly_price(price.usd_per_hour, measured, price.utilization)
    run_cost = (prompt * price.input_weight * output_per_million + completion * output_per_million) / _MILLION
    return run_cost / len(answered) * _MILLION, "gpu-hour", price.usd_per_hour
