"""Cost against the real vLLM server: measured throughput, and exact prompt counts in estimates."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from turnout import AsyncClient, Client
from turnout.providers.vllm_throughput import ameasure_vllm_throughput, measure_vllm_throughput

from .conftest import VLLMServer


def _config(server: VLLMServer) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url, "api_key": server.api_key}},
        "prices": {f"local:{server.model}": {"usd_per_hour": "1.00", "tokens_per_second": 120}},
    }


def test_throughput_counts_the_tokens_generated_while_measuring(vllm_server: VLLMServer) -> None:
    generated: list[int] = []

    def load(_: float) -> None:
        with Client(config=_config(vllm_server)) as client:
            for i in range(3):
                reply = client.chat(f"local:{vllm_server.model}", f"Count to {i + 3}.", max_tokens=8, temperature=0)
                assert reply.usage.completion_tokens is not None
                generated.append(reply.usage.completion_tokens)

    rate = measure_vllm_throughput(vllm_server.root_url, 0, model=vllm_server.model, sleep=load)
    # other clients may share the server, so at least what this test generated was counted
    assert rate.generation_tokens >= sum(generated) > 0
    assert rate.prompt_tokens > 0
    assert rate.generation_tokens_per_second == rate.generation_tokens / rate.seconds > 0


def test_async_throughput_reads_the_counters(vllm_server: VLLMServer) -> None:
    async def nothing(_: float) -> None:
        return None

    rate = asyncio.run(ameasure_vllm_throughput(vllm_server.root_url, 0, sleep=nothing))
    assert rate.generation_tokens >= 0 and rate.seconds > 0


def test_estimate_counts_the_prompt_exactly_and_brackets_the_cost(vllm_server: VLLMServer) -> None:
    model = f"local:{vllm_server.model}"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a llama fact."}]
    with Client(config=_config(vllm_server)) as client:
        estimate = client.estimate_cost(model, messages, max_tokens=16)
        reply = client.chat(model, messages, max_tokens=16, temperature=0)
    (target,) = estimate.targets
    assert not target.estimated
    assert target.prompt_tokens == reply.usage.prompt_tokens
    assert reply.cost is not None and target.low is not None and target.high is not None
    assert target.low <= reply.cost.total <= target.high
    assert target.high - target.low == Decimal(16) * Decimal(1_000_000) / Decimal(3600 * 120) / Decimal(1_000_000)

    async def go() -> int:
        async with AsyncClient(config=_config(vllm_server)) as aclient:
            found = await aclient.estimate_cost(model, messages)
        (only,) = found.targets
        assert only.max_output_tokens == vllm_server.max_model_len - only.prompt_tokens
        return only.prompt_tokens

    assert asyncio.run(go()) == reply.usage.prompt_tokens
