"""``type = "azure"`` over `FakeAzureServer`: paths, auth, content filters, deployments, fallback to OpenAI.

Chat, streams, tools, errors and ``response_model`` also run for the ``azure`` backend of the
shared suites (tests/providers/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import AsyncClient, Client
from turnout.providers.azure import AzureProvider
from turnout.testing import FakeAzureServer, FakeClock, FakeServer, Fault, Reply

from ..conftest import CANARY_KEY, Runner

DEPLOYMENTS = {"my-mini": "gpt-4o-mini", "my-embed": "text-embedding-3-small"}
MODELS = {"gpt-4o-mini": "my-mini", "text-embedding-3-small": "my-embed"}
ONE_ATTEMPT = {"retry": {"max_attempts": 1}}


@pytest.fixture
def azure() -> Iterator[FakeAzureServer]:
    with FakeAzureServer(DEPLOYMENTS, api_key=CANARY_KEY, api_version="2024-10-21") as server:
        yield server


def azure_config(server: FakeAzureServer, **provider: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "type": "azure",
        "endpoint": server.endpoint,
        "api_key": CANARY_KEY,
        "deployments": MODELS,
        **provider,
    }
    return {"providers": {"azure": {k: v for k, v in settings.items() if v is not None}}, "defaults": ONE_ATTEMPT}


# -- paths, query, body ----------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_chat_goes_to_the_deployment_with_the_api_version(
    runner: Runner, azure: FakeAzureServer, streamed: bool
) -> None:
    azure.enqueue(Reply("Hello from Azure", prompt_tokens=10, completion_tokens=4))
    reply = runner.call(streamed, azure_config(azure), "azure:gpt-4o-mini", "Hi")
    assert reply.text == "Hello from Azure" and reply.provider == "azure" and reply.model == "gpt-4o-mini"
    [sent] = azure.chat_requests
    assert sent.path == "/openai/deployments/my-mini/chat/completions"
    assert sent.query == "api-version=2024-10-21"
    assert sent.json["model"] == "my-mini"
    assert sent.headers["api-key"] == CANARY_KEY and "authorization" not in sent.headers
    # no Azure price for gpt-4o-mini in genai-prices: its azure provider falls back to OpenAI's list price
    assert reply.cost is not None
    assert reply.cost.total == Decimal(10) * Decimal("0.15") / 10**6 + Decimal(4) * Decimal("0.60") / 10**6
    assert reply.cost.source is not None and "azure/gpt-4o-mini" in reply.cost.source


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_v1_api_path_sends_the_deployment_as_model(runner: Runner, azure: FakeAzureServer, streamed: bool) -> None:
    reply = runner.call(streamed, azure_config(azure, api_version="v1"), "azure:gpt-4o-mini", "echo me")
    assert reply.text == "echo me"
    [sent] = azure.chat_requests
    assert sent.path == "/openai/v1/chat/completions" and sent.query == ""
    assert sent.json["model"] == "my-mini"


def test_a_model_without_a_deployment_entry_uses_its_own_name(runner: Runner) -> None:
    with FakeAzureServer(api_key=CANARY_KEY) as server:
        runner.chat(azure_config(server, deployments={}), "azure:gpt-4o", "Hi")
        assert server.chat_requests[0].path == "/openai/deployments/gpt-4o/chat/completions"


def test_price_override_in_prices_wins(runner: Runner, azure: FakeAzureServer) -> None:
    config = azure_config(azure)
    config["prices"] = {"azure:gpt-4o-mini": {"input_per_million": "1", "output_per_million": "2"}}
    azure.enqueue(Reply("x", prompt_tokens=1_000_000, completion_tokens=1_000_000))
    reply = runner.chat(config, "azure:gpt-4o-mini", "Hi")
    assert reply.cost is not None and reply.cost.total == Decimal(3)


@pytest.mark.parametrize("api_version", ["2024-10-21", "v1"])
def test_embeddings_through_the_deployment(runner: Runner, azure: FakeAzureServer, api_version: str) -> None:
    config = azure_config(azure, api_version=api_version)

    async def aembed() -> turnout.EmbeddingResponse:
        async with AsyncClient(config) as client:
            return await client.embed("azure:text-embedding-3-small", ["alpha", "beta"])

    if runner.mode == "sync":
        with Client(config) as client:
            result = client.embed("azure:text-embedding-3-small", ["alpha", "beta"])
    else:
        result = asyncio.run(aembed())
    assert len(result.vectors) == 2 and result.usage.prompt_tokens == 2
    assert result.cost is not None  # genai-prices lists text-embedding-3-small under azure
    [sent] = azure.embedding_requests
    assert sent.json["model"] == "my-embed" and sent.json["encoding_format"] == "base64"
    expected = "/openai/v1/embeddings" if api_version == "v1" else "/openai/deployments/my-embed/embeddings"
    assert sent.path == expected


def test_embeddings_from_a_chat_deployment_are_not_supported(azure: FakeAzureServer) -> None:
    with Client(azure_config(azure)) as client, pytest.raises(turnout.EmbeddingsNotSupportedError) as info:
        client.embed("azure:gpt-4o-mini", "alpha")
    assert "my-mini" in str(info.value) and info.value.status_code == 400


class Answer(BaseModel):
    city: str
    ok: bool


def test_structured_output(runner: Runner, azure: FakeAzureServer) -> None:
    azure.enqueue(Reply('{"city": "Oslo", "ok": true}'))
    reply = runner.chat(azure_config(azure), "azure:gpt-4o-mini", "Where?", response_model=Answer)
    assert reply.parsed == Answer(city="Oslo", ok=True)
    assert azure.chat_requests[0].json["response_format"]["type"] == "json_schema"


# -- Azure's errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_prompt_refused_by_the_content_filter(runner: Runner, azure: FakeAzureServer, streamed: bool) -> None:
    azure.enqueue(Fault.content_filter({"violence": "high", "jailbreak": "detected"}))
    with FakeServer(models=["gpt-4o-mini"], api_key=CANARY_KEY) as openai:
        config = azure_config(azure)
        config["providers"]["openai"] = {"type": "openai", "base_url": openai.base_url, "api_key": CANARY_KEY}
        config["models"] = {"chat": {"targets": ["azure:gpt-4o-mini", "openai:gpt-4o-mini"]}}
        with pytest.raises(turnout.ContentFilterError) as info:
            runner.call(streamed, config, "chat", "something bad")
        assert openai.chat_requests == []  # a refused prompt is not sent elsewhere by default
    exc = info.value
    assert isinstance(exc, turnout.BadRequestError) and not exc.retryable
    assert exc.categories == ["jailbreak", "violence"] and exc.error_code == "content_filter"
    assert exc.results["violence"] == {"filtered": True, "severity": "high"}
    assert "violence (high)" in str(exc) and CANARY_KEY not in f"{exc!r} {exc}"
    assert len(azure.chat_requests) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_filtered_completion_is_a_reply_with_its_categories(
    runner: Runner, azure: FakeAzureServer, streamed: bool
) -> None:
    azure.enqueue(Reply("Once upon", finish_reason="content_filter", content_filter={"sexual": "medium"}))
    reply = runner.call(streamed, azure_config(azure), "azure:gpt-4o-mini", "Tell a story")
    assert reply.text == "Once upon" and reply.finish_reason == "content_filter"
    if not streamed:  # a stream's chunks carry only the finish reason
        assert reply.warnings == ["content_filter: choice 0 was filtered: sexual (medium)"]


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_unknown_deployment_names_it_and_the_fix(runner: Runner, azure: FakeAzureServer, streamed: bool) -> None:
    config = azure_config(azure, deployments={"gpt-4o-mini": "typo-mini"})
    with pytest.raises(turnout.NotFoundError) as info:
        runner.call(streamed, config, "azure:gpt-4o-mini", "Hi")
    message = str(info.value)
    assert "'typo-mini' does not exist" in message and "DeploymentNotFound" in message
    assert 'deployments = { "gpt-4o-mini" = "<your deployment name>" } in [providers.azure]' in message
    assert info.value.error_code == "DeploymentNotFound" and not info.value.retryable


def test_retry_after_ms_sets_the_wait(runner: Runner, azure: FakeAzureServer) -> None:
    azure.enqueue(Fault.rate_limit(retry_after=2, retry_after_ms=1500), Reply("after the wait"))
    config = azure_config(azure)
    config["defaults"] = {"retry": {"max_attempts": 2}}
    clock = FakeClock()

    async def achat() -> turnout.ChatResponse:
        async with AsyncClient(config, clock=clock) as client:
            return await client.chat("azure:gpt-4o-mini", "Hi")

    if runner.mode == "sync":
        with Client(config, clock=clock) as client:
            reply = client.chat("azure:gpt-4o-mini", "Hi")
    else:
        reply = asyncio.run(achat())
    assert reply.text == "after the wait"
    assert clock.sleeps == [1.5]  # retry-after-ms wins over retry-after
    assert [a.outcome for a in reply.attempts] == ["RateLimitError", "ok"]


def test_wrong_key_is_an_authentication_error_without_the_key(runner: Runner, azure: FakeAzureServer) -> None:
    with pytest.raises(turnout.AuthenticationError) as info:
        runner.chat(azure_config(azure, api_key="wrong-key-123"), "azure:gpt-4o-mini", "Hi")
    assert "Access denied" in str(info.value) and "wrong-key-123" not in f"{info.value!r} {info.value}"


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_route_falls_back_from_azure_to_openai(runner: Runner, azure: FakeAzureServer, streamed: bool) -> None:
    azure.enqueue(Fault.server_error(503))
    with FakeServer(models=["gpt-4o-mini"], api_key=CANARY_KEY) as openai:
        openai.enqueue(Reply("from OpenAI"))
        config = azure_config(azure)
        config["providers"]["openai"] = {"type": "openai", "base_url": openai.base_url, "api_key": CANARY_KEY}
        config["models"] = {"mini": {"targets": ["azure:gpt-4o-mini", "openai:gpt-4o-mini"]}}
        reply = runner.call(streamed, config, "mini", "Hi")
        assert len(openai.chat_requests) == 1 and openai.chat_requests[0].json["model"] == "gpt-4o-mini"
    assert reply.text == "from OpenAI" and reply.provider == "openai"
    assert [(a.provider, a.model, a.outcome) for a in reply.attempts] == [
        ("azure", "gpt-4o-mini", "ServerError"),
        ("openai", "gpt-4o-mini", "ok"),
    ]


# -- Microsoft Entra ID tokens ---------------------------------------------------------------------


def _tokens() -> tuple[Callable[[], str], list[str]]:
    handed: list[str] = []

    def token_provider() -> str:
        handed.append(f"entra-token-{len(handed) + 1}")
        return handed[-1]

    return token_provider, handed


def test_token_provider_sends_a_fresh_bearer_token_per_request(runner: Runner) -> None:
    token_provider, handed = _tokens()
    with FakeAzureServer(DEPLOYMENTS) as server:
        config = azure_config(server, api_key=None, token_provider=token_provider)
        if runner.mode == "sync":
            with Client(config) as client:
                client.chat("azure:gpt-4o-mini", "one")
                client.chat("azure:gpt-4o-mini", "two")
        else:

            async def go() -> None:
                async with AsyncClient(config) as client:
                    await client.chat("azure:gpt-4o-mini", "one")
                    await client.chat("azure:gpt-4o-mini", "two")

            asyncio.run(go())
        sent = [r.headers.get("authorization") for r in server.chat_requests]
        assert "api-key" not in server.chat_requests[0].headers
    assert handed == ["entra-token-1", "entra-token-2"]
    assert sent == ["Bearer entra-token-1", "Bearer entra-token-2"]


def test_async_token_provider_is_awaited() -> None:
    calls = 0

    async def token_provider() -> str:
        nonlocal calls
        calls += 1
        return "async-token"

    with FakeAzureServer(DEPLOYMENTS, api_key="async-token") as server:
        config = azure_config(server, api_key=None, token_provider=token_provider)

        async def go() -> str:
            async with AsyncClient(config) as client:
                return (await client.chat("azure:gpt-4o-mini", "Hi")).text

        assert asyncio.run(go()) == "Hi"
        assert server.chat_requests[0].headers["authorization"] == "Bearer async-token" and calls == 1


def test_async_token_provider_on_the_sync_client_is_a_config_error() -> None:
    async def token_provider() -> str:
        return "never"

    provider: Callable[[], Awaitable[str]] = token_provider
    with (
        FakeAzureServer(DEPLOYMENTS) as server,
        Client(azure_config(server, api_key=None, token_provider=provider)) as c,
    ):
        with pytest.raises(turnout.ConfigError, match="sync provider"):
            c.chat("azure:gpt-4o-mini", "Hi")
        assert server.requests == []


def test_failing_token_provider_is_an_authentication_error(runner: Runner) -> None:
    def token_provider() -> str:
        raise RuntimeError("no managed identity here")

    with FakeAzureServer(DEPLOYMENTS) as server:
        with pytest.raises(turnout.AuthenticationError, match="no managed identity here"):
            runner.chat(azure_config(server, api_key=None, token_provider=token_provider), "azure:gpt-4o-mini", "Hi")
        assert server.requests == []


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "providers.azure.endpoint: required key is missing"),
        ({"endpoint": "my-resource.openai.azure.com"}, "must start with https://"),
        ({"endpoint": "https://r.openai.azure.com/openai"}, "without /openai"),
        ({"endpoint": "https://r.openai.azure.com", "api_version": "2024/10/21"}, "is not an api-version"),
        ({"endpoint": "https://r.openai.azure.com", "base_url": "https://x"}, "has no base_url: set endpoint"),
    ],
)
def test_bad_config_names_the_key_and_fix(settings: dict[str, Any], expected: str) -> None:
    config = {"providers": {"azure": {"type": "azure", "api_key": "k", **settings}}}
    with pytest.raises(turnout.ConfigError, match=expected.replace("[", r"\[").replace(".", r"\.")):
        turnout.Config.from_dict(config)


def test_no_key_and_no_token_provider_is_a_config_error() -> None:
    config = {"providers": {"azure": {"type": "azure", "endpoint": "https://r.openai.azure.com"}}}
    with Client(config) as client, pytest.raises(turnout.ConfigError, match="AZURE_OPENAI_API_KEY"):
        client.provider("azure")
    both = {"type": "azure", "endpoint": "https://r.openai.azure.com", "api_key": "k", "token_provider": lambda: "t"}
    with pytest.raises(turnout.ConfigError, match="not both"):
        turnout.Config.from_dict({"providers": {"azure": both}})


def test_the_key_stays_out_of_reprs_and_dumps(azure: FakeAzureServer) -> None:
    with Client(azure_config(azure)) as client:
        provider = client.provider("azure")
        assert isinstance(provider, AzureProvider)
        shown = f"{provider!r} {client.config!r} {client.config.model_dump()} {client.config.providers['azure']}"
    assert CANARY_KEY not in shown and azure.endpoint in repr(provider)


def test_config_schema_lists_azure_without_the_token_provider() -> None:
    schema = turnout.config.config_json_schema()
    azure = schema["$defs"]["AzureConfig"]["properties"]
    assert {"endpoint", "api_version", "deployments"} <= set(azure) and "token_provider" not in azure
