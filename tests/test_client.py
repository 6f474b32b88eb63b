"""The user-facing contract of Client/AsyncClient, over real HTTP to the fake servers, sync and async."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

import turnout
from turnout import Client, Message
from turnout.testing import FakeServer, Fault, Reply

from .conftest import LLAMA, Runner, make_config

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])


@STREAMED
def test_alias_answers_from_first_target_with_usage_cost_and_attempts(
    runner: Runner, config: dict[str, Any], fake_openai: FakeServer, streamed: bool
) -> None:
    fake_openai.enqueue(Reply("Hello there, traveller!", prompt_tokens=12, completion_tokens=5))
    reply = runner.call(streamed, config, "fast", [{"role": "user", "content": "Hi"}], max_tokens=64)

    assert reply.text == "Hello there, traveller!"
    assert reply.provider == "openai"
    assert reply.model == "gpt-4o-mini"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (12, 5, 17)
    assert reply.finish_reason == "stop"
    # gpt-4o-mini: $0.15 in / $0.60 out per 1M tokens (genai-prices; https://openai.com/api/pricing/)
    assert reply.cost is not None
    assert reply.cost.input == Decimal("0.15") * 12 / 1_000_000
    assert reply.cost.output == Decimal("0.60") * 5 / 1_000_000
    assert reply.cost.total == reply.cost.input + reply.cost.output
    assert [(a.provider, a.model, a.outcome) for a in reply.attempts] == [("openai", "gpt-4o-mini", "ok")]
    assert reply.attempts[0].latency > 0


@STREAMED
def test_falls_back_to_next_target_on_retryable_error(
    runner: Runner, config: dict[str, Any], fake_openai: FakeServer, fake_vllm: FakeServer, streamed: bool
) -> None:
    fake_openai.enqueue(Fault.server_error(503))
    fake_vllm.enqueue(Reply("from llama", prompt_tokens=1000, completion_tokens=500))
    reply = runner.call(streamed, config, "fast", "Hi")

    assert reply.text == "from llama"
    assert reply.provider == "local"
    assert reply.model == LLAMA
    assert [(a.provider, a.outcome, a.status_code) for a in reply.attempts] == [
        ("openai", "ServerError", 503),
        ("local", "ok", None),
    ]
    # config price: 0.10 / 0.20 USD per 1M tokens
    assert reply.cost is not None
    assert reply.cost.total == Decimal("0.0001") + Decimal("0.0001")
    assert reply.cost.source == "config"
    assert len(fake_openai.chat_requests) == 1 and len(fake_vllm.chat_requests) == 1


@STREAMED
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.rate_limit(retry_after=1), turnout.RateLimitError),
        (Fault.context_length(), turnout.ContextWindowExceededError),
        (Fault.drop(), turnout.APIConnectionError),
    ],
    ids=["rate-limit", "context-window", "dropped"],
)
def test_fallback_triggers(
    runner: Runner,
    config: dict[str, Any],
    fake_openai: FakeServer,
    fake_vllm: FakeServer,
    streamed: bool,
    fault: Fault,
    error: type[Exception],
) -> None:
    fake_openai.enqueue(fault)
    reply = runner.call(streamed, config, "fast", "Hi")
    assert reply.provider == "local"
    assert reply.attempts[0].outcome == error.__name__


@STREAMED
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(400, "bad temperature", error_type="invalid_request_error"), turnout.BadRequestError),
        (Fault.unauthorized(), turnout.AuthenticationError),
        (Fault.not_found(), turnout.NotFoundError),
        (Fault.insufficient_quota(), turnout.QuotaExceededError),
    ],
    ids=["bad-request", "auth", "not-found", "quota"],
)
def test_non_retryable_errors_stop_the_route(
    runner: Runner,
    config: dict[str, Any],
    fake_openai: FakeServer,
    fake_vllm: FakeServer,
    streamed: bool,
    fault: Fault,
    error: type[Exception],
) -> None:
    fake_openai.enqueue(fault)
    with pytest.raises(error) as info:
        runner.call(streamed, config, "fast", "Hi")
    assert isinstance(info.value, turnout.ProviderError)
    assert info.value.provider == "openai" and info.value.model == "gpt-4o-mini"
    assert info.value.retryable is False
    assert [a.outcome for a in info.value.attempts] == [error.__name__]
    assert fake_vllm.chat_requests == []


@STREAMED
def test_every_target_failing_raises_a_group_with_each_cause(
    runner: Runner, config: dict[str, Any], fake_openai: FakeServer, fake_vllm: FakeServer, streamed: bool
) -> None:
    fake_openai.enqueue(Fault.rate_limit(retry_after_ms=1500))
    fake_vllm.enqueue(Fault.server_error(500))
    with pytest.raises(turnout.AllTargetsFailedError) as info:
        runner.call(streamed, config, "fast", "Hi")
    group = info.value
    assert isinstance(group, ExceptionGroup) and isinstance(group, turnout.TurnoutError)
    first, second = group.exceptions
    assert isinstance(first, turnout.RateLimitError) and first.retry_after == 1.5
    assert isinstance(second, turnout.ServerError) and second.provider == "local"
    assert [a.outcome for a in group.attempts] == ["RateLimitError", "ServerError"]


def test_single_target_error_is_raised_as_itself(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Fault.server_error(502))
    with pytest.raises(turnout.ServerError) as info:
        runner.chat(config, f"local:{LLAMA}", "Hi")
    assert info.value.status_code == 502 and info.value.retryable


@STREAMED
def test_provider_model_target_without_alias(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer, streamed: bool
) -> None:
    reply = runner.call(streamed, config, f"local:{LLAMA}", "Say something")
    assert reply.provider == "local" and reply.model == LLAMA
    assert reply.text  # the fake echoes
    assert fake_vllm.chat_requests[0].json["model"] == LLAMA


def test_request_body_carries_typed_options_and_escape_hatch(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    runner.chat(
        config,
        f"local:{LLAMA}",
        [Message(role="system", content="Be brief."), {"role": "user", "content": "Hi"}],
        temperature=0.5,
        top_p=0.9,
        max_tokens=32,
        stop=["\n"],
        seed=7,
        n=1,
        user="u-1",
        response_format={"type": "json_object"},
        tools=tools,
        tool_choice="auto",
        extra_body={"top_k": 5, "repetition_penalty": 1.1},
        extra_headers={"x-trace": "abc"},
    )
    sent = fake_vllm.chat_requests[0]
    assert sent.json == {
        "model": LLAMA,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 32,
        "stop": ["\n"],
        "seed": 7,
        "n": 1,
        "user": "u-1",
        "response_format": {"type": "json_object"},
        "tools": tools,
        "tool_choice": "auto",
        "top_k": 5,
        "repetition_penalty": 1.1,
    }
    assert sent.headers["x-trace"] == "abc"
    assert "authorization" not in sent.headers  # vLLM without a key


def test_stream_asks_for_usage_and_chat_does_not(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    runner.chat(config, f"local:{LLAMA}", "Hi")
    runner.stream(config, f"local:{LLAMA}", "Hi")
    plain, streamed = (r.json for r in fake_vllm.chat_requests)
    assert "stream" not in plain and "stream_options" not in plain
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


def test_stream_chunks_add_up_to_the_reply(runner: Runner, config: dict[str, Any], fake_openai: FakeServer) -> None:
    fake_openai.enqueue(Reply("one two three four", prompt_tokens=3, completion_tokens=4))
    chunks, reply = runner.stream(config, "fast", "count")
    texts = [c.text for c in chunks if c.text]
    assert texts == ["one", " two", " three", " four"]
    assert reply.text == "one two three four"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert reply.usage.completion_tokens == 4 and reply.cost is not None


def test_missing_usage_is_none_not_zero(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply("no usage here", usage=False))
    reply = runner.chat(config, f"local:{LLAMA}", "Hi")
    assert reply.usage.prompt_tokens is None and reply.usage.completion_tokens is None
    assert reply.cost is None


@pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")
def test_unknown_price_is_none_not_zero(runner: Runner, fake_vllm: FakeServer, fake_openai: FakeServer) -> None:
    config = make_config(fake_openai, fake_vllm, prices={})
    reply = runner.chat(config, f"local:{LLAMA}", "Hi")
    assert reply.usage.prompt_tokens is not None
    assert reply.cost is None


def test_unknown_price_warns_once_per_model(fake_vllm: FakeServer, fake_openai: FakeServer) -> None:
    config = make_config(fake_openai, fake_vllm, prices={})
    with Client(config=config) as client, pytest.warns(turnout.CostUnknownWarning, match="no price known") as seen:
        client.chat(f"local:{LLAMA}", "Hi")
        client.chat(f"local:{LLAMA}", "Hi again")
    assert len(seen) == 1


@STREAMED
def test_tool_calls_are_normalised(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer, streamed: bool
) -> None:
    from turnout.testing import ToolCallSpec

    fake_vllm.enqueue(
        Reply("", tool_calls=[ToolCallSpec(id="call_1", name="get_weather", arguments='{"city": "Paris"}')])
    )
    reply = runner.call(
        streamed,
        config,
        f"local:{LLAMA}",
        "Weather?",
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    assert reply.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert call.id == "call_1" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}


def test_n_choices(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    reply = runner.chat(config, f"local:{LLAMA}", "Hi", n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.text == reply.choices[0].text


def test_message_inputs_are_equivalent(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    runner.chat(config, f"local:{LLAMA}", "Hi")
    runner.chat(config, f"local:{LLAMA}", [{"role": "user", "content": "Hi"}])
    runner.chat(config, f"local:{LLAMA}", [Message(role="user", content="Hi")])
    bodies = [r.json["messages"] for r in fake_vllm.chat_requests]
    assert bodies == [[{"role": "user", "content": "Hi"}]] * 3


@pytest.mark.parametrize(
    ("messages", "options", "fragment"),
    [
        ([], {}, "messages must not be empty"),
        ([{"role": "wizard", "content": "x"}], {}, "role"),
        ("Hi", {"temperature": -1}, "temperature"),
        ("Hi", {"max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_arguments_fail_before_sending(
    runner: Runner,
    config: dict[str, Any],
    fake_vllm: FakeServer,
    messages: Any,
    options: dict[str, Any],
    fragment: str,
) -> None:
    with pytest.raises(turnout.InvalidArgumentError, match=fragment):
        runner.chat(config, f"local:{LLAMA}", messages, **options)
    assert fake_vllm.requests == []


def test_unknown_model_names_aliases_and_providers(runner: Runner, config: dict[str, Any]) -> None:
    with pytest.raises(turnout.ConfigError, match=r"'slow' is neither an alias.*aliases: fast.*local, openai"):
        runner.chat(config, "slow", "Hi")
    with pytest.raises(turnout.ConfigError, match="nowhere:gpt"):
        runner.chat(config, "nowhere:gpt", "Hi")


def test_stream_response_before_the_end_is_an_error(config: dict[str, Any]) -> None:
    with Client(config=config) as client, client.stream("fast", "Hi") as stream:
        with pytest.raises(turnout.TurnoutError, match="not finished"):
            _ = stream.response
        assert stream.get_response().text


async def test_async_stream_get_response(config: dict[str, Any]) -> None:
    async with turnout.AsyncClient(config=config) as client, client.stream("fast", "Hi") as stream:
        reply = await stream.get_response()
    assert reply.provider == "openai" and reply.text


@pytest.mark.parametrize(
    "messages",
    [
        "Hi",
        [{"role": "user", "content": "Hi"}],
        [Message(role="system", content="Be brief"), {"role": "user", "content": "Hi"}],
    ],
)
def test_a_call_without_options_builds_the_request_validation_would(
    monkeypatch: pytest.MonkeyPatch, messages: Any
) -> None:
    from turnout._construct import _defaults
    from turnout.types import ChatRequest, normalize_messages

    expected = ChatRequest(messages=normalize_messages(messages))
    known = _defaults(ChatRequest)
    assert known is not None and known[1] == {"messages"}
    defaults = {k: v for k, v in known[0].items() if k != "messages"}
    assert all(value is None or value == () for value in defaults.values())  # immutable: safe to share

    def validated(*args: object, **kwargs: object) -> None:
        raise AssertionError("a call without options validated its request again")

    monkeypatch.setattr(ChatRequest, "__init__", validated)
    client = Client(config={"providers": {"p": {"type": "openai", "api_key": "sk-x"}}, "ledger": {"enabled": False}})
    request = client._request(messages, {})
    assert list(request.__dict__.items()) == list(expected.__dict__.items())  # the same fields, values and order
    assert request.model_fields_set == expected.model_fields_set == {"messages"}
    assert request == expected
    with pytest.raises(ValidationError, match="frozen"):
        request.temperature = 0.5
