"""A provider of your own over HTTP: TGI's native /generate API, written on turnout's HTTP seam.

`turnout.providers.http.HTTPProvider` gives it connection pools, network settings, typed errors
and masking; `iter_sse_data` decodes its stream. Registered with `register`, it joins routes,
retries, fallback, budgets and the ledger like a built-in type (docs/plugins.md).
Runs against local fake servers: no key, no network.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Literal

import turnout
from turnout.config import ProviderConfig
from turnout.errors import ResponseValidationError, StreamInterruptedError
from turnout.providers import register
from turnout.providers.http import HTTPProvider, afinish_sse, aiter_sse_data, finish_sse, iter_sse_data
from turnout.testing import FakeServer, FakeTGIServer, Fault
from turnout.types import ChatChunk, ChatRequest, ChatResponse, Choice, Usage

_FINISH: dict[str, Any] = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


class GenerateConfig(ProviderConfig):
    type: Literal["tgi-generate"] = "tgi-generate"
    max_new_tokens: int = 64  # a key of its own, validated when turnout.toml loads


class GenerateProvider(HTTPProvider):
    """Chat over a TGI server's native ``/generate`` and ``/generate_stream`` routes."""

    config_model: ClassVar[type[ProviderConfig]] = GenerateConfig

    def _body(self, request: ChatRequest) -> bytes:
        assert isinstance(self.config, GenerateConfig)
        prompt = "".join(f"[INST] {m.content} [/INST]" for m in request.messages if m.role == "user")  # Llama 2
        parameters = {"max_new_tokens": request.max_tokens or self.config.max_new_tokens, "details": True}
        return json.dumps({"inputs": prompt, "parameters": parameters}).encode()

    def _reply(self, body: dict[str, Any], model: str) -> ChatResponse:
        text, details = body.get("generated_text"), body.get("details") or {}
        if not isinstance(text, str):
            raise ResponseValidationError("no generated_text in the reply", provider=self.name, model=model)
        finish = _FINISH.get(details.get("finish_reason", ""), "other")
        usage = Usage(completion_tokens=details.get("generated_tokens"))  # TGI does not count the prompt here
        choice = Choice(index=0, text=text, finish_reason=finish)
        return ChatResponse(
            text=text, choices=[choice], usage=usage, provider=self.name, model=model, finish_reason=finish
        )

    def chat(self, model: str, request: ChatRequest) -> ChatResponse:
        return self._reply(self.post("/generate", self._body(request), request, model).json(), model)

    async def achat(self, model: str, request: ChatRequest) -> ChatResponse:
        return self._reply((await self.apost("/generate", self._body(request), request, model)).json(), model)

    def _chunk(self, data: bytes) -> list[ChatChunk]:
        event = json.loads(data)
        chunks = [] if event["token"].get("special") else [ChatChunk(text=event["token"]["text"])]
        if event.get("generated_text") is not None:  # the last event
            details = event.get("details") or {}
            finish = _FINISH.get(details.get("finish_reason", ""), "other")
            chunks.append(
                ChatChunk(finish_reason=finish, usage=Usage(completion_tokens=details.get("generated_tokens")))
            )
        return chunks

    def stream(self, model: str, request: ChatRequest) -> Iterator[ChatChunk]:
        with self.post_stream("/generate_stream", self._body(request), request, model) as response:
            events = iter_sse_data(response.iter_bytes())
            for data in events:
                chunks = self._chunk(data)
                yield from chunks
                if chunks and chunks[-1].finish_reason is not None:
                    finish_sse(events)  # the connection goes back to the pool
                    return
        raise StreamInterruptedError("the stream ended before its last event", provider=self.name, model=model)

    async def astream(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        async with self.apost_stream("/generate_stream", self._body(request), request, model) as response:
            events = aiter_sse_data(response.aiter_bytes())
            async for data in events:
                chunks = self._chunk(data)
                for chunk in chunks:
                    yield chunk
                if chunks and chunks[-1].finish_reason is not None:
                    await afinish_sse(events)
                    return
        raise StreamInterruptedError("the stream ended before its last event", provider=self.name, model=model)


def main() -> None:
    register("tgi-generate", GenerateProvider)
    with FakeTGIServer() as tgi, FakeServer(flavor="vllm", models=["llama"]) as backup:
        config = {
            "providers": {
                "mine": {"type": "tgi-generate", "base_url": tgi.url, "max_new_tokens": 32},
                "backup": {"type": "vllm", "base_url": backup.base_url},
            },
            "models": {"fast": {"targets": ["mine:llama-2", "backup:llama"], "retry": {"initial_delay": 0.01}}},
            "prices": {
                "mine:llama-2": {"input_per_million": 0, "output_per_million": 1},
                "backup:llama": {"input_per_million": 0, "output_per_million": 1},
            },
        }
        with turnout.Client(config) as client:
            reply = client.chat("fast", "Say hello")
            tokens = reply.usage.completion_tokens
            print(f"chat: {reply.provider} {reply.finish_reason} completion_tokens={tokens} cost={reply.cost}")
            with client.stream("fast", "Say hello") as stream:
                text = "".join(chunk.text or "" for chunk in stream)
            print(f"stream: {len(text) > 0} {stream.response.provider}")
            tgi.enqueue(*[Fault.server_error(503)] * 3)  # TGI's own error body, classified by the seam
            reply = client.chat("fast", "Say hello")
            print("fallback:", " -> ".join(f"{a.provider} {a.outcome}" for a in reply.attempts))


if __name__ == "__main__":
    main()
