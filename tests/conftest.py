"""Shared fixtures: fake OpenAI- and vLLM-shaped servers on 127.0.0.1, and configs pointing at them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from turnout import AsyncClient, ChatChunk, ChatResponse, Client
from turnout.testing import FakeServer

CANARY_KEY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
LLAMA = "meta-llama/Llama-2-7b-chat-hf"


@pytest.fixture(autouse=True, scope="session")
def _ledger_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the spend ledger of every test (and example subprocess) out of the user's data dir."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TURNOUT_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"))
        yield


@pytest.fixture
def fake_openai() -> Iterator[FakeServer]:
    """An OpenAI-shaped fake serving gpt-4o-mini, requiring the canary key."""
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        yield server


@pytest.fixture
def fake_vllm() -> Iterator[FakeServer]:
    """A vLLM-shaped fake serving Llama 2 7B chat with a 4096-token window."""
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as server:
        yield server


def make_config(openai: FakeServer, vllm: FakeServer, **extra: Any) -> dict[str, Any]:
    """A config with both fakes: alias ``fast`` tries openai first, then the local vLLM."""
    config: dict[str, Any] = {
        "providers": {
            "openai": {"type": "openai", "base_url": openai.base_url, "api_key": CANARY_KEY},
            "local": {"type": "vllm", "base_url": vllm.base_url},
        },
        "models": {"fast": {"targets": ["openai:gpt-4o-mini", f"local:{LLAMA}"]}},
        "prices": {f"local:{LLAMA}": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        # one attempt per target: these tests are about routing; tests/policies/ covers retries
        "defaults": {"retry": {"max_attempts": 1}},
    }
    config.update(extra)
    return config


@pytest.fixture
def config(fake_openai: FakeServer, fake_vllm: FakeServer) -> dict[str, Any]:
    return make_config(fake_openai, fake_vllm)


class Runner:
    """Runs the same call through `Client` or `AsyncClient`, so one test covers both."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def chat(self, config: Any, model: str, messages: Any, **options: Any) -> ChatResponse:
        if self.mode == "sync":
            with Client(config=config) as client:
                return client.chat(model, messages, **options)

        async def go() -> ChatResponse:
            async with AsyncClient(config=config) as client:
                return await client.chat(model, messages, **options)

        return asyncio.run(go())

    def stream(self, config: Any, model: str, messages: Any, **options: Any) -> tuple[list[ChatChunk], ChatResponse]:
        if self.mode == "sync":
            with Client(config=config) as client, client.stream(model, messages, **options) as stream:
                chunks = list(stream)
                return chunks, stream.response

        async def go() -> tuple[list[ChatChunk], ChatResponse]:
            async with AsyncClient(config=config) as client, client.stream(model, messages, **options) as stream:
                chunks = [chunk async for chunk in stream]
                return chunks, stream.response

        return asyncio.run(go())

    def call(self, streamed: bool, config: Any, model: str, messages: Any, **options: Any) -> ChatResponse:
        """`chat` or `stream` (returning the final reply), chosen by ``streamed``."""
        if streamed:
            return self.stream(config, model, messages, **options)[1]
        return self.chat(config, model, messages, **options)


@pytest.fixture(params=["sync", "async"])
def runner(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)
