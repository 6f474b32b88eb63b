"""turnout.testing.FakeServer over real HTTP, driven by the real openai SDK and by raw httpx2."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

import turnout.testing
from turnout.testing import (
    FakeAzureServer,
    FakeServer,
    FakeTEIServer,
    FakeTGIServer,
    Fault,
    Flavor,
    Reply,
    ToolCallSpec,
    count_chat_tokens,
    count_tokens,
)
from turnout.testing._scripted_server import ScriptedServer

FLAVORS = pytest.mark.parametrize("flavor", ["openai", "vllm"])
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there, world"}]
KEY = "sk-test-key"


@pytest.fixture(params=["openai", "vllm"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    with FakeServer(flavor=request.param, models=["m1", "m2"]) as fake:
        yield fake


@pytest.fixture
def client(server: FakeServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def raw(server: FakeServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.url) as http:
        yield http


def chat(raw: httpx2.Client, **body: Any) -> httpx2.Response:
    return raw.post("/v1/chat/completions", json={"model": "m1", "messages": HELLO, **body})


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, checking the framing on the way."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


# -- tokenizer -----------------------------------------------------------------------------------


def test_fake_tokenizer_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_chat_tokens(HELLO) == 3 + 1 + 4 + 3  # per message + role + content, priming


def test_exports_are_sorted_and_complete() -> None:
    assert turnout.testing.__all__ == sorted(turnout.testing.__all__)
    assert {n for n in dir(turnout.testing) if not n.startswith("_")} >= set(turnout.testing.__all__)


# -- non-streaming -------------------------------------------------------------------------------


def test_non_stream_completion_parses_with_the_sdk(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply("Hi!", prompt_tokens=7, completion_tokens=2))
    raw = client.chat.completions.with_raw_response.create(model="m1", messages=HELLO)
    completion = raw.parse()

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "m1"
    assert completion.choices[0].message.content == "Hi!"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 2)
    assert completion.usage.total_tokens == 9
    assert raw.headers["content-type"] == "application/json"
    if server.flavor == "openai":
        assert raw.headers["x-request-id"].startswith("req_")
        assert int(raw.headers["openai-processing-ms"]) >= 0
        assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    else:
        assert completion.system_fingerprint and completion.system_fingerprint.startswith("vllm-0.32.0-")
        assert completion.choices[0].model_extra == {"stop_reason": None, "token_ids": None}


def test_body_shape_per_flavor(server: FakeServer, raw: httpx2.Client) -> None:
    body = chat(raw).json()
    message = body["choices"][0]["message"]
    assert message["refusal"] is None and body["choices"][0]["logprobs"] is None
    assert "prompt_tokens_details" not in body["usage"] or body["usage"]["prompt_tokens_details"] is None
    if server.flavor == "vllm":
        assert {"prompt_logprobs", "prompt_token_ids", "kv_transfer_params"} <= body.keys()
        assert message["tool_calls"] == [] and message["reasoning"] is None
    else:
        assert "tool_calls" not in message and body["service_tier"] == "default"


def test_default_reply_echoes_then_can_be_replaced(server: FakeServer, client: openai.OpenAI) -> None:
    echoed = client.chat.completions.create(model="m1", messages=HELLO)
    assert echoed.choices[0].message.content == "Hello there, world"
    assert echoed.usage is not None
    assert echoed.usage.prompt_tokens == count_chat_tokens(HELLO)
    assert echoed.usage.completion_tokens == count_tokens("Hello there, world")

    server.default_reply = Reply("fixed")
    again = client.chat.completions.create(model="m1", messages=HELLO)
    assert again.choices[0].message.content == "fixed"


def test_usage_details_and_no_usage(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply("x", cached_tokens=4, reasoning_tokens=6), Reply("y", usage=False))
    detailed = client.chat.completions.create(model="m1", messages=HELLO)
    assert detailed.usage is not None
    assert detailed.usage.prompt_tokens_details is not None
    assert detailed.usage.prompt_tokens_details.cached_tokens == 4
    assert detailed.usage.completion_tokens_details is not None
    assert detailed.usage.completion_tokens_details.reasoning_tokens == 6
    assert detailed.usage.completion_tokens == 1 + 6

    bare = client.chat.completions.create(model="m1", messages=HELLO)
    assert bare.usage is None


def test_n_choices_and_reported_model(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply("same", model="m1-2024-07-18"))
    completion = client.chat.completions.create(model="m1", messages=HELLO, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.message.content for c in completion.choices} == {"same"}
    assert completion.model == "m1-2024-07-18"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


# -- streaming -----------------------------------------------------------------------------------


def test_stream_with_usage_through_the_sdk(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply("one two three", prompt_tokens=5, completion_tokens=3))
    stream = client.chat.completions.create(
        model="m1",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_sse_framing_at_the_byte_level(server: FakeServer, raw: httpx2.Client) -> None:
    response = chat(raw, stream=True, stream_options={"include_usage": True})

    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["Hello", " there,", " world"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == count_chat_tokens(HELLO)
    if server.flavor == "openai":
        assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        assert all(c["usage"] is None for c in chunks[:-1])
    else:  # vLLM: the finish reason rides on the last content chunk; no `usage` key on other chunks
        assert chunks[-2]["choices"][0]["delta"] == {"content": " world"}
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert all("usage" not in c for c in chunks[:-1])


def test_stream_without_stream_options_has_no_usage_chunk(server: FakeServer, raw: httpx2.Client) -> None:
    chunks = [json.loads(e) for e in sse_events(chat(raw, stream=True).text)[:-1]]
    assert all(c["choices"] for c in chunks)


def test_vllm_stream_options_default_to_usage(raw: httpx2.Client, server: FakeServer) -> None:
    chunks = [json.loads(e) for e in sse_events(chat(raw, stream=True, stream_options={}).text)[:-1]]
    has_usage_chunk = chunks[-1]["choices"] == []
    assert has_usage_chunk is (server.flavor == "vllm")


def test_chunks_option_and_no_usage_reply(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Reply("abcdef", chunks=3, usage=False))
    chunks = [
        json.loads(e) for e in sse_events(chat(raw, stream=True, stream_options={"include_usage": True}).text)[:-1]
    ]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(filter(None, contents)) == "abcdef"
    assert [c for c in contents if c] == ["ab", "cd", "ef"]
    assert all(c["choices"] for c in chunks)


def test_stream_n_choices_interleave(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Reply("a b"))
    chunks = [json.loads(e) for e in sse_events(chat(raw, stream=True, n=2).text)[:-1]]
    for index in (0, 1):
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"][0]["index"] == index
        )
        assert text == "a b"


# -- tool calls ----------------------------------------------------------------------------------

TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
CALLS = [
    ToolCallSpec("get_weather", '{"city": "Paris", "unit": "celsius"}', id="call_1"),
    ToolCallSpec("get_time", '{"tz": "Europe/Paris"}', id="call_2"),
]


def test_tool_calls_non_stream(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply(tool_calls=CALLS))
    completion = client.chat.completions.create(model="m1", messages=HELLO, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls]  # type: ignore[union-attr]
    assert calls == [(c.id, c.name, c.arguments) for c in CALLS]


def test_tool_call_deltas_reassemble_with_the_stream_helper(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Reply(tool_calls=CALLS))
    with client.chat.completions.stream(model="m1", messages=HELLO, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (c.id, c.name, c.arguments) for c in CALLS
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_call_delta_shape(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Reply(tool_calls=CALLS[:1]))
    chunks = [json.loads(e) for e in sse_events(chat(raw, stream=True).text)[:-1]]
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    first, rest = deltas[0], deltas[1:]
    assert first == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(d.keys() == {"index", "function"} and d["function"].keys() == {"arguments"} for d in rest)
    assert "".join(d["function"]["arguments"] for d in rest) == CALLS[0].arguments
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["tool_calls"]


# -- faults --------------------------------------------------------------------------------------


def test_rate_limit(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.rate_limit(retry_after=2, retry_after_ms=1500))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    err = caught.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "2"
    assert err.response.headers["retry-after-ms"] == "1500"
    if server.flavor == "openai":
        assert (err.code, err.type) == ("rate_limit_exceeded", "requests")
        assert "Rate limit reached for m1" in err.message
        assert err.request_id is not None and err.request_id.startswith("req_")
    else:
        assert err.body == {
            "message": "Rate limit exceeded. Please try again in 2s.",
            "type": "TooManyRequestsError",
            "param": None,
            "code": 429,
        }


def test_rate_limit_retry_after_as_http_date(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.rate_limit(retry_after=30, retry_after_date=True))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    when = parsedate_to_datetime(caught.value.response.headers["retry-after"])
    assert 25 <= when.timestamp() - time.time() <= 31


def test_insufficient_quota(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.insufficient_quota())
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    assert caught.value.type == "insufficient_quota"
    assert caught.value.response.json()["error"]["code"] == ("insufficient_quota" if server.flavor == "openai" else 429)
    assert "retry-after" not in caught.value.response.headers


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(server: FakeServer, client: openai.OpenAI, status: int) -> None:
    server.enqueue(Fault.server_error(status))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    assert caught.value.status_code == status
    if server.flavor == "openai" and status == 503:
        assert caught.value.message.endswith("The engine is currently overloaded, please try again later")


def test_generic_status(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.status(409, "busy", error_type="conflict", error_code="locked", headers={"x-a": "b"}))
    with pytest.raises(openai.ConflictError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    assert (caught.value.type, caught.value.code) == ("conflict", "locked")
    assert caught.value.response.headers["x-a"] == "b"


def test_unauthorized_fault(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.unauthorized())
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    if server.flavor == "vllm":
        assert caught.value.response.json() == {"error": "Unauthorized"}
    else:
        assert caught.value.code == "invalid_api_key"


@FLAVORS
def test_api_key_is_checked_and_never_echoed(flavor: Flavor) -> None:
    with FakeServer(flavor=flavor, api_key="sk-right") as fake:
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong-secret", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as caught:
                bad.chat.completions.create(model="x", messages=HELLO)
        assert "sk-wrong-secret" not in caught.value.response.text
        with httpx2.Client() as http:
            missing = http.get(fake.base_url + "/models")
            assert missing.status_code == 401
            assert http.get(fake.url + "/health").status_code == 200  # outside /v1: unauthenticated
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0) as good:
            assert good.chat.completions.create(model="x", messages=HELLO).choices


def test_not_found(server: FakeServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=HELLO)
    assert caught.value.param == "model" if server.flavor == "vllm" else caught.value.code == "model_not_found"
    body = caught.value.response.json()["error"]
    if server.flavor == "vllm":
        assert body == {
            "message": "The model `gpt-9` does not exist. Valid aliases: m1, m2.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    else:
        assert body["message"] == "The model `gpt-9` does not exist or you do not have access to it."
    server.enqueue(Fault.not_found())
    with pytest.raises(openai.NotFoundError, match="`m1`"):
        client.chat.completions.create(model="m1", messages=HELLO)


def test_context_length_fault(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.context_length(max_model_len=100))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m1", messages=HELLO)
    err = caught.value
    assert "This model's maximum context length is 100 tokens." in err.message
    if server.flavor == "openai":
        assert (err.code, err.param) == ("context_length_exceeded", "messages")
        assert "However, your messages resulted in 101 tokens." in err.message
    else:
        assert (err.param, err.type) == ("input_tokens", "BadRequestError")
        assert err.response.json()["error"]["code"] == 400
        assert "your prompt contains at least 101 input tokens" in err.message


@FLAVORS
def test_context_length_is_enforced(flavor: Flavor) -> None:
    with (
        FakeServer(flavor=flavor, max_model_len=20) as fake,
        openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0) as client,
    ):
        assert client.chat.completions.create(model="x", messages=HELLO, max_tokens=9).choices
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="x", messages=HELLO, max_tokens=10)
        if flavor == "openai":
            assert caught.value.code == "context_length_exceeded"
            assert "you requested 21 tokens (11 in the messages, 10 in the completion)" in caught.value.message
        else:
            assert "you requested 10 output tokens and your prompt contains at least 11 input tokens" in (
                caught.value.message
            )
        if flavor == "vllm":
            with pytest.raises(openai.BadRequestError, match="max_tokens=30 cannot be greater than max_model_len=20"):
                client.chat.completions.create(model="x", messages=HELLO, max_tokens=30)
        assert fake.pending() == 0


def test_drop(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.drop())
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m1", messages=HELLO)
    assert client.chat.completions.create(model="m1", messages=HELLO).choices


def test_malformed_json(server: FakeServer, client: openai.OpenAI, raw: httpx2.Client) -> None:
    server.enqueue(Fault.malformed_json(), Fault.malformed_json())
    with pytest.raises(json.JSONDecodeError):  # what openai 3.57 raises for a bad 200 body
        client.chat.completions.create(model="m1", messages=HELLO)
    events = sse_events(chat(raw, stream=True).text)
    assert events[-1] == "[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[0])


def test_truncated_stream_is_an_incomplete_body(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("a b c d e")))
    received = b""
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        with raw.stream("POST", "/v1/chat/completions", json={"model": "m1", "messages": HELLO, "stream": True}) as r:
            assert r.status_code == 200
            for part in r.iter_bytes():
                received += part
    events = sse_events(received.decode())
    assert "[DONE]" not in events
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "a", " b"]


def test_truncated_stream_through_the_sdk(server: FakeServer, client: openai.OpenAI) -> None:
    # openai 3.57 surfaces the incomplete chunked body as APIConnectionError after the chunks it got.
    server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("a b c d e")))
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m1", messages=HELLO, stream=True):
            got.append(chunk.choices[0].delta.content or "")
    assert got == ["", "a", " b"]


def test_truncated_non_stream_body(server: FakeServer, raw: httpx2.Client, client: openai.OpenAI) -> None:
    server.enqueue(Fault.truncate_stream(), Fault.truncate_stream())
    with pytest.raises(httpx2.RemoteProtocolError, match="peer closed connection without sending complete"):
        chat(raw)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m1", messages=HELLO)


def test_stream_error_event(server: FakeServer, client: openai.OpenAI, raw: httpx2.Client) -> None:
    server.enqueue(Fault.stream_error(after_chunks=1, message="engine died", reply=Reply("a b c")))
    got: list[str] = []
    with pytest.raises(openai.APIError, match="engine died") as caught:
        for chunk in client.chat.completions.create(model="m1", messages=HELLO, stream=True):
            got.append(chunk.choices[0].delta.content or "")
    assert not isinstance(caught.value, openai.APIStatusError)
    assert got == ["", "a"]

    server.enqueue(Fault.stream_error(after_chunks=0, message="boom", status=503))
    events = sse_events(chat(raw, stream=True).text)
    error = json.loads(events[1])["error"]
    if server.flavor == "vllm":
        assert events[2:] == ["[DONE]"]
        assert error == {"message": "boom", "type": "ServiceUnavailableError", "param": None, "code": 503}
    else:
        assert len(events) == 2
        assert error == {"message": "boom", "type": "server_error", "param": None, "code": None}

    server.enqueue(Fault.stream_error(status=503))
    assert chat(raw).status_code == 503


def test_slow_then_reply_and_sdk_timeout(server: FakeServer, client: openai.OpenAI) -> None:
    server.enqueue(Fault.slow(0.3, then=Reply("late")))
    started = time.monotonic()
    late = client.chat.completions.create(model="m1", messages=HELLO)
    assert time.monotonic() - started >= 0.3
    assert late.choices[0].message.content == "late"

    server.enqueue(Fault.slow(2, then=Fault.rate_limit()))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m1", messages=HELLO, timeout=0.2)


def test_stall_stream(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Fault.stall_stream(after_chunks=1, seconds=0.3, reply=Reply("a b")))
    stamps: list[tuple[float, str]] = []
    with raw.stream("POST", "/v1/chat/completions", json={"model": "m1", "messages": HELLO, "stream": True}) as r:
        for line in r.iter_lines():
            if line:
                stamps.append((time.monotonic(), line))
    assert stamps[-1][1] == "data: [DONE]"
    gaps = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)]
    assert max(gaps) >= 0.25 and gaps.index(max(gaps)) == 1  # between content chunks " a" and " b"


# -- validation ----------------------------------------------------------------------------------


def test_missing_messages_and_invalid_json(server: FakeServer, raw: httpx2.Client) -> None:
    missing = raw.post("/v1/chat/completions", json={"model": "m1"})
    assert missing.status_code == 400
    invalid = raw.post("/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"})
    assert invalid.status_code == 400
    for response in (missing, invalid):
        error = response.json()["error"]
        assert error.keys() == {"message", "type", "param", "code"}
        assert error["type"] == ("Bad Request" if server.flavor == "vllm" else "invalid_request_error")
    if server.flavor == "openai":
        assert missing.json()["error"]["code"] == "missing_required_parameter"
        assert "x-request-id" in missing.headers


def test_stream_options_without_stream(server: FakeServer, client: openai.OpenAI) -> None:
    def call() -> Any:
        return client.chat.completions.create(
            model="m1",
            messages=HELLO,
            stream_options={"include_usage": True},
        )

    if server.flavor == "vllm":
        with pytest.raises(openai.BadRequestError, match="Stream options can only be defined when `stream=True`"):
            call()
    else:
        assert call().choices


def test_scripted_items_are_left_for_valid_requests(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Reply("kept"))
    assert raw.post("/v1/chat/completions", json={"model": "m1"}).status_code == 400
    assert server.pending() == 1
    assert chat(raw).json()["choices"][0]["message"]["content"] == "kept"


def test_per_model_queues_fall_back_to_shared(server: FakeServer, raw: httpx2.Client) -> None:
    server.enqueue(Reply("shared"))
    server.enqueue(Reply("for m2"), model="m2")
    assert server.pending() == 2 and server.pending("m2") == 1

    def text(model: str) -> str:
        return str(chat(raw, model=model).json()["choices"][0]["message"]["content"])

    assert [text("m2"), text("m2"), text("m1")] == ["for m2", "shared", "Hello there, world"]


def test_enqueue_rejects_other_types(server: FakeServer) -> None:
    with pytest.raises(TypeError):
        server.enqueue("hello")  # type: ignore[arg-type]


def test_reply_and_fault_validate_their_arguments() -> None:
    with pytest.raises(ValueError):
        Reply("x", chunks=0)
    with pytest.raises(ValueError):
        Reply("x", prompt_tokens=-1)
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(ValueError):
        Fault.server_error(404)
    with pytest.raises(ValueError):
        Fault.rate_limit(retry_after_date=True)
    with pytest.raises(ValueError):
        FakeServer(flavor="tgi")  # type: ignore[arg-type]


# -- other endpoints -----------------------------------------------------------------------------


def test_tokenize_count_matches_usage(server: FakeServer, raw: httpx2.Client) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What's 2+2?"},
    ]
    usage = chat(raw, messages=messages).json()["usage"]
    tokenized = raw.post("/tokenize", json={"model": "m1", "messages": messages})
    if server.flavor == "openai":
        assert tokenized.status_code == 404
        assert tokenized.json()["error"]["message"] == "Invalid URL (POST /tokenize)"
        return
    body = tokenized.json()
    assert body["count"] == usage["prompt_tokens"] == count_chat_tokens(messages)
    assert body["max_model_len"] == 4096 and len(body["tokens"]) == body["count"]
    assert all(isinstance(t, int) for t in body["tokens"])
    prompt = raw.post("/tokenize", json={"prompt": "Hello, world!"}).json()
    assert prompt["count"] == 4


def test_models_list(server: FakeServer, client: openai.OpenAI) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == ["m1", "m2"] == server.models
    if server.flavor == "vllm":
        assert all(m.owned_by == "vllm" and (m.model_extra or {})["max_model_len"] == 4096 for m in models)
    else:
        assert client.models.retrieve("m2").id == "m2"


def test_health_and_unknown_routes(server: FakeServer, raw: httpx2.Client) -> None:
    health = raw.get("/health")
    assert (health.status_code, health.content) == (200, b"")
    unknown = raw.get("/v1/nothing")
    assert unknown.status_code == 404
    if server.flavor == "vllm":
        assert unknown.json() == {"detail": "Not Found"}
        assert unknown.headers["server"] == "uvicorn"
        assert raw.get("/version").json() == {"version": "0.32.0"}
    else:
        assert unknown.json()["error"]["type"] == "invalid_request_error"


# -- recording -----------------------------------------------------------------------------------


def test_requests_are_recorded_in_order(server: FakeServer, raw: httpx2.Client) -> None:
    raw.get("/v1/models")
    chat(raw, temperature=0.5, headers=None)
    raw.post("/v1/chat/completions?x=1", json={"model": "m1", "messages": HELLO}, headers={"X-Trace": "abc"})

    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
    ]
    first, second = server.chat_requests
    assert first.json == {"model": "m1", "messages": HELLO, "temperature": 0.5, "headers": None}
    assert first.model == "m1" and not first.stream
    assert second.query == "x=1" and second.headers["x-trace"] == "abc"
    assert json.loads(second.body) == second.json

    server.enqueue(Reply("x"))
    server.reset()
    assert server.requests == [] and server.pending() == 0


# -- concurrency and lifecycle -------------------------------------------------------------------


async def test_parallel_async_requests(server: FakeServer) -> None:
    server.default_reply = Reply(delay=0.3)  # echo, after a pause: 20 in series would take 6 s
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:

        async def ask(i: int) -> str | None:
            message: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"request {i}"}]
            completion = await client.chat.completions.create(model="m1", messages=message)
            return completion.choices[0].message.content

        started = time.monotonic()
        answers = await asyncio.gather(*(ask(i) for i in range(20)))
        elapsed = time.monotonic() - started
    assert answers == [f"request {i}" for i in range(20)]
    assert elapsed < 3.0
    assert len(server.chat_requests) == 20


async def test_async_stream(server: FakeServer) -> None:
    server.enqueue(Reply("async words here"))
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m1",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "async words here"
    assert chunks[-1].usage is not None


def test_sync_and_async_clients_at_once(server: FakeServer, client: openai.OpenAI) -> None:
    server.default_reply = Reply("ok", delay=0.5)  # 6 calls in series would take 3 s

    async def many() -> int:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as aclient:
            done = await asyncio.gather(
                *(aclient.chat.completions.create(model="m1", messages=HELLO) for _ in range(5))
            )
            return len(done)

    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(many())))
    started = time.monotonic()
    thread.start()
    assert client.chat.completions.create(model="m1", messages=HELLO).choices[0].message.content == "ok"
    thread.join()
    assert results == [5] and time.monotonic() - started < 2.0


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("turnout-fake")]


def test_close_ends_threads_and_connections_and_is_idempotent() -> None:
    assert fake_threads() == []
    fake = FakeServer().start()
    port = fake.port
    fake.enqueue(Fault.slow(30))
    with httpx2.Client(base_url=fake.url) as idle, httpx2.Client(base_url=fake.url, timeout=10) as busy:
        assert idle.get("/health").status_code == 200  # keeps a keep-alive connection open
        errors: list[BaseException] = []

        def hang() -> None:
            try:
                busy.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
            except httpx2.HTTPError as exc:
                errors.append(exc)

        hanging = threading.Thread(target=hang)
        hanging.start()
        while not fake.chat_requests:
            time.sleep(0.01)
        assert len(fake_threads()) == 3  # the accept loop, two connections
        started = time.monotonic()
        fake.close()
        hanging.join(5)
        assert time.monotonic() - started < 1.0
        assert errors and not hanging.is_alive()
    fake.close()
    assert fake_threads() == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(RuntimeError):
        fake.start()


@pytest.mark.parametrize("kind", [FakeServer, FakeAzureServer, FakeTGIServer, FakeTEIServer])
def test_every_fake_builds_on_the_one_scripted_base(kind: type[ScriptedServer]) -> None:
    """No fake subclasses another provider's fake; the base's lifecycle, script and log serve sync and async."""
    assert kind.__bases__ == (ScriptedServer,)
    fake = kind()
    with pytest.raises(RuntimeError, match=f"^the {kind.__name__} is not running"):
        _ = fake.port
    with fake:
        fake.enqueue(Reply("a"), Reply("b"), model="m")
        assert fake.pending() == 2 and fake.pending("m") == 2 and kind.__name__ in repr(fake)
        with httpx2.Client(base_url=fake.url) as sync:
            sync.get("/health")

        async def get() -> None:
            async with httpx2.AsyncClient(base_url=fake.url) as client:
                await client.get("/health", params={"async": "1"})

        asyncio.run(get())
        assert [(r.method, r.path, r.query) for r in fake.requests] == [
            ("GET", "/health", ""),
            ("GET", "/health", "async=1"),
        ]
        fake.reset()
        assert fake.pending() == 0 and fake.requests == []
    assert "not running" in repr(fake)
    with pytest.raises(RuntimeError, match=f"^this {kind.__name__} is closed; create a new one$"):
        fake.start()


def test_start_is_fast_and_url_needs_a_running_server() -> None:
    fake = FakeServer(flavor="vllm")
    with pytest.raises(RuntimeError):
        _ = fake.url
    started = time.monotonic()
    fake.start()
    try:
        assert time.monotonic() - started < 0.5
        assert fake.start() is fake
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
        assert fake.models == ["fake-model"] and fake.max_model_len == 4096
        assert "vllm" in repr(fake)
    finally:
        fake.close()
