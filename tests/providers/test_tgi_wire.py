"""Unit tests of the pure mapping functions behind the ``huggingface`` provider (no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import turnout
from turnout import ChatRequest, Message
from turnout.providers._hf_errors import map_error, ratelimit_reset
from turnout.providers._tgi_wire import (
    TextStream,
    Unsupported,
    chat_kwargs,
    decode_chat,
    decode_chat_chunk,
    tgi_grammar,
)


def request(**options: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="Hi")], **options)


def test_tgi_2_tool_call_arguments_as_an_object_become_json_text() -> None:
    output = {
        "object": "chat.completion",
        "id": "",
        "model": "tgi",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "0", "type": "function", "function": {"name": "f", "arguments": {"city": "Paris"}}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    reply = decode_chat(output, provider="p", model="m")
    [call] = reply.tool_calls
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert reply.usage.total_tokens == 7 and reply.model == "tgi"


def test_a_streamed_tool_call_sent_as_a_bare_object() -> None:
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "role": "assistant",
                    "tool_calls": {"index": 0, "id": "", "function": {"name": "f", "arguments": "{}"}},
                },
            }
        ]
    }
    [out] = decode_chat_chunk(chunk, provider="p", model="m")
    assert out.tool_calls[0].name == "f"


def test_a_reply_that_is_not_a_completion() -> None:
    with pytest.raises(turnout.ResponseValidationError):
        decode_chat({"error": None}, provider="p", model="m")


@pytest.mark.parametrize(
    ("response_format", "grammar"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, {"type": "json", "value": {"type": "object"}}),
        ({"type": "json", "value": {"type": "string"}}, {"type": "json", "value": {"type": "string"}}),
    ],
)
def test_tgi_grammar(response_format: dict[str, Any] | None, grammar: dict[str, Any] | None) -> None:
    assert tgi_grammar(response_format) == grammar


def test_router_providers_get_openai_response_format_unchanged() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert chat_kwargs("m", request(response_format=fmt), stream=False, grammar=False)["response_format"] == fmt
    with pytest.raises(Unsupported):
        tgi_grammar({"type": "yaml"})


def test_text_stream_usage_and_terminator() -> None:
    stream = TextStream("p", "m")
    assert [c.text for c in stream.add({"token": {"text": " Hi", "special": False}})] == ["Hi"]
    assert not stream.done and stream.text == "Hi"
    final = {
        "token": {"text": "</s>", "special": True},
        "generated_text": "Hi",
        "details": {"finish_reason": "eos_token", "generated_tokens": 2, "input_length": 9},
    }
    chunks = stream.add(final)
    assert stream.done and [c.finish_reason for c in chunks] == ["stop", None]
    assert chunks[-1].usage == turnout.Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11)
    assert stream.response().text == "Hi"


def test_a_final_event_of_an_old_tgi_without_input_length() -> None:
    stream = TextStream("p", "m")
    stream.add(
        {"token": {"text": "x"}, "generated_text": "x", "details": {"finish_reason": "length", "generated_tokens": 1}}
    )
    usage = stream.response().usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (None, 1, None)


@pytest.mark.parametrize(
    ("error", "status", "cls"),
    [
        ("ValidationError", 422, turnout.BadRequestError),
        ("GenerationError", 424, turnout.APIStatusError),
        ("OverloadedError", 429, turnout.RateLimitError),
        ("IncompleteGenerationError", 500, turnout.ServerError),
        ("UnknownError", 500, turnout.ServerError),
    ],
)
def test_in_stream_tgi_errors(error: str, status: int, cls: type[Exception]) -> None:
    from huggingface_hub import errors

    mapped = map_error(getattr(errors, error)("boom"), provider="p", model="m", url="u")
    assert type(mapped) is cls and mapped.status_code == status and mapped.message == "boom"


def test_the_chat_routes_in_stream_error_object_keeps_its_status() -> None:
    from huggingface_hub import errors

    # what huggingface_hub 2.4 raises for the Messages API's in-stream error: the error object itself
    payload = {"message": "Input validation error: `inputs` must have less than 4095 tokens", "http_status_code": 422}
    exc = errors.UnknownError(payload)  # type: ignore[arg-type]
    mapped = map_error(exc, provider="p", model="m", url="u")
    assert type(mapped) is turnout.ContextWindowExceededError and mapped.status_code == 422


def test_other_exceptions() -> None:
    from huggingface_hub import errors

    assert isinstance(
        map_error(errors.InferenceTimeoutError("t"), provider="p", model="m", url="u"), turnout.APITimeoutError
    )
    offline = map_error(errors.OfflineModeIsEnabled("off"), provider="p", model="m", url="u")
    assert isinstance(offline, turnout.APIConnectionError) and not offline.retryable
    refused = map_error(ValueError("Model x is not supported by provider together."), provider="p", model="m", url="u")
    assert isinstance(refused, turnout.BadRequestError) and "not supported by provider" in refused.message
    assert isinstance(
        map_error(json.JSONDecodeError("x", "", 0), provider="p", model="m", url="u"), turnout.ResponseValidationError
    )
    assert map_error(KeyError("x"), provider="p", model="m", url="u") is None


@pytest.mark.parametrize(
    ("value", "seconds"), [('"api";r=0;t=55', 55.0), ('"api";r=3;t=55', None), (None, None), ("garbage", None)]
)
def test_ratelimit_reset(value: str | None, seconds: float | None) -> None:
    assert ratelimit_reset(value) == seconds
