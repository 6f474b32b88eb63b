"""Measure a running vLLM server's token throughput, to price it by the hour.

vLLM's Prometheus ``/metrics`` counts every prompt and generated token
(``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``). Reading them twice, ``Δt``
apart, gives the aggregate tokens per second the server sustained over that window under
whatever load it had: the ``tokens_per_second`` of a ``[prices]`` entry priced by
``usd_per_hour`` (see docs/cost.md). Measure under your real workload; an idle server measures 0.

Example:
    ```python
    from turnout.providers.vllm_throughput import measure_vllm_throughput

    rate = measure_vllm_throughput("http://127.0.0.1:8000", seconds=60)
    print(rate.generation_tokens_per_second)
    ```
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx2

from .._secrets import mask_url
from ..errors import APIConnectionError, APITimeoutError, InvalidArgumentError, ProviderError, ResponseValidationError
from ._openai_errors import error_from_response as _error_from_response

__all__ = ["Throughput", "ameasure_vllm_throughput", "measure_vllm_throughput", "parse_vllm_counters"]

_PROMPT = "vllm:prompt_tokens_total"
_GENERATION = "vllm:generation_tokens_total"


@dataclass(frozen=True)
class Throughput:
    """Tokens a server processed over a measured window."""

    seconds: float
    prompt_tokens: float
    generation_tokens: float

    @property
    def generation_tokens_per_second(self) -> float:
        """Generated tokens per second: the ``tokens_per_second`` to price an endpoint with."""
        return self.generation_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        """Prompt (prefill) tokens per second."""
        return self.prompt_tokens / self.seconds if self.seconds > 0 else 0.0


def parse_vllm_counters(text: str, model: str | None = None) -> tuple[float, float]:
    """Sum the prompt and generation token counters of a ``/metrics`` page.

    Args:
        text: the Prometheus text exposition.
        model: count only samples labelled ``model_name="<model>"``; None counts every model.

    Returns:
        ``(prompt_tokens_total, generation_tokens_total)``.

    Raises:
        ValueError: the page has no ``vllm:generation_tokens_total`` sample (not a vLLM server?).
    """
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith((_PROMPT, _GENERATION)):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            labels, _, tail = rest.partition("}")
        else:
            name, _, tail = line.partition(" ")
            labels = ""
        if name not in (_PROMPT, _GENERATION) or (model is not None and f'model_name="{model}"' not in labels):
            continue
        totals[name] = totals.get(name, 0.0) + float(tail.split()[0])
    if _GENERATION not in totals:
        raise ValueError(f"no {_GENERATION} sample in the metrics (is this a vLLM server's /metrics?)")
    return totals.get(_PROMPT, 0.0), totals[_GENERATION]


def _metrics_url(root_url: str) -> str:
    root = root_url.rstrip("/")
    if root.endswith("/v1"):
        raise InvalidArgumentError(
            f"root_url is the server root, not its API path: use {mask_url(root.removesuffix('/v1'))!r}, "
            f"not {mask_url(root)!r} (vLLM serves /metrics beside /v1, not under it)"
        )
    return root + "/metrics"


def _counters(url: str, response: httpx2.Response, model: str | None) -> tuple[float, float]:
    if response.status_code >= 300:
        error = _error_from_response(response.status_code, response.headers, response.content, provider="vllm")
        error.message = f"GET {mask_url(url)}: {error.message}"
        error.args = (error.message,)
        raise error
    try:
        return parse_vllm_counters(response.text, model)
    except ValueError as exc:
        raise ResponseValidationError(f"GET {mask_url(url)}: {exc}", provider="vllm") from exc


def _unreachable(url: str, exc: httpx2.TransportError) -> ProviderError:
    cls = APITimeoutError if isinstance(exc, httpx2.TimeoutException) else APIConnectionError
    return cls(
        f"cannot read {mask_url(url)} ({type(exc).__name__}: {exc}); is the vLLM server running there?",
        provider="vllm",
    )


def _delta(first: tuple[float, float], second: tuple[float, float], seconds: float) -> Throughput:
    return Throughput(seconds=seconds, prompt_tokens=second[0] - first[0], generation_tokens=second[1] - first[1])


def measure_vllm_throughput(
    root_url: str,
    seconds: float = 60.0,
    *,
    model: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Throughput:
    """Read ``/metrics`` twice, ``seconds`` apart, and return the tokens processed in between.

    Args:
        root_url: the server root (not ``/v1``), e.g. ``http://127.0.0.1:8000``.
        seconds: how long to measure.
        model: count only this served model.
        sleep: how to wait between the readings (tests pass a function that makes load).

    Returns:
        The `Throughput` over the window.

    Raises:
        InvalidArgumentError: ``root_url`` ends with ``/v1`` (give the server root).
        APIConnectionError: the server could not be reached.
        APIStatusError: it answered an error status (a subclass says which).
        ResponseValidationError: the page is not vLLM's metrics.
    """
    url = _metrics_url(root_url)
    with httpx2.Client(timeout=30.0) as http:
        try:
            start = time.monotonic()
            first = _counters(url, http.get(url), model)
            sleep(seconds)
            second = _counters(url, http.get(url), model)
        except httpx2.TransportError as exc:
            raise _unreachable(url, exc) from exc
        return _delta(first, second, time.monotonic() - start)


async def ameasure_vllm_throughput(
    root_url: str,
    seconds: float = 60.0,
    *,
    model: str | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Throughput:
    """Async twin of `measure_vllm_throughput` (``sleep`` defaults to ``asyncio.sleep``)."""
    import asyncio

    wait = sleep or asyncio.sleep
    url = _metrics_url(root_url)
    async with httpx2.AsyncClient(timeout=30.0) as http:
        try:
            start = time.monotonic()
            first = _counters(url, await http.get(url), model)
            await wait(seconds)
            second = _counters(url, await http.get(url), model)
        except httpx2.TransportError as exc:
            raise _unreachable(url, exc) from exc
        return _delta(first, second, time.monotonic() - start)
