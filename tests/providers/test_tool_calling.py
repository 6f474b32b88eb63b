"""Tool calling, the same on every provider: definitions sent, calls normalised, streamed and not, run_tools.

Each test runs for every backend in ``conftest.BACKENDS`` (OpenAI-, vLLM- and TGI-shaped fakes, the
Together preset, huggingface over vLLM), sync and async, over real HTTP. The real vLLM server's
tests are in tests/vllm/test_tools_vllm.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeServer, FakeTGIServer, Reply, ToolCallSpec
from turnout.tools import tool

from ..conftest import CANARY_KEY, LLAMA, Runner
from .conftest import CONFIG_PRICE, Backend, hf_config

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
PARIS = '{"city": "Paris", "unit": "C"}'


@tool
def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Current weather in a city.

    Args:
        city: the city's name.
        unit: degrees Celsius or Fahrenheit.
    """
    return f"18 {unit} and sunny in {city}"


WEATHER_DEFINITION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "the city's name."},
                "unit": {
                    "type": "string",
                    "enum": ["C", "F"],
                    "default": "C",
                    "description": "degrees Celsius or Fahrenheit.",
                },
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def _sent(backend: Backend, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = backend.chat_requests[index].json
    return body


@STREAMED
def test_a_function_tool_is_sent_and_its_call_parsed(runner: Runner, backend: Backend, streamed: bool) -> None:
    if backend.text_mode:
        pytest.skip("text mode refuses tools: test_text_mode_refuses_tools_before_sending")
    backend.server.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", PARIS, id="call_1")]))
    reply = runner.call(streamed, backend.config(), backend.target, "Weather in Paris?", tools=[get_weather])

    assert reply.finish_reason == "tool_calls" and reply.choices[0].finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert (call.id, call.name, call.args) == ("call_1", "get_weather", {"city": "Paris", "unit": "C"})
    assert get_weather.invoke(call) == "18 C and sunny in Paris"
    body = _sent(backend)
    assert body["tools"] == [WEATHER_DEFINITION] and "tool_choice" not in body
    assert body["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert body.get("stream", False) is streamed


@STREAMED
@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "named"],
)
def test_stop_with_tool_calls_is_normalised(runner: Runner, backend: Backend, streamed: bool, tool_choice: Any) -> None:
    """vLLM answers a named tool_choice with finish_reason "stop" (seen on vLLM 0.32); OpenAI says "tool_calls"."""
    if backend.text_mode:
        pytest.skip("no tools in text mode")
    calls = [ToolCallSpec("get_weather", PARIS, id="a"), ToolCallSpec("get_weather", '{"city": "Oslo"}', id="b")]
    backend.server.enqueue(Reply(tool_calls=calls, finish_reason="stop"))
    raw = dict(WEATHER_DEFINITION)
    reply = runner.call(streamed, backend.config(), backend.target, "Weather?", tools=[raw], tool_choice=tool_choice)
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.args["city"]) for c in reply.tool_calls] == [("a", "Paris"), ("b", "Oslo")]
    body = _sent(backend)
    assert body["tools"] == [raw] and body["tool_choice"] == tool_choice


@STREAMED
def test_calls_without_an_id_get_a_stable_one(runner: Runner, backend: Backend, streamed: bool) -> None:
    if backend.text_mode or isinstance(backend.server, FakeTGIServer):
        pytest.skip("TGI always sends an id")
    backend.server.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", PARIS, id="")]))
    reply = runner.call(streamed, backend.config(), backend.target, "Weather?", tools=[get_weather])
    assert "id" not in json.dumps(backend.chat_requests[0].json["tools"])  # nothing about ids was sent
    [call] = reply.tool_calls
    assert call.id == turnout.types.tool_call_id(0, "get_weather", PARIS)


@STREAMED
def test_invalid_json_arguments_raise_a_typed_error_on_access(runner: Runner, backend: Backend, streamed: bool) -> None:
    if backend.text_mode:
        pytest.skip("no tools in text mode")
    backend.server.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Par', id="c")]))
    reply = runner.call(streamed, backend.config(), backend.target, "Weather?", tools=[get_weather])
    [call] = reply.tool_calls
    assert call.arguments == '{"city": "Par'
    with pytest.raises(turnout.ToolArgumentsError, match="tool 'get_weather' are not valid JSON"):
        call.arguments_json()


def test_text_mode_refuses_tools_before_sending(runner: Runner, fake_tgi: FakeTGIServer) -> None:
    with pytest.raises(turnout.UnsupportedFeatureError, match=r"tools cannot be sent to hf:.*mode='text'") as info:
        runner.chat(hf_config(fake_tgi, mode="text"), f"hf:{LLAMA}", "Weather?", tools=[get_weather])
    assert info.value.feature == "tools" and info.value.targets == [f"hf:{LLAMA}"]
    assert 'mode = "chat"' in str(info.value)
    assert isinstance(info.value, turnout.InvalidArgumentError)
    assert fake_tgi.requests == []


@STREAMED
def test_a_route_skips_a_target_that_cannot_take_tools(runner: Runner, streamed: bool) -> None:
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as tgi, FakeServer(flavor="vllm", models=[LLAMA]) as vllm:
        config = hf_config(tgi, mode="text")
        config["providers"]["local"] = {"type": "vllm", "base_url": vllm.base_url}
        config["prices"][f"local:{LLAMA}"] = CONFIG_PRICE
        config["models"] = {"llama": {"targets": [f"hf:{LLAMA}", f"local:{LLAMA}"]}}
        vllm.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", PARIS, id="x")]))
        reply = runner.call(streamed, config, "llama", "Weather?", tools=[get_weather])
        assert reply.tool_calls[0].args["city"] == "Paris"
        assert [(a.provider, a.outcome, a.skipped) for a in reply.attempts] == [
            ("hf", "UnsupportedFeatureError", True),
            ("local", "ok", False),
        ]
        assert tgi.requests == [] and len(vllm.chat_requests) == 1
        # without tools the text-mode endpoint is used as usual
        assert runner.chat(config, "llama", "Hi").provider == "hf"


@pytest.mark.parametrize("mode", ["string", "object"])
@STREAMED
def test_tgi_arguments_as_an_object_are_normalised(runner: Runner, streamed: bool, mode: str) -> None:
    """TGI 2.x-3.0 send ``arguments`` as a JSON object; turnout gives JSON text and a dict as everywhere."""
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY, tool_arguments=mode) as tgi:  # type: ignore[arg-type]
        tgi.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", PARIS)]))
        reply = runner.call(streamed, hf_config(tgi), f"hf:{LLAMA}", "Weather?", tools=[get_weather])
        [call] = reply.tool_calls
        assert call.id == "0" and call.args == {"city": "Paris", "unit": "C"}
        assert json.loads(call.arguments) == {"city": "Paris", "unit": "C"}
        assert reply.finish_reason == "tool_calls"
        assert tgi.chat_requests[0].json["tools"] == [WEATHER_DEFINITION]


# -- run_tools --------------------------------------------------------------------------------------


def _run(runner: Runner, config: Any, model: str, messages: Any, **options: Any) -> turnout.ToolRun:
    if runner.mode == "sync":
        with Client(config=config) as client:
            return client.run_tools(model, messages, **options)

    async def go() -> turnout.ToolRun:
        async with AsyncClient(config=config) as client:
            return await client.run_tools(model, messages, **options)

    return asyncio.run(go())


def test_run_tools_runs_the_calls_and_sends_the_results_back(runner: Runner, backend: Backend) -> None:
    if backend.text_mode:
        pytest.skip("no tools in text mode")
    calls = [ToolCallSpec("get_weather", PARIS, id="c1"), ToolCallSpec("get_weather", '{"city": "Oslo"}', id="c2")]
    backend.server.enqueue(
        Reply(tool_calls=calls, prompt_tokens=10, completion_tokens=4),
        Reply("Sunny in both.", prompt_tokens=30, completion_tokens=3),
    )
    run = _run(runner, backend.config(), backend.target, "Weather in Paris and Oslo?", tools=[get_weather])

    assert run.text == "Sunny in both." and run.rounds == 2 and run.response.finish_reason == "stop"
    assert (run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.total_tokens) == (40, 7, 47)
    price_in, price_out = backend.price
    assert run.cost is not None and run.cost.total == (price_in * 40 + price_out * 7) / 1_000_000
    assert [a.outcome for a in run.attempts] == ["ok", "ok"]
    first, second = _sent(backend, 0), _sent(backend, 1)
    assert first["tools"] == second["tools"] == [WEATHER_DEFINITION]
    assert second["messages"] == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": PARIS}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            ],
        },
        {"role": "tool", "content": "18 C and sunny in Paris", "tool_call_id": "c1"},
        {"role": "tool", "content": "18 C and sunny in Oslo", "tool_call_id": "c2"},
    ]
    assert [m.role for m in run.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert run.messages[-1].content == "Sunny in both."


def test_streamed_deltas_and_the_finish_chunk(runner: Runner, backend: Backend) -> None:
    if backend.text_mode:
        pytest.skip("no tools in text mode")
    backend.server.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", PARIS, id="s1")], finish_reason="stop"))
    chunks, reply = runner.stream(backend.config(), backend.target, "Weather?", tools=[get_weather])
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0].name == "get_weather" and "".join(d.arguments for d in deltas) == PARIS
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]
    assert reply.tool_calls[0].args == {"city": "Paris", "unit": "C"}


@STREAMED
def test_a_call_cut_off_by_max_tokens_keeps_length(runner: Runner, backend: Backend, streamed: bool) -> None:
    if backend.text_mode:
        pytest.skip("no tools in text mode")
    backend.server.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"ci', id="t")], finish_reason="length"))
    reply = runner.call(streamed, backend.config(), backend.target, "Weather?", tools=[get_weather], max_tokens=3)
    assert reply.finish_reason == "length" and reply.tool_calls[0].arguments == '{"ci'
