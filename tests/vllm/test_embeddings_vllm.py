"""`client.embed` against the real vLLM embedding server (the tiny model with ``--runner pooling``).

The same checks as tests/test_embeddings.py where a real server allows them: the body turnout
sends (seen by wrapping the provider's ``post``), vectors in input order, batching that gives
the same vectors and the same summed usage, cost from ``[prices]``, and the errors the real
server answers: 404 for ``/v1/embeddings`` on the chat (generation) server, 400 for
``dimensions``, the context-length error for an input over ``max_model_len``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client, EmbeddingResponse
from turnout.providers.openai import OpenAIProvider

from .conftest import VLLMServer

MODES = ["sync", "async"]
PRICE = Decimal("0.05")


def config(server: VLLMServer) -> dict[str, Any]:
    return {
        "providers": {"v": {"type": "vllm", "base_url": server.base_url, "api_key": server.api_key}},
        "prices": {f"v:{server.model}": {"input_per_million": PRICE, "output_per_million": 0}},
        "ledger": {"enabled": False},
    }


def embed(mode: str, server: VLLMServer, texts: list[str], sent: list[Any], **kwargs: Any) -> EmbeddingResponse:
    """Embed with a fresh client whose provider records every body it posts into ``sent``."""

    def spy(provider: OpenAIProvider) -> None:
        post, apost = provider.post, provider.apost

        def record(path: str, body: bytes) -> None:
            sent.append((path, json.loads(body)))

        def sync_post(path: str, body: bytes, *args: Any) -> Any:
            record(path, body)
            return post(path, body, *args)

        async def async_post(path: str, body: bytes, *args: Any) -> Any:
            record(path, body)
            return await apost(path, body, *args)

        provider.post, provider.apost = sync_post, async_post  # type: ignore[method-assign, assignment]

    if mode == "sync":
        with Client(config(server)) as client:
            spy(client.provider("v"))  # type: ignore[arg-type]
            return client.embed(f"v:{server.model}", texts, **kwargs)

    async def run() -> EmbeddingResponse:
        async with AsyncClient(config(server)) as client:
            spy(client.provider("v"))  # type: ignore[arg-type]
            return await client.embed(f"v:{server.model}", texts, **kwargs)

    return asyncio.run(run())


@pytest.mark.parametrize("mode", MODES)
def test_round_trip(vllm_embed_server: VLLMServer, mode: str) -> None:
    texts = ["The llama is a camelid.", "Alpacas hum.", "The llama is a camelid."]
    sent: list[Any] = []
    reply = embed(mode, vllm_embed_server, texts, sent)
    body = {"model": vllm_embed_server.model, "input": texts, "encoding_format": "base64"}
    assert sent == [("/embeddings", body)]
    assert reply.provider == "v" and reply.model == vllm_embed_server.model
    assert len(reply.vectors) == 3 and reply.dimensions == 128  # the tiny Llama's hidden size
    assert reply.vectors[0] == reply.vectors[2] != reply.vectors[1]
    prompt = reply.usage.prompt_tokens
    assert prompt is not None and prompt > 3 and reply.usage.completion_tokens == 0
    assert reply.usage.total_tokens == prompt
    assert reply.cost is not None and reply.cost.total == PRICE * prompt / 1_000_000
    assert [a.outcome for a in reply.attempts] == ["ok"]


def test_base64_decodes_to_the_float_reply(vllm_embed_server: VLLMServer) -> None:
    reply = embed("sync", vllm_embed_server, ["Hello there"], [])
    body = json.dumps({"model": vllm_embed_server.model, "input": ["Hello there"], "encoding_format": "float"})
    request = urllib.request.Request(
        f"{vllm_embed_server.base_url}/embeddings",
        data=body.encode(),
        headers={**vllm_embed_server.headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        floats = json.load(response)["data"][0]["embedding"]
    assert reply.vectors[0] == floats  # float32 values, exactly


@pytest.mark.parametrize("mode", MODES)
def test_batches_give_the_same_vectors_and_usage(vllm_embed_server: VLLMServer, mode: str) -> None:
    texts = ["one", "two words", "three little words", "four", "five and more"]
    whole = embed(mode, vllm_embed_server, texts, [])
    sent: list[Any] = []
    batched = embed(mode, vllm_embed_server, texts, sent, batch_size=2)
    assert sorted(len(body["input"]) for _, body in sent) == [1, 2, 2]
    assert [a.outcome for a in batched.attempts] == ["ok"] * 3
    assert batched.usage == whole.usage
    for got, want in zip(batched.vectors, whole.vectors, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_the_chat_server_serves_no_embeddings(vllm_server: VLLMServer, mode: str) -> None:
    with pytest.raises(turnout.EmbeddingsNotSupportedError) as caught:
        embed(mode, vllm_server, ["hi"], [])
    assert caught.value.status_code == 404 and caught.value.body == {"detail": "Not Found"}


def test_errors_the_real_server_answers(vllm_embed_server: VLLMServer) -> None:
    with pytest.raises(turnout.BadRequestError, match="Matryoshka"):
        embed("sync", vllm_embed_server, ["hi"], [], dimensions=16)
    with pytest.raises(turnout.ContextWindowExceededError):
        embed("sync", vllm_embed_server, ["word " * 700], [])
