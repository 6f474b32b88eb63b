"""`FakeTGIServer` speaks TGI's wire format: checked with raw HTTP and with huggingface_hub's client.

Also `Fault.end_stream`, added with it, on `FakeServer`'s flavors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx2
import openai
import pytest
from huggingface_hub import InferenceClient

from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply, ToolCallSpec


@pytest.fixture
def tgi() -> Iterator[FakeTGIServer]:
    with FakeTGIServer() as server:
        yield server


def events(response: httpx2.Response) -> list[Any]:
    return [json.loads(line[5:]) if line != "data: [DONE]" else "[DONE]" for line in response.text.splitlines() if line]


def test_info_health_and_routes(tgi: FakeTGIServer) -> None:
    info = httpx2.get(tgi.url + "/info").json()
    assert info["model_id"] == "meta-llama/Llama-2-7b-chat-hf"
    assert (info["max_input_tokens"], info["max_total_tokens"], info["max_stop_sequences"]) == (4095, 4096, 4)
    assert httpx2.get(tgi.url + "/health").status_code == 200
    tgi.healthy = False
    health = httpx2.get(tgi.url + "/health")
    assert health.status_code == 503 and health.json()["error_type"] == "healthcheck"
    assert httpx2.get(tgi.url + "/nowhere").status_code == 404
    assert tgi.base_url == tgi.url and "FakeTGIServer(model_id=" in repr(tgi)


def test_generate_with_details_and_token_headers(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply("Hello there"))
    body = {"inputs": "[INST] Hi [/INST]", "parameters": {"max_new_tokens": 20, "details": True, "seed": 4}}
    response = httpx2.post(tgi.url + "/generate", json=body)
    reply = response.json()
    assert reply["generated_text"] == "Hello there"
    details = reply["details"]
    assert (details["finish_reason"], details["generated_tokens"], details["seed"]) == ("eos_token", 3, 4)
    assert [t["text"] for t in details["tokens"]] == ["Hello", " there", "</s>"] and details["prefill"] == []
    # <s> [ INST ] Hi [ / INST ]
    assert response.headers["x-prompt-tokens"] == "9" and response.headers["x-generated-tokens"] == "3"
    assert response.headers["x-compute-type"] == "gpu+optimized" and "x-time-per-token" in response.headers


def test_generate_without_details_and_the_compat_route(tgi: FakeTGIServer) -> None:
    plain = httpx2.post(tgi.url + "/generate", json={"inputs": "[INST] echo me [/INST]"}).json()
    assert plain == {"generated_text": "echo me"}
    compat = httpx2.post(tgi.url + "/", json={"inputs": "[INST] echo me [/INST]", "parameters": {}}).json()
    assert compat == [{"generated_text": "echo me"}]


def test_generate_stream_events(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply("one two", prompt_tokens=7))
    response = httpx2.post(tgi.url + "/generate_stream", json={"inputs": "x", "parameters": {"details": True}})
    assert response.headers["content-type"] == "text/event-stream" and response.headers["x-accel-buffering"] == "no"
    first, second, last = events(response)
    assert first["token"]["text"] == " one" and first["generated_text"] is None and first["details"] is None
    assert second["token"]["text"] == " two"
    assert last["token"] == {"id": 2, "text": "</s>", "logprob": -0.25, "special": True}
    assert last["generated_text"] == "one two"
    assert last["details"] == {"finish_reason": "eos_token", "generated_tokens": 3, "input_length": 7, "seed": None}


def test_length_finish_ends_on_a_content_token(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply("a b c", finish_reason="length"))
    response = httpx2.post(tgi.url + "/", json={"inputs": "x", "stream": True, "parameters": {"details": True}})
    *_, last = events(response)
    assert last["token"]["text"] == " c" and not last["token"]["special"]
    assert last["details"]["finish_reason"] == "length" and last["details"]["generated_tokens"] == 3


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"max_new_tokens": 5000}, "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 2 `inputs` tokens"),
        ({"temperature": 0}, "`temperature` must be strictly positive"),
        ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
        ({"grammar": {"type": "xml", "value": 1}}, "grammar is not a TGI grammar"),
    ],
)
def test_validation_errors(tgi: FakeTGIServer, parameters: dict[str, Any], message: str) -> None:
    response = httpx2.post(tgi.url + "/generate", json={"inputs": "x", "parameters": parameters})
    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "validation" and body["error"].startswith("Input validation error: " + message)
    # the same failure inside a stream: an error event on a 200
    stream = httpx2.post(tgi.url + "/generate_stream", json={"inputs": "x", "parameters": parameters})
    assert stream.status_code == 200 and events(stream) == [body]


def test_input_over_max_input_tokens_and_bad_bodies() -> None:
    with FakeTGIServer(max_input_tokens=3, max_total_tokens=8) as tgi:
        too_long = httpx2.post(tgi.url + "/generate", json={"inputs": "a b c d"})
        assert too_long.json()["error"] == "Input validation error: `inputs` must have less than 3 tokens. Given: 5"
        empty = httpx2.post(tgi.url + "/generate", json={"inputs": ""})
        assert empty.json()["error"] == "Input validation error: `inputs` cannot be empty"
        unreadable = httpx2.post(tgi.url + "/generate", json={"prompt": "x"})
        assert unreadable.status_code == 422 and unreadable.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        (
            Fault.status(424, "Request failed during generation: OOM"),
            424,
            {"error": "Request failed during generation: OOM", "error_type": "generation"},
        ),
        (Fault.rate_limit(), 429, {"error": "Model is overloaded", "error_type": "overloaded"}),
        (Fault.server_error(500), 500, {"error": "Incomplete generation", "error_type": "incomplete_generation"}),
        (Fault.server_error(503), 503, {"error": "Service Unavailable: the endpoint is scaled to zero and starting"}),
        (Fault.unauthorized(), 401, {"error": "Invalid credentials in Authorization header"}),
        (
            Fault.insufficient_quota(),
            402,
            {"error": "You have exceeded your monthly included credits for Inference Providers."},
        ),
    ],
    ids=["424", "429", "500", "503", "401", "402"],
)
def test_error_bodies(tgi: FakeTGIServer, fault: Fault, status: int, body: dict[str, Any]) -> None:
    tgi.enqueue(fault)
    response = httpx2.post(tgi.url + "/generate", json={"inputs": "x"})
    assert response.status_code == status and response.json() == body


def test_messages_api(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply("Hi there", prompt_tokens=5, completion_tokens=2))
    reply = httpx2.post(
        tgi.url + "/v1/chat/completions", json={"model": "tgi", "messages": [{"role": "user", "content": "Hi"}]}
    )
    body = reply.json()
    assert body["object"] == "chat.completion" and body["id"] == "" and body["system_fingerprint"] == "3.3.6-native"
    assert body["model"] == "meta-llama/Llama-2-7b-chat-hf"
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert reply.headers["x-prompt-tokens"] == "5" and reply.headers["x-generated-tokens"] == "2"


def test_messages_api_stream_with_usage_and_done(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply("a b", prompt_tokens=5, completion_tokens=2))
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True, "stream_options": {"include_usage": True}}
    *chunks, usage, done = events(httpx2.post(tgi.url + "/v1/chat/completions", json=body))
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", " b", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[0]["object"] == "chat.completion.chunk"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7 and done == "[DONE]"


def test_messages_api_tool_calls(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}')]))
    body = httpx2.post(tgi.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "w?"}]}).json()
    [call] = body["choices"][0]["message"]["tool_calls"]
    assert call == {
        "id": "0",
        "type": "function",
        "function": {"description": None, "name": "get_weather", "arguments": '{"city": "Paris"}'},
    }


@pytest.mark.parametrize(
    ("response_format", "accepted"),
    [
        ({"type": "json", "value": {"type": "object"}}, True),
        ({"type": "json_schema", "value": {"name": "x", "schema": {}}}, True),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, False),  # OpenAI's shape
        ({"type": "json_object"}, False),
    ],
)
def test_messages_api_takes_only_tgis_grammar(
    tgi: FakeTGIServer, response_format: dict[str, Any], accepted: bool
) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "response_format": response_format}
    response = httpx2.post(tgi.url + "/v1/chat/completions", json=body)
    assert (response.status_code == 200) is accepted
    if not accepted:
        assert response.status_code == 422 and "Failed to deserialize the JSON body" in response.text


def test_messages_api_in_stream_error_shape(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Fault.stream_error(after_chunks=1, message="boom", status=424, reply=Reply("a b c")))
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    *_, error = events(httpx2.post(tgi.url + "/v1/chat/completions", json=body))
    assert error == {"error": {"message": "boom", "http_status_code": 424}}


def test_no_chat_route() -> None:
    with FakeTGIServer(chat_route=False) as tgi:
        assert httpx2.post(tgi.url + "/v1/chat/completions", json={"messages": []}).status_code == 404


def test_tokenize(tgi: FakeTGIServer) -> None:
    tokens = httpx2.post(tgi.url + "/tokenize", json={"inputs": "Hi there"}).json()
    assert tokens[0] == {"id": 1, "text": "<s>", "start": 0, "stop": 0}
    assert [(t["text"], t["start"], t["stop"]) for t in tokens[1:]] == [("Hi", 0, 2), ("there", 3, 8)]


def test_auth_and_cold_start() -> None:
    with FakeTGIServer(api_key="secret", scaled_to_zero=True, scale_up_seconds=0) as tgi:
        assert httpx2.get(tgi.url + "/health").status_code == 503  # scaled to zero, no auth on /health
        assert httpx2.get(tgi.url + "/info").status_code == 401
        auth = {"authorization": "Bearer secret"}
        assert httpx2.get(tgi.url + "/info", headers=auth).status_code == 503
        assert httpx2.get(tgi.url + "/info", headers={**auth, "X-Scale-Up-Timeout": "60"}).status_code == 200
        assert tgi.warm and httpx2.get(tgi.url + "/info", headers=auth).status_code == 200


def test_end_stream_and_truncate(tgi: FakeTGIServer) -> None:
    tgi.enqueue(Fault.end_stream(after_chunks=1, reply=Reply("a b c")))
    ended = httpx2.post(tgi.url + "/generate_stream", json={"inputs": "x"})
    assert [e["token"]["text"] for e in events(ended)] == [" a"]  # a clean end, no last event
    tgi.enqueue(Fault.truncate_stream(after_chunks=1, reply=Reply("a b c")))
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.post(tgi.url + "/generate_stream", json={"inputs": "x"})


def test_the_real_huggingface_hub_client(tgi: FakeTGIServer) -> None:
    client = InferenceClient(base_url=tgi.url)
    tgi.enqueue(Reply("Hello!"))
    assert client.text_generation("[INST] Hi [/INST]", max_new_tokens=20) == "Hello!"
    assert client.chat_completion([{"role": "user", "content": "Hi"}], max_tokens=5).choices[0].message.content == "Hi"
    assert [r.path for r in tgi.requests] == ["/", "/v1/chat/completions"]
    # huggingface_hub 2.4 refuses /info for a URL unless provider="hf-inference" is given explicitly
    with pytest.raises(ValueError, match="not supported on 'None'"):
        client.get_endpoint_info()
    assert InferenceClient(base_url=tgi.url, provider="hf-inference").get_endpoint_info()["max_total_tokens"] == 4096


@pytest.mark.parametrize("flavor", ["openai", "vllm"])
def test_end_stream_on_the_openai_and_vllm_flavors(flavor: Literal["openai", "vllm"]) -> None:
    """`Fault.end_stream` ends the chunked body cleanly: the openai SDK's iterator just stops, no error."""
    with (
        FakeServer(flavor=flavor) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as sdk,
    ):
        server.enqueue(Fault.end_stream(after_chunks=2, reply=Reply("a b c d")))
        stream = sdk.chat.completions.create(
            model=server.models[0], messages=[{"role": "user", "content": "x"}], stream=True
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b"
        assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)
        server.enqueue(Fault.end_stream(reply=Reply("whole")))  # not a stream: the whole reply
        reply = sdk.chat.completions.create(model=server.models[0], messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "whole"
