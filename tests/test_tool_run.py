"""`run_tools`: bounded rounds, tool errors sent back (or raised), forced tool choice, async tools. Over HTTP.

The same loop on every provider is in tests/providers/test_tool_calling.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeServer, Reply, ToolCallSpec
from turnout.tools import Tool, tool

from .conftest import LLAMA

TARGET = f"local:{LLAMA}"


def _config(server: FakeServer) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "prices": {TARGET: {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def _calls(*arguments: str, name: str = "divide") -> Reply:
    return Reply(tool_calls=[ToolCallSpec(name, a, id=f"c{i}") for i, a in enumerate(arguments)])


def _tool_messages(server: FakeServer, index: int) -> list[dict[str, Any]]:
    return [m for m in server.chat_requests[index].json["messages"] if m["role"] == "tool"]


def test_max_rounds_raises_with_the_transcript(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(_calls('{"a": 1, "b": 2}'), _calls('{"a": 3, "b": 4}'))
    with Client(config=_config(fake_vllm)) as client, pytest.raises(turnout.ToolRoundsExceededError) as info:
        client.run_tools(TARGET, "Divide!", tools=[divide], max_rounds=2)
    error = info.value
    assert "after max_rounds=2 requests" in str(error) and "(divide)" in str(error)
    assert error.max_rounds == 2 and len(error.responses) == 2 and len(fake_vllm.chat_requests) == 2
    assert [m.role for m in error.messages] == ["user", "assistant", "tool", "assistant"]
    assert error.messages[2].content == "0.5" and error.messages[-1].tool_calls is not None


def test_tool_errors_and_unknown_tools_are_sent_back(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(
        Reply(
            tool_calls=[
                ToolCallSpec("divide", '{"a": 1, "b": 0}', id="zero"),
                ToolCallSpec("multiply", "{}", id="unknown"),
                ToolCallSpec("divide", '{"a": 1', id="broken"),
                ToolCallSpec("divide", '{"a": "x", "b": 1}', id="typed"),
            ]
        ),
        Reply("Sorry."),
    )
    with Client(config=_config(fake_vllm)) as client:
        run = client.run_tools(TARGET, "Divide!", tools=[divide])
    assert run.text == "Sorry."
    sent = {m["tool_call_id"]: m["content"] for m in _tool_messages(fake_vllm, 1)}
    assert sent["zero"] == "Error: ZeroDivisionError: float division by zero"
    assert sent["unknown"] == "Error: ToolCallError: there is no tool named 'multiply' (tools: divide)"
    assert sent["broken"].startswith("Error: ToolArgumentsError: the arguments the model wrote for tool 'divide'")
    assert "a: Input should be a valid number" in sent["typed"]


def test_on_error_raise_and_custom(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(_calls('{"a": 1, "b": 0}'), _calls('{"a": 1, "b": 0}'), Reply("ok"))
    with Client(config=_config(fake_vllm)) as client:
        with pytest.raises(ZeroDivisionError):
            client.run_tools(TARGET, "Divide!", tools=[divide], on_error="raise")
        run = client.run_tools(TARGET, "Divide!", tools=[divide], on_error=lambda call, exc: f"{call.name} failed")
    assert run.text == "ok" and _tool_messages(fake_vllm, 2)[0]["content"] == "divide failed"


def test_a_forced_tool_choice_applies_to_the_first_round_only(fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(_calls('{"a": 6, "b": 3}'), Reply("2"))
    with Client(config=_config(fake_vllm)) as client:
        run = client.run_tools(TARGET, "6/3?", tools=[divide], tool_choice="required", max_tokens=50, temperature=0)
    assert run.text == "2"
    first, second = (r.json for r in fake_vllm.chat_requests)
    assert (first["tool_choice"], second["tool_choice"]) == ("required", "auto")
    assert first["max_tokens"] == second["max_tokens"] == 50 and second["temperature"] == 0
    assert _tool_messages(fake_vllm, 1) == [{"role": "tool", "content": "2.0", "tool_call_id": "c0"}]


def test_results_that_are_not_text_are_sent_as_json(fake_vllm: FakeServer) -> None:
    def lookup(key: str) -> dict[str, Any]:
        return {"key": key, "values": [1, 2]}

    fake_vllm.enqueue(_calls('{"key": "k"}', name="lookup"), Reply("done"))
    with Client(config=_config(fake_vllm)) as client:
        client.run_tools(TARGET, "Look up k", tools=[lookup])
    assert json.loads(_tool_messages(fake_vllm, 1)[0]["content"]) == {"key": "k", "values": [1, 2]}


def test_tools_that_cannot_run_fail_before_sending(fake_vllm: FakeServer) -> None:
    async def slow(x: int) -> int:
        return x

    raw = {"type": "function", "function": {"name": "raw", "parameters": {"type": "object"}}}
    with Client(config=_config(fake_vllm)) as client:
        with pytest.raises(turnout.InvalidArgumentError, match="tool 'slow' is async; use AsyncClient.run_tools"):
            client.run_tools(TARGET, "Hi", tools=[slow])
        with pytest.raises(turnout.InvalidArgumentError, match="tool 'raw' has no function to run"):
            client.run_tools(TARGET, "Hi", tools=[raw])
        with pytest.raises(turnout.InvalidArgumentError, match="max_rounds must be at least 1"):
            client.run_tools(TARGET, "Hi", tools=[divide], max_rounds=0)
    assert fake_vllm.requests == []


def test_async_client_awaits_async_tools_concurrently(fake_vllm: FakeServer) -> None:
    started: list[str] = []

    async def fetch(city: str) -> str:
        """Fetch a city's weather."""
        started.append(city)
        await asyncio.sleep(0.05)
        assert len(started) == 2, "both calls of the round run at once"
        return f"sunny in {city}"

    fake_vllm.enqueue(_calls('{"city": "Paris"}', '{"city": "Oslo"}', name="fetch"), Reply("Both sunny."))

    async def go() -> turnout.ToolRun:
        async with AsyncClient(config=_config(fake_vllm)) as client:
            return await client.run_tools(TARGET, "Weather?", tools=[Tool.from_function(fetch), divide])

    run = asyncio.run(go())
    assert run.text == "Both sunny." and started == ["Paris", "Oslo"]
    assert [m["content"] for m in _tool_messages(fake_vllm, 1)] == ["sunny in Paris", "sunny in Oslo"]
    assert [d["function"]["name"] for d in fake_vllm.chat_requests[0].json["tools"]] == ["fetch", "divide"]
