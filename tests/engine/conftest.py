"""A scripted in-memory provider for the engine's decision tests (fast enough for mutation runs).

The engine's promises are also proven over real HTTP against the fake servers (test_flow.py);
these tests pin each decision exactly, without sockets, so `make mutation` can run them per mutant.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import turnout
from turnout.embeddings import EmbeddingRequest, EmbeddingResponse
from turnout.providers import register
from turnout.testing import FakeClock


class Stub(turnout.Provider):
    """Answers from a script: each item is a reply text, a list of chunks, or an exception to raise."""

    scripts: dict[str, list[Any]] = {}
    sent: dict[str, list[Any]] = {}
    windows: dict[str, int | None] = {}
    counts: dict[str, int | None] = {}

    def _next(self, request: Any) -> Any:
        self.sent.setdefault(self.name, []).append(request)
        script = self.scripts.get(self.name) or []
        item = script.pop(0) if script else "ok"
        if isinstance(item, BaseException):
            raise item
        return item

    def chat(self, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        return reply(self._next(request), self.name, model)

    async def achat(self, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        return self.chat(model, request)

    def stream(self, model: str, request: turnout.ChatRequest) -> Iterator[turnout.ChatChunk]:
        item = self._next(request)
        for chunk in item if isinstance(item, list) else [item]:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk if isinstance(chunk, turnout.ChatChunk) else turnout.ChatChunk(text=chunk)
        yield turnout.ChatChunk(finish_reason="stop", usage=turnout.Usage(prompt_tokens=1, completion_tokens=1))

    async def astream(self, model: str, request: turnout.ChatRequest) -> AsyncIterator[turnout.ChatChunk]:
        for chunk in self.stream(model, request):
            yield chunk

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        item = self._next(request)
        vectors = [[float(len(t))] for t in request.input] if item == "ok" else item
        usage = turnout.Usage(prompt_tokens=len(request.input), completion_tokens=0, total_tokens=len(request.input))
        return EmbeddingResponse(vectors=vectors, usage=usage, provider=self.name, model=model)

    async def aembed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        return self.embed(model, request)

    embed_batch_size = 2

    def context_window(self, model: str) -> int | None:
        return self.windows.get(self.name)

    def count_tokens(self, model: str, request: turnout.ChatRequest) -> int | None:
        return self.counts.get(self.name)

    async def acontext_window(self, model: str) -> int | None:
        return self.context_window(model)

    async def acount_tokens(self, model: str, request: turnout.ChatRequest) -> int | None:
        return self.count_tokens(model, request)


def reply(text: str, provider: str, model: str) -> turnout.ChatResponse:
    usage = turnout.Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    choice = turnout.Choice(index=0, text=text, finish_reason="stop")
    return turnout.ChatResponse(text=text, choices=[choice], usage=usage, provider=provider, model=model)


@pytest.fixture(autouse=True)
def _stub_state() -> Iterator[None]:
    register("engine-stub", Stub)
    Stub.scripts, Stub.sent, Stub.windows, Stub.counts = {}, {}, {}, {}
    yield
    for thread in threading.enumerate():  # a sync hedge's loser still sending: let it finish in its own test
        if thread.name.startswith("turnout-hedge"):
            thread.join(10)


def stub_config(*names: str, **route: Any) -> dict[str, Any]:
    """A route over stub targets ``a:m``, ``b:m``, ... (a no-wait retry policy unless the route says)."""
    route.setdefault("retry", {"jitter": 0})
    return {
        "providers": {n: {"type": "engine-stub"} for n in names},
        "models": {"r": {"targets": [f"{n}:m" for n in names], **route}},
        "prices": {f"{n}:m": {"input_per_million": 1, "output_per_million": 2} for n in names},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
