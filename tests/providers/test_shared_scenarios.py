"""The chat scenarios every provider must pass: the same suite for openai, vllm, together and huggingface.

Each test runs for every backend in ``conftest.BACKENDS``, sync and async, and (where marked) both as
``chat()`` and as a stream, over real HTTP to the backend's fake server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import turnout
from turnout.testing import FakeServer, Fault, Reply, ToolCallSpec

from ..conftest import CANARY_KEY, LLAMA, Runner
from .conftest import CONFIG_PRICE, Backend

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])


@STREAMED
def test_reply_usage_cost_and_attempts(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Reply("Hello there, traveller!", prompt_tokens=12, completion_tokens=5))
    reply = runner.call(streamed, backend.config(), backend.target, [{"role": "user", "content": "Hi"}], max_tokens=64)

    assert reply.text == "Hello there, traveller!"
    assert reply.provider == "p" and reply.model == backend.model
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (12, 5, 17)
    assert reply.finish_reason == "stop"
    price_in, price_out = backend.price
    assert reply.cost is not None
    assert reply.cost.input == price_in * 12 / 1_000_000
    assert reply.cost.output == price_out * 5 / 1_000_000
    assert [(a.provider, a.model, a.outcome) for a in reply.attempts] == [("p", backend.model, "ok")]
    assert len(backend.chat_requests) == 1
    keyless = backend.name in ("vllm", "huggingface-vllm", "azure")
    assert backend.chat_requests[0].headers.get("authorization") == (None if keyless else f"Bearer {CANARY_KEY}")
    assert backend.chat_requests[0].headers.get("api-key") == (CANARY_KEY if backend.name == "azure" else None)


@STREAMED
def test_stream_chunks_add_up_to_the_reply(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Reply("one two three four", prompt_tokens=3, completion_tokens=4))
    if not streamed:
        assert runner.chat(backend.config(), backend.target, "count").text == "one two three four"
        return
    chunks, reply = runner.stream(backend.config(), backend.target, "count")
    assert [c.text for c in chunks if c.text] == ["one", " two", " three", " four"]
    assert reply.text == "one two three four"
    assert [c.usage.total_tokens for c in chunks if c.usage is not None] == [7]


@STREAMED
@pytest.mark.parametrize(
    ("fault", "error", "retryable"),
    [
        (Fault.rate_limit(retry_after=1), turnout.RateLimitError, True),
        (Fault.server_error(500), turnout.ServerError, True),
        (Fault.server_error(503), turnout.ServerError, True),
        (Fault.status(400, "bad temperature"), turnout.BadRequestError, False),
        (Fault.context_length(), turnout.ContextWindowExceededError, False),
        (Fault.unauthorized(), turnout.AuthenticationError, False),
        (Fault.not_found(), turnout.NotFoundError, False),
        (Fault.drop(), turnout.APIConnectionError, True),
    ],
    ids=["429", "500", "503", "400", "context", "401", "404", "dropped"],
)
def test_errors_map_to_the_same_classes(
    runner: Runner, backend: Backend, streamed: bool, fault: Fault, error: type[Exception], retryable: bool
) -> None:
    backend.server.enqueue(fault)
    with pytest.raises(error) as info:
        runner.call(streamed, backend.config(), backend.target, "Hi")
    exc = info.value
    assert isinstance(exc, turnout.ProviderError)
    assert exc.provider == "p" and exc.model == backend.model and exc.retryable is retryable
    assert [a.outcome for a in exc.attempts] == [error.__name__]
    if isinstance(exc, turnout.RateLimitError):
        assert exc.retry_after == 1.0
    assert CANARY_KEY not in f"{exc!r} {exc}"


@STREAMED
def test_falls_back_to_the_next_target(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Fault.server_error(503))
    with FakeServer(flavor="vllm", models=[LLAMA]) as spare:
        spare.enqueue(Reply("from the spare", prompt_tokens=10, completion_tokens=3))
        config = backend.config()
        config["providers"]["spare"] = {"type": "vllm", "base_url": spare.base_url}
        config["prices"] = {**config["prices"], f"spare:{LLAMA}": CONFIG_PRICE}
        config["models"] = {"llama": {"targets": [backend.target, f"spare:{LLAMA}"]}}
        reply = runner.call(streamed, config, "llama", "Hi")
    assert reply.text == "from the spare" and reply.provider == "spare"
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("p", "ServerError"), ("spare", "ok")]


def test_stream_cut_after_content_is_interrupted_not_short(runner: Runner, backend: Backend) -> None:
    backend.server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("alpha beta gamma delta")))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(backend.config(), backend.target, "Hi")
    assert info.value.partial_text == "alpha beta" and info.value.retryable


def test_stream_ending_cleanly_without_its_terminator_is_interrupted(runner: Runner, backend: Backend) -> None:
    backend.server.enqueue(Fault.end_stream(after_chunks=1, reply=Reply("alpha beta gamma")))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(backend.config(), backend.target, "Hi")
    assert info.value.partial_text == "alpha"


def test_error_event_after_content_interrupts_the_stream(runner: Runner, backend: Backend) -> None:
    backend.server.enqueue(Fault.stream_error(after_chunks=1, message="engine died", reply=Reply("one two three")))
    with pytest.raises(turnout.StreamInterruptedError, match="engine died") as info:
        runner.stream(backend.config(), backend.target, "Hi")
    assert info.value.partial_text == "one"
    assert isinstance(info.value.__cause__, turnout.ServerError)


@STREAMED
def test_malformed_reply_is_a_response_validation_error(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Fault.malformed_json())
    with pytest.raises(turnout.ResponseValidationError):
        runner.call(streamed, backend.config(), backend.target, "Hi")


@STREAMED
def test_missing_usage_is_none_not_zero(runner: Runner, backend: Backend, streamed: bool) -> None:
    backend.server.enqueue(Reply("no usage here", usage=False))
    reply = runner.call(streamed, backend.config(), backend.target, "Hi")
    assert reply.text == "no usage here"
    if backend.text_mode:  # TGI's `details: null`: the prompt is counted with /tokenize (test_reply_shapes.py)
        assert reply.usage.prompt_tokens is not None and reply.warnings
    else:
        assert reply.usage.prompt_tokens is None
    assert reply.usage.completion_tokens is None and reply.cost is None


@STREAMED
def test_tool_calls_are_normalised(runner: Runner, backend: Backend, streamed: bool) -> None:
    if not backend.streams_tools:
        pytest.skip("a raw-prompt (text mode) endpoint has no tool calls")
    call = ToolCallSpec(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    backend.server.enqueue(Reply(tool_calls=[call]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    reply = runner.call(streamed, backend.config(), backend.target, "Weather?", tools=tools)
    assert reply.finish_reason == "tool_calls"
    [made] = reply.tool_calls
    assert made.id == "call_1" and made.name == "get_weather"
    assert json.loads(made.arguments) == {"city": "Paris"}
    assert backend.chat_requests[0].json["tools"] == tools


@pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")
def test_unknown_price_is_none_not_zero(runner: Runner, backend: Backend) -> None:
    if backend.name in ("openai", "together", "azure"):
        pytest.skip("list-priced in the catalogue")
    reply = runner.chat(backend.config(prices={}), backend.target, "Hi")
    assert reply.usage.prompt_tokens is not None and reply.cost is None


def test_extra_headers_and_timeout_reach_the_server(runner: Runner, backend: Backend) -> None:
    runner.chat(backend.config(), backend.target, "Hi", extra_headers={"x-trace": "abc"}, timeout=30)
    assert backend.chat_requests[0].headers["x-trace"] == "abc"


def _options(backend: Backend) -> dict[str, Any]:
    return {"temperature": 0.5, "max_tokens": 32, "stop": ["\n"], "seed": 7}


def test_sampling_options_are_sent(runner: Runner, backend: Backend) -> None:
    runner.chat(backend.config(), backend.target, "Hi", **_options(backend))
    body = backend.chat_requests[0].json
    sent = body["parameters"] if backend.text_mode else body
    assert sent["temperature"] == 0.5 and sent["stop"] == ["\n"] and sent["seed"] == 7
    assert sent["max_new_tokens" if backend.text_mode else "max_tokens"] == 32
