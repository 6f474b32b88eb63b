"""Estimates before the call: exact prompt counts where possible, and a range the actual cost falls in."""

from __future__ import annotations

import asyncio
import json
import math
import random
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, LLAMA
from turnout import AsyncClient, Client, InvalidArgumentError
from turnout.cost.estimate import heuristic_tokens
from turnout.testing import FakeServer, Reply

WORDS = "llama alpaca camel wool ü 日本 grass mountain, herd! the a of 42".split()
PRICE = {
    "input_per_million": "0.10",
    "cached_input_per_million": "0.05",
    "output_per_million": "0.20",
    "reasoning_per_million": "0.30",
}


def _conversation(rng: random.Random) -> list[dict[str, str]]:
    roles = ["system", *rng.choice([["user"], ["user", "assistant", "user"], ["user", "assistant"] * 3 + ["user"]])]
    return [{"role": r, "content": " ".join(rng.choices(WORDS, k=rng.randint(0, 60)))} for r in roles]


def _config(vllm: FakeServer, openai: FakeServer) -> dict[str, Any]:
    return {
        "providers": {
            "local": {"type": "vllm", "base_url": vllm.base_url},
            # an OpenAI-compatible host: no tokenizer turnout can run, so the heuristic is used
            "compat": {"type": "openai-compatible", "base_url": openai.base_url, "api_key": CANARY_KEY},
        },
        "models": {"both": {"targets": [f"local:{LLAMA}", "compat:gpt-4o-mini"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": PRICE, "compat:gpt-4o-mini": {"input_per_million": 1, "output_per_million": 2}},
    }


def test_randomized_actual_cost_lies_within_the_estimate(fake_vllm: FakeServer, fake_openai: FakeServer) -> None:
    rng = random.Random(5)
    with Client(config=_config(fake_vllm, fake_openai)) as client:
        for _ in range(60):
            messages, max_tokens = _conversation(rng), rng.randint(1, 200)
            completion = rng.randint(0, max_tokens)
            reasoning = rng.randint(0, completion)
            estimate = client.estimate_cost("both", messages, max_tokens=max_tokens)
            local, cloud = estimate.targets
            assert not local.estimated and cloud.estimated
            cached = rng.randint(0, local.prompt_tokens)
            for server in (fake_vllm, fake_openai):
                server.enqueue(
                    Reply("x", completion_tokens=completion, cached_tokens=cached, reasoning_tokens=reasoning)
                )
            reply = client.chat(f"local:{LLAMA}", messages, max_tokens=max_tokens)
            assert reply.usage.prompt_tokens == local.prompt_tokens
            assert reply.cost is not None and local.low is not None and local.high is not None
            assert local.low <= reply.cost.total <= local.high
            # the heuristic's high bound is a ceiling too (tokens never outnumber bytes)
            other = client.chat("compat:gpt-4o-mini", messages, max_tokens=max_tokens)
            assert other.cost is not None and cloud.high is not None and other.cost.total <= cloud.high
            assert estimate.high == max(local.high, cloud.high) and estimate.low == min(local.low, cloud.low or 0)


def test_without_max_tokens_the_window_bounds_the_output(fake_vllm: FakeServer, fake_openai: FakeServer) -> None:
    async def go() -> Any:
        async with AsyncClient(config=_config(fake_vllm, fake_openai)) as client:
            return await client.estimate_cost("both", "Hello there")

    estimate = asyncio.run(go())
    local, cloud = estimate.targets
    assert local.max_output_tokens == 4096 - local.prompt_tokens
    assert local.high == (local.prompt_tokens * Decimal("0.10") + local.max_output_tokens * Decimal("0.30")) / 10**6
    assert cloud.max_output_tokens is None and cloud.high is None and estimate.high is None
    assert cloud.source == "config"


@pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")
def test_unknown_price_gives_no_range(fake_vllm: FakeServer, fake_openai: FakeServer) -> None:
    config = _config(fake_vllm, fake_openai) | {"prices": {}}
    with Client(config=config) as client:
        (local,) = client.estimate_cost(f"local:{LLAMA}", "Hi", max_tokens=5).targets
        assert (local.low, local.high, local.source) == (None, None, None)
        with pytest.raises(InvalidArgumentError):
            client.estimate_cost(f"local:{LLAMA}", [], max_tokens=5)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_window_left_after_a_long_prompt_is_no_output(
    fake_vllm: FakeServer, fake_openai: FakeServer, mode: str
) -> None:
    """Sync and async: the window bounds the output, and a prompt longer than the window leaves 0 (not less)."""
    config = _config(fake_vllm, fake_openai)

    async def go(prompt: str) -> Any:
        async with AsyncClient(config=config) as client:
            return await client.estimate_cost(f"local:{LLAMA}", prompt)

    def estimate(prompt: str) -> Any:
        if mode == "async":
            return asyncio.run(go(prompt))
        with Client(config=config) as client:
            return client.estimate_cost(f"local:{LLAMA}", prompt)

    (short,) = estimate("Hello there").targets
    assert not short.estimated and short.max_output_tokens == 4096 - short.prompt_tokens
    (long,) = estimate("word " * 5000).targets
    assert long.prompt_tokens > 4096 and long.max_output_tokens == 0
    assert long.high == long.prompt_tokens * Decimal("0.10") / 10**6


def test_the_heuristic_counts_utf8_bytes_of_messages_tools_and_response_format() -> None:
    from turnout.types import ChatRequest, Message

    plain = ChatRequest(messages=[Message(role="user", content="é" * 8)])
    # "user" (4 bytes) + 8 x "é" (2 bytes each) = 20 bytes; 4 per message + 3 priming
    assert heuristic_tokens(plain) == (5 + 7, 20 + 7)
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    tools = plain.model_copy(update={"tools": [tool]})
    tool_bytes = len(json.dumps([tool], ensure_ascii=False).encode())
    assert heuristic_tokens(tools) == (math.ceil((20 + tool_bytes) / 4) + 7, 20 + tool_bytes + 7)
    odd = {"type": "function", "function": {"name": "ñ", "parameters": {"maximum": Decimal("1.5")}}}
    odd_bytes = len('[{"type": "function", "function": {"name": "ñ", "parameters": {"maximum": "1.5"}}}]'.encode())
    # UTF-8, not JSON's \u escapes; values JSON cannot encode (a Decimal) are measured as text
    assert heuristic_tokens(plain.model_copy(update={"tools": [odd]}))[1] == 20 + odd_bytes + 7
    fmt = {"type": "json_object"}
    both = tools.model_copy(update={"response_format": fmt})
    fmt_bytes = len(b"json_object")
    assert heuristic_tokens(both)[1] == 20 + tool_bytes + fmt_bytes + 7


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_n_choices_multiply_the_high_bound(fake_vllm: FakeServer, fake_openai: FakeServer, mode: str) -> None:
    config = _config(fake_vllm, fake_openai)

    async def go() -> Any:
        async with AsyncClient(config=config) as client:
            return await client.estimate_cost("compat:gpt-4o-mini", "Hi", max_tokens=10, n=3)

    if mode == "async":
        estimate = asyncio.run(go())
    else:
        with Client(config=config) as client:
            estimate = client.estimate_cost("compat:gpt-4o-mini", "Hi", max_tokens=10, n=3)
    (target,) = estimate.targets
    # heuristic ceiling: "Hi" + "user" = 6 bytes + 4 + 3 = 13 prompt tokens at $1/M; 3 x 10 output at $2/M
    assert (target.prompt_tokens, target.max_output_tokens) == (9, 10)
    assert target.low == Decimal(9) / 10**6 and target.high == Decimal(13 + 60) / 10**6
    assert estimate.low == target.low and estimate.high == target.high


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_openai_target_is_counted_with_its_models_tokenizer(fake_openai: FakeServer, mode: str) -> None:
    """gpt-4o: 3 per message + "user" (1) + "Hello there" (2) + 3 to prime the reply = 9, exact and offline."""
    config = {
        "providers": {"cloud": {"type": "openai", "base_url": fake_openai.base_url, "api_key": CANARY_KEY}},
        "prices": {"cloud:gpt-4o": {"input_per_million": 1, "output_per_million": 1}},
    }

    async def go() -> Any:
        async with AsyncClient(config=config) as client:
            return await client.estimate_cost("cloud:gpt-4o", "Hello there", max_tokens=1)

    if mode == "async":
        estimate = asyncio.run(go())
    else:
        with Client(config=config) as client:
            estimate = client.estimate_cost("cloud:gpt-4o", "Hello there", max_tokens=1)
    (target,) = estimate.targets
    assert (target.prompt_tokens, target.estimated) == (9, False)
    assert fake_openai.requests == []
