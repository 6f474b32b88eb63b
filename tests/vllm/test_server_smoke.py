"""Smoke tests over raw HTTP: the real vLLM server behind the `vllm_server` fixture answers as expected."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from .conftest import VLLMServer

SYSTEM_AND_USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def call(url: str, body: dict[str, Any] | None = None, api_key: str | None = None) -> tuple[int, Any]:
    """GET `url` (or POST `body` as JSON); return the status and the decoded JSON body."""
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def chat(server: VLLMServer, **extra: Any) -> tuple[int, Any]:
    """POST a chat completion with the server's key."""
    body = {"model": server.model, "messages": SYSTEM_AND_USER, **extra}
    return call(f"{server.base_url}/chat/completions", body, server.api_key)


def tokenize_chat(server: VLLMServer) -> Any:
    """Return the /tokenize answer for the chat prompt of SYSTEM_AND_USER."""
    body = {"model": server.model, "messages": SYSTEM_AND_USER}
    status, counted = call(f"{server.root_url}/tokenize", body, server.api_key)
    assert status == 200, counted
    return counted


def test_models_reports_the_context_length(vllm_server: VLLMServer) -> None:
    status, body = call(f"{vllm_server.base_url}/models", api_key=vllm_server.api_key)

    assert status == 200
    assert [(m["id"], m["max_model_len"]) for m in body["data"]] == [("tiny-llama", 512)]
    assert vllm_server.max_model_len == 512


def test_chat_completion_returns_usage(vllm_server: VLLMServer) -> None:
    status, reply = chat(vllm_server, max_tokens=8, temperature=0)

    assert status == 200
    assert reply["choices"][0]["message"]["role"] == "assistant"
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_greedy_completion_is_deterministic(vllm_server: VLLMServer) -> None:
    first = chat(vllm_server, max_tokens=16, temperature=0)[1]["choices"][0]["message"]["content"]
    second = chat(vllm_server, max_tokens=16, temperature=0)[1]["choices"][0]["message"]["content"]

    assert first == second


@pytest.mark.parametrize("api_key", ["wrong-key", None], ids=["wrong-key", "no-key"])
def test_bad_key_is_rejected(vllm_server: VLLMServer, api_key: str | None) -> None:
    body = {"model": vllm_server.model, "messages": SYSTEM_AND_USER}
    status, reply = call(f"{vllm_server.base_url}/chat/completions", body, api_key)

    assert (status, reply) == (401, {"error": "Unauthorized"})


def test_tokenize_counts_chat_prompt_tokens(vllm_server: VLLMServer) -> None:
    counted = tokenize_chat(vllm_server)
    reply = chat(vllm_server, max_tokens=1)[1]

    assert counted["count"] == len(counted["tokens"]) == reply["usage"]["prompt_tokens"]
    assert counted["max_model_len"] == 512


def test_chat_template_is_llama2_style(vllm_server: VLLMServer) -> None:
    body = {"model": vllm_server.model, "tokens": tokenize_chat(vllm_server)["tokens"]}
    status, text = call(f"{vllm_server.root_url}/detokenize", body, vllm_server.api_key)

    assert status == 200
    assert text["prompt"] == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"
