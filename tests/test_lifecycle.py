"""A client's life: an `AsyncClient` outlives its event loop; a closed client says so instead of reopening."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeServer, FakeTGIServer

from .conftest import CANARY_KEY, LLAMA

PRICE = {"input_per_million": "0.10", "output_per_million": "0.20"}


@pytest.fixture(params=["vllm", "huggingface"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, Any], FakeServer | FakeTGIServer]]:
    """A one-provider config (``p``) and its server: vLLM over httpx2, or TGI through huggingface_hub."""
    if request.param == "vllm":
        with FakeServer(flavor="vllm", models=[LLAMA]) as server:
            yield {"type": "vllm", "base_url": server.base_url}, server
    else:
        with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as tgi:
            yield {"type": "huggingface", "base_url": tgi.url, "api_key": CANARY_KEY}, tgi


def _config(provider: dict[str, Any]) -> dict[str, Any]:
    return {"providers": {"p": provider}, "prices": {f"p:{LLAMA}": PRICE}}


def test_an_async_client_works_across_event_loops(target: tuple[dict[str, Any], Any]) -> None:
    provider, _ = target
    client = AsyncClient(config=_config(provider))

    async def chat() -> str:
        return (await client.chat(f"p:{LLAMA}", "Hi")).text

    async def stream() -> str:
        async with client.stream(f"p:{LLAMA}", "Hi there") as chunks:
            return (await chunks.get_response()).text

    # each asyncio.run() is a new loop, as pytest-asyncio gives each test
    assert asyncio.run(chat()) == "Hi"
    assert asyncio.run(chat()) == "Hi"
    assert asyncio.run(stream()) == "Hi there"
    assert asyncio.run(chat()) == "Hi"
    asyncio.run(client.aclose())


def test_a_closed_client_sends_nothing(fake_vllm: FakeServer) -> None:
    client = Client(config=_config({"type": "vllm", "base_url": fake_vllm.base_url}))
    with client:
        assert client.chat(f"p:{LLAMA}", "Hi").text == "Hi"
    sent = len(fake_vllm.requests)
    calls: list[Callable[[], object]] = [
        lambda: client.chat(f"p:{LLAMA}", "Hi"),
        lambda: client.stream(f"p:{LLAMA}", "Hi"),
        lambda: client.embed(f"p:{LLAMA}", "Hi"),
        lambda: client.estimate_cost(f"p:{LLAMA}", "Hi"),
    ]
    for call in calls:
        with pytest.raises(turnout.ClientClosedError, match="this Client was closed; nothing was sent. Create a new"):
            call()
    assert len(fake_vllm.requests) == sent


def test_a_closed_async_client_sends_nothing(fake_vllm: FakeServer) -> None:
    async def go() -> None:
        async with AsyncClient(config=_config({"type": "vllm", "base_url": fake_vllm.base_url})) as client:
            assert (await client.chat(f"p:{LLAMA}", "Hi")).text == "Hi"
        sent = len(fake_vllm.requests)
        with pytest.raises(turnout.ClientClosedError, match="this AsyncClient was closed"):
            await client.chat(f"p:{LLAMA}", "Hi")
        with pytest.raises(turnout.ClientClosedError):
            client.stream(f"p:{LLAMA}", "Hi")
        with pytest.raises(turnout.ClientClosedError):
            await client.embed(f"p:{LLAMA}", "Hi")
        assert len(fake_vllm.requests) == sent

    asyncio.run(go())
