"""The ``huggingface`` provider in chat mode against the REAL vLLM server (it speaks the Messages API).

Requests go through huggingface_hub's ``InferenceClient`` / ``AsyncInferenceClient`` with the vLLM
server's ``/v1`` URL as ``base_url``, the way an Inference Endpoint running the vLLM engine is used.
The model is random: these tests assert shapes, counts and errors, never wording.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from huggingface_hub import InferenceClient

import turnout
from turnout import AsyncClient, Client

from .conftest import VLLMServer


def config_for(server: VLLMServer, *, api_key: str | None = None, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {
            "hf": {
                "type": "huggingface",
                "base_url": server.base_url,
                "api_key": server.api_key if api_key is None else api_key,
                "response_format_style": "openai",  # vLLM takes OpenAI's response_format, not TGI's grammar
                **provider,
            }
        },
        "prices": {f"hf:{server.model}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


@pytest.fixture
def target(vllm_server: VLLMServer) -> str:
    return f"hf:{vllm_server.model}"


def test_inference_client_against_vllm(vllm_server: VLLMServer) -> None:
    client = InferenceClient(base_url=vllm_server.base_url, api_key=vllm_server.api_key)
    output = client.chat_completion(
        [{"role": "user", "content": "Hello"}], model=vllm_server.model, max_tokens=4, temperature=0
    )
    assert output.choices[0].message.content is not None
    assert output.usage.completion_tokens <= 4


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat(vllm_server: VLLMServer, target: str, mode: str) -> None:
    async def go() -> turnout.ChatResponse:
        async with AsyncClient(config=config_for(vllm_server)) as client:
            return await client.chat(target, "Hello, llama", max_tokens=8, temperature=0)

    if mode == "sync":
        with Client(config=config_for(vllm_server)) as client:
            reply = client.chat(target, "Hello, llama", max_tokens=8, temperature=0)
    else:
        reply = asyncio.run(go())
    assert reply.text and reply.provider == "hf" and reply.model == vllm_server.model
    assert reply.usage.completion_tokens is not None and 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens  # type: ignore[operator]
    assert reply.finish_reason in ("length", "stop")
    assert reply.cost is not None and reply.cost.total > Decimal(0)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_ends_with_usage(vllm_server: VLLMServer, target: str, mode: str) -> None:
    async def go() -> tuple[list[turnout.ChatChunk], turnout.ChatResponse]:
        async with AsyncClient(config=config_for(vllm_server)) as c, c.stream(target, "Stream", max_tokens=12) as s:
            return [chunk async for chunk in s], s.response

    if mode == "sync":
        with Client(config=config_for(vllm_server)) as c, c.stream(target, "Stream", max_tokens=12) as stream:
            chunks, reply = list(stream), stream.response
    else:
        chunks, reply = asyncio.run(go())
    assert "".join(c.text or "" for c in chunks) == reply.text
    assert chunks[-1].usage is not None and reply.usage.completion_tokens is not None
    assert reply.finish_reason in ("length", "stop") and reply.cost is not None


@pytest.mark.parametrize("streamed", [False, True])
def test_prompt_over_the_window_is_context_window_exceeded(
    vllm_server: VLLMServer, target: str, streamed: bool
) -> None:
    config = config_for(vllm_server)
    config["defaults"]["precheck_context"] = False  # let the server refuse it
    with Client(config=config) as client, pytest.raises(turnout.ContextWindowExceededError) as info:
        if streamed:
            with client.stream(target, "word " * 2000, max_tokens=4) as stream:
                list(stream)
        else:
            client.chat(target, "word " * 2000, max_tokens=4)
    assert info.value.status_code == 400 and "maximum context length" in info.value.message


def test_unknown_model_and_wrong_key(vllm_server: VLLMServer) -> None:
    with Client(config=config_for(vllm_server)) as client, pytest.raises(turnout.NotFoundError):
        client.chat("hf:gpt-4o", "Hi", max_tokens=2)
    with Client(config=config_for(vllm_server, api_key="wrong-key")) as client:
        with pytest.raises(turnout.AuthenticationError) as info:
            client.chat(f"hf:{vllm_server.model}", "Hi", max_tokens=2)
    assert info.value.message == "Unauthorized" and "wrong-key" not in str(info.value)


def test_json_object_response_format(vllm_server: VLLMServer, target: str) -> None:
    with Client(config=config_for(vllm_server)) as client:
        reply = client.chat(
            target, "Answer in JSON.", max_tokens=20, temperature=0, response_format={"type": "json_object"}
        )
    assert reply.text  # guided decoding on a random model: valid JSON only once the object closes
    if reply.finish_reason == "stop":
        json.loads(reply.text)


def test_tool_call(vllm_server: VLLMServer, target: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 8}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
    with Client(config=config_for(vllm_server)) as client:
        reply = client.chat(
            target,
            "Weather in Paris?",
            tools=[tool],
            tool_choice="required",
            max_tokens=60,
            temperature=0,
            extra_body={"parallel_tool_calls": False},
        )
    assert reply.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
