"""Tool calling against the real vLLM server (llama3_json parser; a random model, so shapes only).

With this model ``tool_choice="auto"`` never calls a tool, so calls are forced: ``"required"``
answers ``finish_reason: "tool_calls"``, a named choice ``"stop"`` (seen on vLLM 0.32), which turnout
normalises to ``"tool_calls"``. Both the ``vllm`` provider and ``huggingface`` (an endpoint running
vLLM, through huggingface_hub) are exercised, sync and async, streamed and not.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest
from pydantic import Field

import turnout
from turnout import AsyncClient, Client
from turnout.tools import tool

from .conftest import VLLMServer


@tool(strict=True)
def get_weather(city: Annotated[str, Field(max_length=8)]) -> str:
    """Current weather in a city.

    Args:
        city: the city's name.
    """
    return f"sunny in {city}"


def config_for(server: VLLMServer) -> dict[str, Any]:
    price = {"input_per_million": "0.10", "output_per_million": "0.20"}
    return {
        "providers": {
            "local": {"type": "vllm", "base_url": server.base_url, "api_key": server.api_key},
            "hf": {
                "type": "huggingface",
                "base_url": server.base_url,
                "api_key": server.api_key,
                "response_format_style": "openai",
            },
        },
        "prices": {f"local:{server.model}": price, f"hf:{server.model}": price},
        "defaults": {"retry": {"max_attempts": 1}},
    }


def call(mode: str, config: dict[str, Any], model: str, **options: Any) -> turnout.ChatResponse:
    """``sync``/``async`` chat or ``stream``/``astream``, returning the (final) reply."""
    messages = "Weather in Paris?"
    if mode == "sync":
        with Client(config=config) as client:
            return client.chat(model, messages, **options)
    if mode == "stream":
        with Client(config=config) as client, client.stream(model, messages, **options) as stream:
            deltas = [d for chunk in stream for d in chunk.tool_calls]
        assert deltas and deltas[0].name == "get_weather"  # id and name first, then argument fragments
        return stream.response

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(config=config) as client:
            if mode == "async":
                return await client.chat(model, messages, **options)
            async with client.stream(model, messages, **options) as stream:
                async for _ in stream:
                    pass
            return stream.response

    return asyncio.run(go())


@pytest.mark.parametrize("provider", ["local", "hf"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream", "astream"])
@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "named"],
)
def test_a_forced_tool_call_is_normalised(vllm_server: VLLMServer, provider: str, mode: str, tool_choice: Any) -> None:
    reply = call(
        mode,
        config_for(vllm_server),
        f"{provider}:{vllm_server.model}",
        tools=[get_weather],
        tool_choice=tool_choice,
        max_tokens=60,
        temperature=0,
        extra_body={"parallel_tool_calls": False},
    )
    assert reply.finish_reason == "tool_calls"  # vLLM itself says "stop" for the named choice
    [made] = reply.tool_calls
    assert made.name == "get_weather" and made.id.startswith("chatcmpl-tool-")
    assert isinstance(made.args["city"], str) and len(made.args["city"]) <= 8
    assert get_weather.invoke(made).startswith("sunny in ")
    assert reply.usage.completion_tokens is not None and reply.cost is not None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_against_the_real_server(vllm_server: VLLMServer, mode: str) -> None:
    config, model = config_for(vllm_server), f"local:{vllm_server.model}"
    options: dict[str, Any] = {"tools": [get_weather], "tool_choice": "required", "max_tokens": 60, "temperature": 0}
    options["extra_body"] = {"parallel_tool_calls": False}
    if mode == "sync":
        with Client(config=config) as client:
            run = client.run_tools(model, "Weather in Paris?", **options)
    else:

        async def go() -> turnout.ToolRun:
            async with AsyncClient(config=config) as client:
                return await client.run_tools(model, "Weather in Paris?", **options)

        run = asyncio.run(go())
    # round 1 is forced to call the tool; round 2 runs with "auto", where this model never calls one
    assert run.rounds == 2 and run.responses[0].finish_reason == "tool_calls"
    assert [m.role for m in run.messages] == ["user", "assistant", "tool", "assistant"]
    assert run.messages[2].content is not None and str(run.messages[2].content).startswith("sunny in ")
    assert run.messages[2].tool_call_id == run.responses[0].tool_calls[0].id
    assert run.usage.prompt_tokens == sum(r.usage.prompt_tokens or 0 for r in run.responses)
    assert run.cost is not None and run.cost.total > 0
