"""Reply shapes real servers send (issue 20), each written out here and served by the fakes over HTTP.

- TGI 1.4.x tool calls: a numeric ``id``, ``arguments`` as an object, ``finish_reason: "eos_token"``;
- Groq's ``event: error`` inside a 200 stream carrying its own status (``status_code: 400``);
- custom tool calls (``"type": "custom"``) and legacy ``function_call`` replies, kept and sent back;
- TGI text mode whose last stream event has ``details: null``.

Each shape is checked twice: the fake sends exactly the shape written here (a raw HTTP request),
and turnout decodes it, sync and async, streamed and not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

import turnout
from turnout import AsyncClient, Client, Message
from turnout.providers._openai_wire import parse_completion
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply, ToolCallSpec
from turnout.tools import tool

from ..conftest import CANARY_KEY, LLAMA, Runner
from .conftest import hf_config

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
HI = [{"role": "user", "content": "Hi"}]


def _openai(server: FakeServer, **extra: Any) -> dict[str, Any]:
    """One ``openai`` provider ``p`` on ``server``, its models ``m`` and ``n`` priced."""
    price = {"input_per_million": "1", "output_per_million": "2"}
    providers = {"p": {"type": "openai", "base_url": server.base_url, "api_key": "k"}}
    return {"providers": providers, "prices": {"p:m": price, "p:n": price}, **extra}


# -- 1. TGI 1.4.x: numeric id, arguments as an object, eos_token ------------------------------------

#: The tool call of a real TGI 1.4.5 chat reply (its message and finish reason).
TGI_14_CALL = {
    "id": 0,
    "type": "function",
    "function": {
        "description": None,
        "name": "get_n_day_weather_forecast",
        "arguments": {"format": "fahrenheit", "location": "San Francisco, CA", "num_days": 3},
    },
}
FORECAST = TGI_14_CALL["function"]["arguments"]  # type: ignore[index]


def _tgi_14() -> FakeTGIServer:
    return FakeTGIServer(LLAMA, api_key=CANARY_KEY, tool_arguments="object", tool_call_ids="number")


def _forecast_reply() -> Reply:
    return Reply(tool_calls=[ToolCallSpec("get_n_day_weather_forecast", FORECAST)], finish_reason="eos_token")


def test_the_tgi_fake_sends_tgi_14_tool_calls() -> None:
    with _tgi_14() as server:
        server.enqueue(_forecast_reply())
        body = httpx2.post(
            f"{server.url}/v1/chat/completions",
            json={"model": LLAMA, "messages": HI},
            headers={"authorization": f"Bearer {CANARY_KEY}"},
        ).json()
    [choice] = body["choices"]
    assert choice["message"]["tool_calls"] == [TGI_14_CALL] and choice["finish_reason"] == "eos_token"


@STREAMED
def test_tgi_14_tool_calls_decode_with_their_usage(runner: Runner, streamed: bool) -> None:
    with _tgi_14() as server:
        server.enqueue(_forecast_reply())
        reply = runner.call(streamed, hf_config(server), f"hf:{LLAMA}", "Forecast?", tools=[_forecast_tool()])
    [call] = reply.tool_calls
    assert (call.id, call.type, call.name, call.args) == ("0", "function", "get_n_day_weather_forecast", FORECAST)
    assert reply.finish_reason == "tool_calls"
    assert reply.usage.prompt_tokens is not None and reply.usage.completion_tokens is not None


@STREAMED
def test_a_numeric_id_and_object_arguments_decode_on_the_openai_wire(runner: Runner, streamed: bool) -> None:
    """The same shape from an OpenAI-compatible host: the decoder every OpenAI-wire provider shares."""
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(
            Reply(tool_calls=[ToolCallSpec("get_n_day_weather_forecast", FORECAST, id=0)], finish_reason="eos_token")
        )
        reply = runner.call(streamed, _openai(server), "p:m", "Forecast?")
        sent = server.chat_requests[0]
    [call] = reply.tool_calls
    assert (call.id, call.name, call.args) == ("0", "get_n_day_weather_forecast", FORECAST)
    assert reply.finish_reason == "tool_calls" and reply.usage.total_tokens is not None
    assert sent.stream is streamed


def _forecast_tool() -> turnout.Tool:
    @tool
    def get_n_day_weather_forecast(location: str, format: str, num_days: int) -> str:
        """An N-day weather forecast."""
        return f"{num_days} days of sun in {location} ({format})"

    return get_n_day_weather_forecast


# -- 2. an error event that carries its own status ---------------------------------------------------

#: Groq's in-stream refusal of a malformed tool call (a 200 stream, before any content).
GROQ_ERROR = {
    "message": "Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.",
    "type": "invalid_request_error",
    "code": "tool_use_failed",
    "status_code": 400,
}


def _groq_error(after_chunks: int = 0) -> Fault:
    return Fault.stream_error(
        after_chunks,
        str(GROQ_ERROR["message"]),
        400,
        error_type="invalid_request_error",
        error_code="tool_use_failed",
        status_key="status_code",
        event="error",
    )


def _retrying(server: FakeServer, *targets: str) -> dict[str, Any]:
    retry = {"max_attempts": 3, "initial_delay": 0.001, "max_delay": 0.001}
    return _openai(server, models={"route": {"targets": list(targets)}}, defaults={"retry": retry})


def test_the_fake_sends_groqs_error_event() -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_groq_error())
        raw = httpx2.post(
            f"{server.base_url}/chat/completions", json={"model": "m", "messages": HI, "stream": True}
        ).text
    head, error = raw.split("event: error\n")
    assert head.count("data: ") == 1 and '"role":"assistant"' in head  # only the role chunk came before it
    assert json.loads(error.split("\n")[0].removeprefix("data: ")) == {"error": {**GROQ_ERROR, "param": None}}


def _stream_text(client_mode: str, config: dict[str, Any]) -> str:
    if client_mode == "sync":
        with Client(config=config) as client, client.stream("route", "Hi") as stream:
            return "".join(c.text or "" for c in stream)

    async def go() -> str:
        async with AsyncClient(config=config) as client, client.stream("route", "Hi") as stream:
            return "".join([c.text or "" async for c in stream])

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_event_with_status_400_is_a_bad_request_not_retried(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_groq_error(), Reply("never sent"))
        with pytest.raises(turnout.BadRequestError) as caught:
            _stream_text(mode, _retrying(server, "p:m"))
        sent = len(server.chat_requests)
    error = caught.value
    assert (error.status_code, error.error_type, error.error_code) == (400, "invalid_request_error", "tool_use_failed")
    assert error.message == GROQ_ERROR["message"] and not error.retryable
    assert sent == 1  # not retried


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_event_is_routed_like_the_http_status_it_carries(mode: str) -> None:
    """Two targets: the in-stream 400 and an HTTP 400 reply end the call the same way."""
    outcomes: list[tuple[str | None, list[str], int]] = []
    for first in (_groq_error(), Fault.status(400, str(GROQ_ERROR["message"]))):
        with FakeServer(flavor="openai", models=["m", "n"]) as server:
            server.enqueue(first, Reply("from n"))
            try:
                text: str | None = _stream_text(mode, _retrying(server, "p:m", "p:n"))
            except turnout.BadRequestError as exc:
                text = None
                outcomes.append((text, [a.outcome for a in exc.attempts], len(server.chat_requests)))
            else:
                outcomes.append((text, [], len(server.chat_requests)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_event_with_only_a_type_counts_too(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(Fault.stream_error(0, "bad tool schema", 400, error_type="invalid_request_error"))
        with pytest.raises(turnout.BadRequestError) as caught:
            _stream_text(mode, _retrying(server, "p:m"))
        assert len(server.chat_requests) == 1
    assert caught.value.status_code == 400 and caught.value.message == "bad tool schema"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_event_after_content_is_an_interruption_caused_by_the_bad_request(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_groq_error(after_chunks=2))
        with pytest.raises(turnout.StreamInterruptedError) as caught:
            _stream_text(mode, _retrying(server, "p:m"))
        assert len(server.chat_requests) == 1
    assert isinstance(caught.value.__cause__, turnout.BadRequestError) and caught.value.status_code == 400


def test_the_tgi_fake_sends_a_hosts_error_event_on_its_chat_route() -> None:
    with FakeTGIServer(LLAMA) as server:
        server.enqueue(_groq_error())
        raw = httpx2.post(f"{server.url}/v1/chat/completions", json={"messages": HI, "stream": True}).text
    assert raw.startswith("event: error\ndata:")
    assert json.loads(raw.split("\n")[1].removeprefix("data:")) == {"error": GROQ_ERROR}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_event_with_a_status_is_a_bad_request_through_huggingface_hub(mode: str) -> None:
    """The HF router's hosts (Groq among them) reach turnout through huggingface_hub's stream parser."""
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as server:
        server.enqueue(_groq_error(), Reply("never sent"))
        config = hf_config(server)
        config["models"] = {"route": {"targets": [f"hf:{LLAMA}"]}}
        config["defaults"] = {"retry": {"max_attempts": 3, "initial_delay": 0.001, "max_delay": 0.001}}
        with pytest.raises(turnout.BadRequestError) as caught:
            _stream_text(mode, config)
        assert len(server.chat_requests) == 1
    assert caught.value.status_code == 400 and caught.value.error_code == "tool_use_failed"
    assert caught.value.message == GROQ_ERROR["message"]


# -- 3. custom tool calls ---------------------------------------------------------------------------

#: A custom tool call as OpenAI sends it (free-text input, not JSON arguments).
CUSTOM_CALL = {"id": "call_c1", "type": "custom", "custom": {"name": "run_sql", "input": "SELECT count(*) FROM t"}}


def _custom_reply() -> Reply:
    return Reply(tool_calls=[ToolCallSpec("run_sql", "SELECT count(*) FROM t", id="call_c1", type="custom")])


def test_the_fake_sends_custom_tool_calls() -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_custom_reply())
        body = httpx2.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": HI}).json()
    assert body["choices"][0]["message"]["tool_calls"] == [CUSTOM_CALL]


@STREAMED
def test_a_custom_tool_call_is_kept_and_sent_back_unchanged(runner: Runner, streamed: bool) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_custom_reply(), Reply("42"))
        reply = runner.call(streamed, _openai(server), "p:m", "How many rows?")
        [call] = reply.tool_calls
        assert (call.type, call.name, call.arguments, call.function) == (
            "custom",
            "run_sql",
            "SELECT count(*) FROM t",
            None,
        )
        assert call.custom is not None and call.custom.input == "SELECT count(*) FROM t"
        assert reply.finish_reason == "tool_calls"
        conversation = [
            Message(role="user", content="How many rows?"),
            reply.message,
            Message(role="tool", tool_call_id=call.id, content="42"),
        ]
        runner.call(streamed, _openai(server), "p:m", conversation)
        sent = server.chat_requests[1].json["messages"][1]
    assert sent == {"role": "assistant", "tool_calls": [CUSTOM_CALL]}


@tool
def run_sql(query: str) -> str:
    """Run a query."""
    return "42"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_answers_a_custom_call_with_a_tool_call_error(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_custom_reply(), Reply("sorry"), _custom_reply())
        if mode == "sync":
            with Client(config=_openai(server)) as client:
                run = client.run_tools("p:m", "How many rows?", tools=[run_sql])
                with pytest.raises(turnout.ToolCallError, match="custom tool call") as caught:
                    client.run_tools("p:m", "How many rows?", tools=[run_sql], on_error="raise")
        else:

            async def go() -> tuple[Any, pytest.ExceptionInfo[turnout.ToolCallError]]:
                async with AsyncClient(config=_openai(server)) as client:
                    run = await client.run_tools("p:m", "How many rows?", tools=[run_sql])
                    with pytest.raises(turnout.ToolCallError, match="custom tool call") as caught:
                        await client.run_tools("p:m", "How many rows?", tools=[run_sql], on_error="raise")
                    return run, caught

            run, caught = asyncio.run(go())
        second = server.chat_requests[1].json["messages"]
    assert run.text == "sorry" and caught.value.tool == "run_sql" and caught.value.call_id == "call_c1"
    assert second[1] == {"role": "assistant", "tool_calls": [CUSTOM_CALL]}
    assert second[2]["role"] == "tool" and second[2]["tool_call_id"] == "call_c1"
    assert second[2]["content"].startswith("Error: ToolCallError: tool call 'run_sql' is a custom tool call")


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ({"id": "a", "type": "custom"}, "of type 'custom' has no such part"),
        ({"id": "a", "type": "function"}, "of type 'function' has no such part"),
        ({"id": "a", "type": "mcp", "mcp": {}}, "is of type 'mcp'"),
    ],
)
def test_a_call_turnout_cannot_read_is_refused_not_invented(call: dict[str, Any], fragment: str) -> None:
    """A unit test of the shared decoder: no empty function call is ever made up."""
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [call]}}]}
    with pytest.raises(turnout.ResponseValidationError, match=fragment):
        parse_completion(json.dumps(body).encode(), provider="p", model="m", request_id=None)


def test_a_custom_call_has_no_json_arguments() -> None:
    call = turnout.ToolCall(id="c", type="custom", custom=turnout.CustomToolCall(name="run_sql", input="SELECT 1"))
    with pytest.raises(turnout.ToolCallError, match="free text"):
        call.arguments_json()
    with pytest.raises(ValueError, match="needs custom"):
        turnout.ToolCall(id="c", type="custom", function=turnout.FunctionCall(name="f"))
    with pytest.raises(ValueError, match="needs function"):
        turnout.ToolCall(id="c")


# -- 4. legacy function_call replies ------------------------------------------------------------------

#: A legacy `functions` API reply's message (OpenAI's deprecated function calling).
LEGACY_MESSAGE: dict[str, Any] = {
    "role": "assistant",
    "content": None,
    "refusal": None,
    "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    "annotations": [],
}


def _legacy_reply() -> Reply:
    return Reply(function_call=ToolCallSpec("get_weather", '{"city": "Paris"}'))


def test_the_fake_sends_legacy_function_calls() -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_legacy_reply())
        body = httpx2.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": HI}).json()
    [choice] = body["choices"]
    assert choice["message"] == LEGACY_MESSAGE and choice["finish_reason"] == "function_call"


@STREAMED
def test_a_legacy_function_call_is_exposed_and_sent_back_in_the_legacy_field(runner: Runner, streamed: bool) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_legacy_reply(), Reply("Sunny."))
        reply = runner.call(streamed, _openai(server), "p:m", "Weather in Paris?")
        assert reply.finish_reason == "function_call" and reply.choices[0].finish_reason == "function_call"
        assert reply.tool_calls == [] and reply.choices[0].tool_calls == []
        assert reply.function_call == turnout.FunctionCall(name="get_weather", arguments='{"city": "Paris"}')
        assert reply.choices[0].function_call == reply.function_call
        conversation = [
            Message(role="user", content="Weather in Paris?"),
            reply.message,
            {"role": "function", "name": "get_weather", "content": "sunny"},
        ]
        runner.call(streamed, _openai(server), "p:m", conversation)
        sent = server.chat_requests[1].json["messages"][1]
    assert sent == {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


# -- 5. TGI text mode without details -------------------------------------------------------------------


def test_the_tgi_fake_can_end_a_text_stream_without_details() -> None:
    with FakeTGIServer(LLAMA) as server:
        server.enqueue(Reply("Hello!", usage=False))
        raw = httpx2.post(
            f"{server.url}/generate_stream",
            json={"inputs": "[INST] Hi [/INST]", "parameters": {"details": True, "max_new_tokens": 20}},
        ).text
    last = json.loads(raw.strip().split("\n\n")[-1].removeprefix("data:"))
    assert last["generated_text"] == "Hello!" and last["details"] is None


@STREAMED
def test_text_mode_without_details_counts_the_prompt_with_tokenize_and_warns(runner: Runner, streamed: bool) -> None:
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY) as server:
        server.enqueue(Reply("Hello!", usage=False))
        config = hf_config(server, "text")
        reply = runner.call(streamed, config, f"hf:{LLAMA}", "Hi")
        with Client(config=config) as client:
            expected = client.provider("hf").count_prompt_tokens("Hi")  # type: ignore[attr-defined]
    assert reply.text == "Hello!"
    assert reply.usage == turnout.Usage(prompt_tokens=expected)
    assert [w for w in reply.warnings if "completion token count" in w]


@STREAMED
def test_text_mode_without_details_or_tokenize_has_no_usage_and_says_so(runner: Runner, streamed: bool) -> None:
    with FakeTGIServer(LLAMA, api_key=CANARY_KEY, tokenize_route=False) as server:
        server.enqueue(Reply("Hello!", usage=False))
        reply = runner.call(streamed, hf_config(server, "text"), f"hf:{LLAMA}", "Hi")
    assert reply.text == "Hello!" and reply.usage == turnout.Usage() and reply.cost is None
    assert [w for w in reply.warnings if "no usage" in w]


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_names_a_custom_call_even_without_a_tool_of_its_name(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_custom_reply(), Reply("sorry"))
        if mode == "sync":
            with Client(config=_openai(server)) as client:
                client.run_tools("p:m", "How many rows?", tools=[get_weather])
        else:

            async def go() -> None:
                async with AsyncClient(config=_openai(server)) as client:
                    await client.run_tools("p:m", "How many rows?", tools=[get_weather])

            asyncio.run(go())
        result = server.chat_requests[1].json["messages"][2]["content"]
    assert "is a custom tool call" in result and "there is no tool named" not in result


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_keeps_a_legacy_function_call_in_its_transcript(mode: str) -> None:
    with FakeServer(flavor="openai", models=["m"]) as server:
        server.enqueue(_legacy_reply())
        if mode == "sync":
            with Client(config=_openai(server)) as client:
                run = client.run_tools("p:m", "Weather in Paris?", tools=[get_weather])
        else:

            async def go() -> turnout.ToolRun:
                async with AsyncClient(config=_openai(server)) as client:
                    return await client.run_tools("p:m", "Weather in Paris?", tools=[get_weather])

            run = asyncio.run(go())
    assert run.rounds == 1 and run.response.finish_reason == "function_call"
    assert run.messages[-1].function_call == turnout.FunctionCall(name="get_weather", arguments='{"city": "Paris"}')


_TEXT_REPLY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def _variant(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(_TEXT_REPLY))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
    return body


_DROP = object()
_REPLY_SHAPES = {
    "usual": _variant(),
    "no usage": _variant(usage=_DROP),
    "usage null": _variant(usage=None),
    "usage details": _variant(
        usage__prompt_tokens_details={"cached_tokens": 2, "audio_tokens": 0},
        usage__completion_tokens_details={"reasoning_tokens": 1},
    ),
    "details null": _variant(usage__prompt_tokens_details=None, usage__completion_tokens_details={}),
    "content null": _variant(choices__0__message__content=None, choices__0__finish_reason="length"),
    "no id, no model, no index": _variant(id=_DROP, model=_DROP, choices__0__index=_DROP),
    "id null, finish null": _variant(id=None, choices__0__finish_reason=None),
    "host finish reasons": _variant(
        choices=[
            {"index": 0, "message": {"content": "a"}, "finish_reason": "eos_token"},
            {"index": 1, "message": {"content": "b"}, "finish_reason": "something new"},
        ]
    ),
    "float counts": _variant(usage__prompt_tokens=3.0),
    "text counts": _variant(usage__total_tokens="4"),
    "bool count": _variant(usage__completion_tokens=True),
    "text cached count": _variant(usage__prompt_tokens_details={"cached_tokens": "2"}),
    "logprobs": _variant(choices__0__logprobs={"content": [{"token": "hi", "logprob": -0.1, "bytes": [104, 105]}]}),
    "empty tool calls": _variant(choices__0__message__tool_calls=[]),
    "tool calls": _variant(
        choices__0__message__tool_calls=[{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        choices__0__finish_reason="stop",
    ),
}


@pytest.mark.parametrize("body", _REPLY_SHAPES.values(), ids=_REPLY_SHAPES.keys())
def test_a_text_reply_decodes_without_the_wire_models_to_the_same_reply(
    body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain-dict path for text replies gives what validating into the wire models gives (or defers to it)."""
    from turnout.providers import _openai_wire

    raw = json.dumps(body).encode()
    fast = parse_completion(raw, provider="p", model="m", request_id="r")
    monkeypatch.setattr(_openai_wire, "plain_completion", lambda *_: None)
    validated = parse_completion(raw, provider="p", model="m", request_id="r")
    assert fast == validated
    assert fast.usage.model_fields_set == validated.usage.model_fields_set


def test_text_replies_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A usual text reply is not validated into the wire models; one with tool calls is."""
    from turnout.providers import _openai_models

    validated: list[bytes] = []
    original = _openai_models._Completion.model_validate_json

    def counting(raw: bytes) -> Any:
        validated.append(raw)
        return original(raw)

    monkeypatch.setattr(_openai_models._Completion, "model_validate_json", counting)
    for name in ("usual", "usage details", "host finish reasons", "tool calls", "float counts"):
        parse_completion(json.dumps(_REPLY_SHAPES[name]).encode(), provider="p", model="m", request_id=None)
    assert [json.loads(raw) for raw in validated] == [_REPLY_SHAPES["tool calls"], _REPLY_SHAPES["float counts"]]
