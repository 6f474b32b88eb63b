"""Embeddings on three providers with one call: OpenAI, vLLM serving an embedding model, and HF/TEI.

Runs against turnout's in-process fakes: an OpenAI-shaped server, a vLLM server started as a
pooling (embedding) server, a vLLM server serving a chat model (which has no embeddings) and a
Text Embeddings Inference server (what a Hugging Face embedding endpoint runs).
"""

from __future__ import annotations

import asyncio
import math

import turnout
from turnout.testing import FakeServer, FakeTEIServer


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


with (
    FakeServer("openai", api_key="sk-demo") as cloud,
    FakeServer("vllm", models=["BAAI/bge-small-en-v1.5"], runner="pooling") as local,
    FakeServer("vllm", models=["meta-llama/Llama-2-7b-chat-hf"]) as chat_only,
    FakeTEIServer("BAAI/bge-small-en-v1.5") as tei,
):
    config = {
        "providers": {
            "openai": {"type": "openai", "api_key": "sk-demo", "base_url": cloud.base_url},
            "local": {"type": "vllm", "base_url": local.base_url},
            "chat": {"type": "vllm", "base_url": chat_only.base_url},
            "endpoint": {"type": "huggingface", "base_url": tei.url},
        },
        "models": {"vectors": {"targets": ["local:BAAI/bge-small-en-v1.5"]}},
        "prices": {"local:BAAI/bge-small-en-v1.5": {"input_per_million": 0.01, "output_per_million": 0}},
        "ledger": {"enabled": False},
    }
    texts = ["Llamas are camelids.", "Alpacas hum to each other.", "Llamas are camelids."]

    with turnout.Client(config) as client:
        # OpenAI: 5 texts, at most 2 per request -> 3 requests, vectors back in input order.
        reply = client.embed("openai:text-embedding-3-small", [*texts, "a", "b"], batch_size=2)
        print(f"openai: {len(reply.vectors)} vectors of {reply.dimensions} in {len(reply.attempts)} requests")
        print(f"openai usage: {reply.usage.prompt_tokens} tokens, cost {reply.cost}")

        # vLLM serving an embedding model, through an alias; priced from [prices].
        reply = client.embed("vectors", texts)
        print(f"vllm: same text, cosine {cosine(reply.vectors[0], reply.vectors[2]):.3f}; cost {reply.cost}")

        # Hugging Face feature extraction (TEI): the token count is not reported, so usage and cost are None.
        reply = client.embed("endpoint:BAAI/bge-small-en-v1.5", texts)
        print(f"huggingface: {len(reply.vectors)} vectors, prompt_tokens={reply.usage.prompt_tokens} cost={reply.cost}")

        # A vLLM server serving a chat model has no /v1/embeddings: a typed error says so.
        try:
            client.embed("chat:meta-llama/Llama-2-7b-chat-hf", texts)
        except turnout.EmbeddingsNotSupportedError as exc:
            print(f"chat model: {type(exc).__name__} (HTTP {exc.status_code})")

    async def main() -> None:
        async with turnout.AsyncClient(config) as aclient:  # batches are sent concurrently
            reply = await aclient.embed("vectors", [f"document {i}" for i in range(10)], batch_size=4)
            requests = len(reply.attempts)
            print(f"async: {len(reply.vectors)} vectors, {reply.usage.prompt_tokens} tokens in {requests} requests")

    asyncio.run(main())
