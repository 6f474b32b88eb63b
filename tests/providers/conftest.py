"""One shared chat scenario suite, many backends: each `Backend` is a fake server plus the config that uses it.

Backends: ``openai`` (OpenAI-shaped fake), ``azure`` (`FakeAzureServer`, a deployment with an
api-key), ``vllm`` (vLLM-shaped fake), ``together`` (the preset over an OpenAI-shaped fake, priced
from the catalogue), and ``huggingface`` in ``chat`` and ``text`` mode over
`FakeTGIServer` and in chat mode over the vLLM-shaped fake (an endpoint running vLLM), driven through
the real huggingface_hub client.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpcore2
import pytest

from turnout.providers import _http
from turnout.testing import FakeAzureServer, FakeServer, FakeTGIServer

from ..conftest import CANARY_KEY, LLAMA

LLAMA_70B = "meta-llama/Llama-2-70b-chat-hf"
#: One attempt per target: these tests are about providers, tests/policies covers retries.
ONE_ATTEMPT = {"retry": {"max_attempts": 1}}
CONFIG_PRICE = {"input_per_million": "0.10", "output_per_million": "0.20"}


@dataclass
class Backend:
    """A fake server and the provider config that points at it."""

    name: str
    server: FakeServer | FakeAzureServer | FakeTGIServer
    provider: dict[str, Any]
    model: str
    #: USD per 1M input and output tokens the reply's cost must use.
    price: tuple[Decimal, Decimal]
    prices: dict[str, Any] = field(default_factory=dict)
    streams_tools: bool = True
    text_mode: bool = False

    @property
    def target(self) -> str:
        return f"p:{self.model}"

    def config(self, **extra: Any) -> dict[str, Any]:
        """A config whose only provider is ``p``, this backend."""
        config: dict[str, Any] = {"providers": {"p": self.provider}, "prices": self.prices, "defaults": ONE_ATTEMPT}
        config.update(extra)
        return config

    @property
    def chat_requests(self) -> list[Any]:
        """The requests that carried a chat (the raw-generation route in text mode)."""
        if isinstance(self.server, FakeTGIServer) and self.text_mode:
            return self.server.generate_requests
        return self.server.chat_requests


def _openai() -> Iterator[Backend]:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        provider = {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}
        yield Backend("openai", server, provider, "gpt-4o-mini", (Decimal("0.15"), Decimal("0.60")))


def _azure() -> Iterator[Backend]:
    with FakeAzureServer({"my-mini": "gpt-4o-mini"}, api_key=CANARY_KEY, api_version="2024-10-21") as server:
        provider = {
            "type": "azure",
            "endpoint": server.endpoint,
            "api_key": CANARY_KEY,
            "deployments": {"gpt-4o-mini": "my-mini"},
        }
        # genai-prices has no Azure entry for gpt-4o-mini: its azure provider falls back to OpenAI's price
        yield Backend("azure", server, provider, "gpt-4o-mini", (Decimal("0.15"), Decimal("0.60")))


def _vllm() -> Iterator[Backend]:
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as server:
        provider = {"type": "vllm", "base_url": server.base_url}
        price = (Decimal("0.10"), Decimal("0.20"))
        yield Backend("vllm", server, provider, LLAMA, price, prices={f"p:{LLAMA}": CONFIG_PRICE})


def _together() -> Iterator[Backend]:
    with FakeServer(flavor="openai", models=[LLAMA_70B], api_key=CANARY_KEY) as server:
        provider = {"type": "together", "base_url": server.base_url, "api_key": CANARY_KEY}
        # Together's Llama 2 70B list price in genai-prices: $0.90 in and out per 1M tokens
        yield Backend("together", server, provider, LLAMA_70B, (Decimal("0.9"), Decimal("0.9")))


def _huggingface(mode: str) -> Callable[[], Iterator[Backend]]:
    def make() -> Iterator[Backend]:
        with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as server:
            provider = {"type": "huggingface", "base_url": server.url, "api_key": CANARY_KEY, "mode": mode}
            price = (Decimal("0.10"), Decimal("0.20"))
            yield Backend(
                f"huggingface-{mode}",
                server,
                provider,
                LLAMA,
                price,
                prices={f"p:{LLAMA}": CONFIG_PRICE},
                streams_tools=mode == "chat",
                text_mode=mode == "text",
            )

    return make


def _huggingface_on_vllm() -> Iterator[Backend]:
    """An Inference Endpoint running the vLLM engine: the ``huggingface`` provider over vLLM's wire format."""
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as server:
        provider = {"type": "huggingface", "base_url": server.base_url, "response_format_style": "openai"}
        price = (Decimal("0.10"), Decimal("0.20"))
        yield Backend("huggingface-vllm", server, provider, LLAMA, price, prices={f"p:{LLAMA}": CONFIG_PRICE})


BACKENDS: dict[str, Callable[[], Iterator[Backend]]] = {
    "openai": _openai,
    "azure": _azure,
    "vllm": _vllm,
    "together": _together,
    "huggingface-chat": _huggingface("chat"),
    "huggingface-text": _huggingface("text"),
    "huggingface-vllm": _huggingface_on_vllm,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from BACKENDS[request.param]()


@pytest.fixture
def fake_tgi() -> Iterator[FakeTGIServer]:
    """A TGI fake serving Llama 2 7B chat (4095 / 4096 tokens), requiring the canary key."""
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as server:
        yield server


def hf_config(server: FakeTGIServer, mode: str = "chat", **provider: Any) -> dict[str, Any]:
    """A config with one ``huggingface`` provider ``hf`` on ``server`` (config price 0.10 / 0.20)."""
    settings = {"type": "huggingface", "base_url": server.url, "api_key": CANARY_KEY, "mode": mode, **provider}
    return {
        "providers": {"hf": {k: v for k, v in settings.items() if v is not None}},
        "prices": {f"hf:{LLAMA}": CONFIG_PRICE},
        "defaults": ONE_ATTEMPT,
    }


@pytest.fixture
def tls_contexts_made(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """Every TLS context httpcore2 builds during the test (the process's shared one forgotten first)."""
    made: list[ssl.SSLContext] = []
    real = httpcore2.default_ssl_context

    def counted(**kwargs: Any) -> ssl.SSLContext:
        made.append(real(**kwargs))
        return made[-1]

    monkeypatch.setattr(httpcore2, "default_ssl_context", counted)
    monkeypatch.setattr(_http, "_TLS_CONTEXTS", {})
    return made
