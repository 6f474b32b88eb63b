"""`client.embed` / `AsyncClient.embed` over HTTP against each provider's fake server.

One suite, parametrized over providers (OpenAI, vLLM as a pooling server, an OpenAI-compatible
preset, Hugging Face feature extraction against a TEI server) and over the sync and async
clients: vectors in input order, the exact body each server received, usage, cost, batching,
retries, fallback and the errors for a model that serves no embeddings. tests/vllm/ runs the
same checks against a real vLLM embedding server.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client, EmbeddingResponse
from turnout.testing import FakeClock, FakeServer, FakeTEIServer, Fault, RecordedRequest
from turnout.testing._embed import vector

Mode = str  # "sync" | "async"
MODES = ["sync", "async"]


@dataclass
class Target:
    """One provider under test: its config, the model, and what its server should receive and return."""

    name: str
    config: dict[str, Any]
    model: str
    requests: Callable[[], list[RecordedRequest]]
    body: Callable[[list[str]], dict[str, Any]]
    vector: Callable[[str], list[float]] | None  # None: the server's vectors are not known in advance
    tokens: Callable[[list[str]], int | None]  # expected prompt_tokens of one request
    price: Decimal | None = None  # USD per million input tokens, when priced

    def cfg(self, **models: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"providers": {"p": self.config}, "ledger": {"enabled": False}}
        if self.price is not None and self.name in ("vllm", "compatible"):
            data["prices"] = {f"p:{self.model}": {"input_per_million": self.price, "output_per_million": 0}}
        if models:
            data["models"] = models
        return data


def _words(texts: list[str]) -> int:
    from turnout.testing import count_tokens

    return sum(count_tokens(t) for t in texts)


#: The fake behind each target name (one is TEI's, not the OpenAI wire).
Servers = dict[str, FakeServer | FakeTEIServer]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with (
        FakeServer("openai", api_key="sk-test") as openai,
        FakeServer("vllm", models=["bge-small"], runner="pooling") as vllm,
        FakeServer("openai") as compatible,
        FakeTEIServer() as tei,
    ):
        yield {"openai": openai, "vllm": vllm, "compatible": compatible, "hf": tei}


def make_target(name: str, servers: Servers) -> Target:
    server = servers[name]
    if isinstance(server, FakeTEIServer):
        return Target(
            name,
            {"type": "huggingface", "base_url": server.url},
            server.model_id,
            lambda: server.embed_requests,
            lambda texts: {"inputs": texts},
            lambda text: vector(server.model_id, text),
            lambda texts: None,  # huggingface_hub hands back no headers: the count is unknown
        )
    if name == "openai":
        model = "text-embedding-3-small"
        return Target(
            name,
            {"type": "openai", "api_key": "sk-test", "base_url": server.base_url},
            model,
            lambda: server.embedding_requests,
            lambda texts: {"model": model, "input": texts, "encoding_format": "base64"},
            lambda text: vector(model, text),
            _words,
            Decimal("0.02"),  # genai-prices: text-embedding-3-small
        )
    if name == "vllm":
        model = "bge-small"
        return Target(
            name,
            {"type": "vllm", "base_url": server.base_url},
            model,
            lambda: server.embedding_requests,
            lambda texts: {"model": model, "input": texts, "encoding_format": "base64"},
            lambda text: vector(model, text),
            lambda texts: _words(texts) + len(texts),  # vLLM counts BOS
            Decimal("0.05"),
        )
    if name == "compatible":
        model = "togethercomputer/m2-bert-80M-8k-retrieval-embedding"
        return Target(
            name,
            {"type": "together", "api_key": "tg-key", "base_url": server.base_url},
            model,
            lambda: server.embedding_requests,
            lambda texts: {"model": model, "input": texts, "encoding_format": "float"},
            lambda text: vector(model, text),
            _words,
            Decimal("0.01"),
        )
    raise AssertionError(name)


@pytest.fixture(params=["openai", "vllm", "compatible", "hf"])
def target(request: pytest.FixtureRequest, servers: Servers) -> Iterator[Target]:
    for server in servers.values():
        server.reset()
    yield make_target(request.param, servers)


def embed(mode: Mode, cfg: dict[str, Any], model: str, texts: Sequence[str] | str, **kwargs: Any) -> EmbeddingResponse:
    """``client.embed(...)`` with a fresh sync or async client."""
    if mode == "sync":
        with Client(cfg, clock=kwargs.pop("clock", None)) as client:
            return client.embed(model, texts, **kwargs)

    async def run() -> EmbeddingResponse:
        async with AsyncClient(cfg, clock=kwargs.pop("clock", None)) as client:
            return await client.embed(model, texts, **kwargs)

    return asyncio.run(run())


def check_reply(target: Target, reply: EmbeddingResponse, texts: list[str], batches: list[list[str]]) -> None:
    """What every provider must give back for ``texts`` sent as ``batches``."""
    assert reply.provider == "p"
    assert reply.model == target.model
    assert len(reply.vectors) == len(texts)
    if target.vector is not None:
        assert reply.vectors == [target.vector(t) for t in texts]  # in input order, exact float32 values
    assert reply.dimensions == len(reply.vectors[0]) > 0
    assert [a.outcome for a in reply.attempts] == ["ok"] * len(batches)
    counts = [target.tokens(b) for b in batches]
    if any(c is None for c in counts):
        assert reply.usage.prompt_tokens is None and reply.cost is None
        return
    total = sum(c for c in counts if c is not None)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (total, 0, total)
    if target.price is None:
        assert reply.cost is None
    else:
        assert reply.cost is not None
        assert reply.cost.total == reply.cost.input == target.price * total / 1_000_000
        assert reply.cost.output == 0


@pytest.mark.parametrize("mode", MODES)
def test_embed_round_trip(target: Target, mode: Mode) -> None:
    texts = ["The llama is a camelid.", "Alpacas hum.", "The llama is a camelid."]
    reply = embed(mode, target.cfg(), f"p:{target.model}", texts)
    check_reply(target, reply, texts, [texts])
    assert reply.vectors[0] == reply.vectors[2] != reply.vectors[1]
    assert [r.json for r in target.requests()] == [target.body(texts)]


@pytest.mark.parametrize("mode", MODES)
def test_batches_keep_order_and_sum_usage(target: Target, mode: Mode) -> None:
    texts = ["one", "two words", "three little words", "four", "five and more"]
    reply = embed(mode, target.cfg(), f"p:{target.model}", texts, batch_size=2)
    batches = [texts[0:2], texts[2:4], texts[4:5]]
    check_reply(target, reply, texts, batches)
    sent = [r.json for r in target.requests()]
    expected = [target.body(b) for b in batches]
    if mode == "async":  # batches are sent concurrently: arrival order is not fixed
        key = repr
        sent, expected = sorted(sent, key=key), sorted(expected, key=key)
    assert sent == expected


@pytest.mark.parametrize("mode", MODES)
def test_single_string_and_an_alias_route(target: Target, mode: Mode) -> None:
    cfg = target.cfg(vectors={"targets": [f"p:{target.model}"]})
    reply = embed(mode, cfg, "vectors", "Hello there")
    check_reply(target, reply, ["Hello there"], [["Hello there"]])
    assert [r.json for r in target.requests()] == [target.body(["Hello there"])]


@pytest.mark.parametrize("mode", MODES)
def test_rate_limit_is_retried_per_batch(target: Target, mode: Mode, servers: Servers) -> None:
    servers[target.name].enqueue(Fault.rate_limit(retry_after=2))
    clock = FakeClock()
    texts = ["a", "b", "c"]
    reply = embed(mode, target.cfg(), f"p:{target.model}", texts, batch_size=2, clock=clock)
    assert reply.vectors == [target.vector(t) for t in texts] if target.vector else True
    outcomes = [a.outcome for a in reply.attempts]
    assert sorted(outcomes) == ["RateLimitError", "ok", "ok"]
    assert len(target.requests()) == 3
    if target.name != "hf":  # TEI's 429 carries no Retry-After
        assert clock.sleeps == [2.0]


def test_default_batch_sizes(servers: Servers) -> None:
    hf = make_target("hf", servers)
    servers["hf"].reset()
    reply = embed("sync", hf.cfg(), f"p:{hf.model}", [f"text {i}" for i in range(33)])
    assert [len(r.json["inputs"]) for r in hf.requests()] == [32, 1]  # TEI's max_client_batch_size
    assert len(reply.vectors) == 33
    openai = make_target("openai", servers)
    servers["openai"].reset()
    embed("sync", openai.cfg(), f"p:{openai.model}", ["x"] * 2049)
    assert [len(r.json["input"]) for r in openai.requests()] == [2048, 1]  # OpenAI's 2048 inputs per request


@pytest.mark.parametrize("mode", MODES)
def test_dimensions_are_sent(mode: Mode, servers: Servers) -> None:
    openai = make_target("openai", servers)
    servers["openai"].reset()
    reply = embed(mode, openai.cfg(), f"p:{openai.model}", ["short"], dimensions=4, user="u-1")
    assert reply.dimensions == 4 and reply.vectors == [vector(openai.model, "short", 4)]
    body = {"model": openai.model, "input": ["short"], "encoding_format": "base64", "dimensions": 4, "user": "u-1"}
    assert [r.json for r in openai.requests()] == [body]


@pytest.mark.parametrize("mode", MODES)
def test_vllm_serving_a_chat_model_is_a_clear_error(mode: Mode) -> None:
    with FakeServer("vllm", models=["llama"]) as server:  # a generation model: no /v1/embeddings
        cfg = {"providers": {"v": {"type": "vllm", "base_url": server.base_url}}, "ledger": {"enabled": False}}
        with pytest.raises(turnout.EmbeddingsNotSupportedError) as caught:
            embed(mode, cfg, "v:llama", ["hi"])
        assert [r.json for r in server.embedding_requests] == [
            {"model": "llama", "input": ["hi"], "encoding_format": "base64"}
        ]
    error = caught.value
    assert isinstance(error, turnout.BadRequestError) and error.status_code == 404 and not error.retryable
    assert "--runner pooling" in str(error) and error.body == {"detail": "Not Found"}
    assert [a.outcome for a in error.attempts] == ["EmbeddingsNotSupportedError"]  # not retried


@pytest.mark.parametrize("mode", MODES)
def test_openai_chat_model_and_unknown_vllm_model(mode: Mode, servers: Servers) -> None:
    openai = make_target("openai", servers)
    with pytest.raises(turnout.EmbeddingsNotSupportedError) as caught:
        embed(mode, openai.cfg(), "p:gpt-4o-mini", ["hi"])
    assert caught.value.status_code == 403
    vllm = make_target("vllm", servers)
    with pytest.raises(turnout.NotFoundError) as missing:  # a wrong model name stays a NotFoundError
        embed(mode, vllm.cfg(), "p:no-such-model", ["hi"])
    assert not isinstance(missing.value, turnout.EmbeddingsNotSupportedError)
    assert missing.value.message == "The model `no-such-model` does not exist."


@pytest.mark.parametrize("mode", MODES)
def test_falls_back_with_the_whole_input(mode: Mode, servers: Servers) -> None:
    vllm, openai = make_target("vllm", servers), make_target("openai", servers)
    for server in servers.values():
        server.reset()
    servers["vllm"].enqueue(*[Fault.server_error(503)] * 6)  # every try of every batch fails
    cfg = {
        "providers": {"local": vllm.config, "cloud": openai.config},
        "models": {"vectors": {"targets": [f"local:{vllm.model}", f"cloud:{openai.model}"]}},
        "ledger": {"enabled": False},
    }
    texts = ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", turnout.CostUnknownWarning)
        reply = embed(mode, cfg, "vectors", texts, batch_size=2, clock=FakeClock())
    assert reply.provider == "cloud" and reply.vectors == [vector(openai.model, t) for t in texts]
    sent = sorted(r.json["input"] for r in openai.requests())  # async: in any order
    assert sent == [["a", "b"], ["c"]]  # the whole input, never mixed with local vectors
    assert [a.provider for a in reply.attempts if a.outcome == "ok"][-2:] == ["cloud", "cloud"]


def test_context_window_error_from_vllm() -> None:
    with FakeServer("vllm", models=["bge"], runner="pooling", max_model_len=8) as server:
        cfg = {"providers": {"v": {"type": "vllm", "base_url": server.base_url}}, "ledger": {"enabled": False}}
        with pytest.raises(turnout.ContextWindowExceededError):
            embed("sync", cfg, "v:bge", ["one two three four five six seven eight nine"])


@pytest.mark.parametrize("mode", MODES)
def test_invalid_arguments_send_nothing(mode: Mode, servers: Servers) -> None:
    openai = make_target("openai", servers)
    servers["openai"].reset()
    for texts, kwargs in (([], {}), (["a"], {"batch_size": 0}), (["a"], {"dimensions": -1})):
        with pytest.raises(turnout.InvalidArgumentError):
            embed(mode, openai.cfg(), f"p:{openai.model}", texts, **kwargs)
    assert openai.requests() == []


def test_a_provider_without_embeddings_says_so() -> None:
    from turnout.testing import FakeTGIServer

    with (
        FakeTGIServer() as tgi,
        Client({"providers": {"hf": {"type": "huggingface", "base_url": tgi.url, "mode": "text"}}}) as client,
    ):
        provider = client.provider("hf")
    base = turnout.Provider.embed
    with pytest.raises(turnout.EmbeddingsNotSupportedError, match="does not serve embeddings"):
        base(provider, "m", turnout.EmbeddingRequest(input=["x"]))


def test_sync_and_async_embed_take_the_same_arguments() -> None:
    assert inspect.signature(Client.embed).parameters == inspect.signature(AsyncClient.embed).parameters
    assert inspect.iscoroutinefunction(AsyncClient.embed)


def test_budget_and_ledger_cover_embeddings(servers: Servers, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.cost.spend_ledger import totals

    openai = make_target("openai", servers)
    servers["openai"].reset()
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    cfg = {**openai.cfg(), "ledger": {}, "budget": {"max_usd": "0.000001"}}
    with Client(cfg) as client:
        reply = client.embed(f"p:{openai.model}", ["a few words"])  # at most 12 bytes: $0.00000024 held
        assert reply.cost is not None
        spent = client.budgets.status()[0].spent if client.budgets else None
        assert spent == reply.cost.total
        with pytest.raises(turnout.BudgetExceededError):
            client.embed(f"p:{openai.model}", ["x" * 100])  # could cost $0.000002: refused, nothing sent
    assert len(openai.requests()) == 1
    [row] = totals(path)
    assert (row.provider, row.model, row.calls, row.prompt_tokens, row.cost) == (
        "p",
        openai.model,
        1,  # a call refused by the budget is not a call (as for chat)
        3,
        reply.cost.total,
    )
