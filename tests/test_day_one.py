"""What a user of the openai SDK expects on day one: no config with OPENAI_API_KEY, the keywords
they use, ``reply.message`` and costs that print as dollars. Over HTTP to the fake servers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Budget, ChatResponse, Client, ConfigError, InvalidArgumentError
from turnout.testing import FakeServer, Reply, ToolCallSpec

from .conftest import CANARY_KEY, Runner


def _config(server: FakeServer, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"o": {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}},
        "prices": {"o:gpt-4o-mini": {"input_per_million": "0.15", "output_per_million": "0.60"}},
        "defaults": {"retry": {"max_attempts": 1}},
        **extra,
    }


@pytest.fixture
def fake() -> Any:
    with FakeServer(flavor="openai", api_key=CANARY_KEY) as server:
        yield server


# -- 5. costs print as fixed-point dollars ---------------------------------------------------------


def test_reply_cost_prints_dollars_not_exponents(runner: Runner, fake: FakeServer) -> None:
    fake.enqueue(Reply("ok", prompt_tokens=6, completion_tokens=0))
    reply = runner.chat(_config(fake), "o:gpt-4o-mini", "hi")
    assert reply.cost is not None
    assert str(reply.cost.input) == "0.0000009" and reply.cost.input == Decimal("9E-7")
    assert "E-" not in repr(reply.cost) and "USD('0.0000009')" in repr(reply.cost)
    assert json.loads(reply.model_dump_json())["cost"]["input"] == "0.0000009"


def test_budget_status_prints_dollars(fake: FakeServer) -> None:
    fake.enqueue(Reply("ok", prompt_tokens=6, completion_tokens=0))
    with Client(config=_config(fake), budget=Budget(max_usd=Decimal("0.01"))) as client:
        assert client.budgets is not None
        client.chat("o:gpt-4o-mini", "hi", max_tokens=5)
        [status] = client.budgets.status()
    assert "E-" not in repr(status) and "Decimal(" not in repr(status)
    assert str(status.spent) == "0.0000009" and str(status.reserved) == "0" and str(status.remaining) == "0.0099991"
    assert status.remaining == Decimal("0.0099991")


# -- 13. no config, OPENAI_API_KEY set: like OpenAI() ----------------------------------------------


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TURNOUT_CONFIG", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.mark.usefixtures("no_config")
@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "gpt-4o-mini"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_openai_api_key_alone_is_a_config(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, model: str, mode: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    fake.enqueue(Reply("hello"))
    if mode == "sync":
        with Client() as client:
            reply = client.chat(model, "hi")
    else:

        async def go() -> ChatResponse:
            async with AsyncClient() as client:
                return await client.chat(model, "hi")

        reply = asyncio.run(go())
    assert reply.text == "hello" and reply.provider == "openai" and reply.model == "gpt-4o-mini"
    [sent] = fake.chat_requests
    assert sent.json["model"] == "gpt-4o-mini" and sent.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert CANARY_KEY not in repr(Client())


@pytest.mark.usefixtures("no_config")
def test_without_a_key_or_a_config_the_error_names_openai_api_key() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Client()


@pytest.mark.usefixtures("no_config")
def test_a_config_file_wins_and_bare_ids_stay_errors(monkeypatch: pytest.MonkeyPatch, fake: FakeServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    Path("turnout.toml").write_text(f'[providers.o]\ntype = "openai"\napi_key = "k"\nbase_url = "{fake.base_url}"\n')
    client = Client()
    assert sorted(client.config.providers) == ["o"]
    with pytest.raises(ConfigError, match="neither an alias"):
        client.targets("gpt-4o-mini")


# -- 14. the keywords people use ---------------------------------------------------------------------

KEYWORDS: dict[str, Any] = {
    "frequency_penalty": 0.5,
    "presence_penalty": -0.25,
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "top_logprobs": 2,
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
}


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_keywords_are_sent(runner: Runner, fake: FakeServer, streamed: bool) -> None:
    runner.call(streamed, _config(fake), "o:gpt-4o-mini", "hi", max_tokens=7, **KEYWORDS)
    [sent] = fake.chat_requests
    assert {k: sent.json[k] for k in KEYWORDS} == KEYWORDS
    assert sent.json["max_tokens"] == 7 and "max_completion_tokens" not in sent.json


def test_logprobs_come_back_on_the_reply_and_the_chunks(runner: Runner, fake: FakeServer) -> None:
    fake.enqueue(Reply("Hello there"), Reply("Hello there"))
    reply = runner.chat(_config(fake), "o:gpt-4o-mini", "hi", logprobs=True, top_logprobs=2)
    assert reply.logprobs is not None and [t.token for t in reply.logprobs] == ["Hello", " there"]
    first = reply.logprobs[0]
    assert first.logprob == -0.25 and first.bytes == list(b"Hello")
    assert [(t.token, t.logprob) for t in first.top_logprobs] == [("Hello", -0.25), ("alt1", -3.0)]
    assert reply.choices[0].logprobs == reply.logprobs
    chunks, _ = runner.stream(_config(fake), "o:gpt-4o-mini", "hi", logprobs=True, top_logprobs=1)
    streamed = [t.token for c in chunks for t in c.logprobs or ()]
    assert streamed == ["Hello", " there"]


def test_no_logprobs_unless_asked(runner: Runner, fake: FakeServer) -> None:
    reply = runner.chat(_config(fake), "o:gpt-4o-mini", "hi")
    assert reply.logprobs is None and "logprobs" not in fake.chat_requests[0].json


@pytest.mark.parametrize("model", ["o3-mini", "o1", "gpt-5", "gpt-5-mini"])
@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_reasoning_models_get_max_completion_tokens(
    runner: Runner, fake: FakeServer, model: str, streamed: bool
) -> None:
    reply = runner.call(streamed, _config(fake), f"o:{model}", "hi", max_tokens=50)
    assert reply.text == "hi"
    [sent] = fake.chat_requests
    assert sent.json["max_completion_tokens"] == 50 and "max_tokens" not in sent.json


def test_the_fake_rejects_max_tokens_for_a_reasoning_model(fake: FakeServer) -> None:
    with Client(config=_config(fake)) as client, pytest.raises(turnout.BadRequestError, match="max_completion_tokens"):
        client.chat("o:o3", "hi", extra_body={"max_tokens": 5})


def test_max_completion_tokens_is_sent_by_that_name_and_caps_the_budget(runner: Runner, fake: FakeServer) -> None:
    runner.chat(_config(fake), "o:gpt-4o-mini", "hi", max_completion_tokens=9)
    assert fake.chat_requests[0].json["max_completion_tokens"] == 9 and "max_tokens" not in fake.chat_requests[0].json
    budget = Budget(max_usd=Decimal("0.00001"))  # the prompt and 1 token fit, 1M output tokens would not
    with Client(config=_config(fake), budget=budget) as client:
        client.chat("o:gpt-4o-mini", "hi", max_completion_tokens=1)  # bounded: accepted
        with pytest.raises(turnout.BudgetExceededError, match="could cost up to"):
            client.chat("o:gpt-4o-mini", "hi", max_completion_tokens=1_000_000)
        estimate = client.estimate_cost("o:gpt-4o-mini", "hi", max_tokens=3)
    assert estimate.targets[0].max_output_tokens == 3


def test_two_different_caps_are_an_invalid_argument(fake: FakeServer) -> None:
    with Client(config=_config(fake)) as client, pytest.raises(InvalidArgumentError, match="not both"):
        client.chat("o:gpt-4o-mini", "hi", max_tokens=5, max_completion_tokens=6)
    assert fake.chat_requests == []


@pytest.mark.parametrize("method", ["chat", "stream", "run_tools"])
def test_sync_and_async_take_the_same_keywords(method: str) -> None:
    import inspect

    for cls in (Client, AsyncClient):
        params = inspect.signature(getattr(cls, method)).parameters
        assert {*KEYWORDS, "max_completion_tokens"} <= set(params)


# -- 15. reply.message continues the conversation --------------------------------------------------


def test_reply_message_continues_a_tool_conversation(runner: Runner, fake: FakeServer) -> None:
    call = ToolCallSpec("get_weather", '{"city": "Paris"}', id="call_1")
    fake.enqueue(Reply(tool_calls=[call]), Reply("It is sunny in Paris."))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = runner.chat(_config(fake), "o:gpt-4o-mini", messages, tools=tools)
    message = first.message
    assert message.role == "assistant" and message.content is None
    assert message.tool_calls is not None and message.tool_calls[0].id == "call_1"
    messages.append(first.message)
    messages.append({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    second = runner.chat(_config(fake), "o:gpt-4o-mini", messages, tools=tools)
    assert second.text == "It is sunny in Paris." and second.message.content == second.text
    sent = fake.chat_requests[1].json["messages"]
    assert sent[1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_reply_message_of_a_stream(runner: Runner, fake: FakeServer) -> None:
    fake.enqueue(Reply("Hello there"))
    _, reply = runner.stream(_config(fake), "o:gpt-4o-mini", "hi")
    assert reply.message.model_dump(exclude_none=True) == {"role": "assistant", "content": "Hello there"}
