"""The streamed OpenAI wire's shortcuts give what the general paths give.

- A stream event decoded from plain JSON (text, finish and usage events) gives the chunks that
  validating it into the wire models gives; anything else defers to the validated path.
- A body without ``content-encoding`` is read from the response's byte stream itself (no decoder
  and no ``iter_raw`` generator per read); an encoded one is decoded. A read error keeps its
  request, and an async stream left early closes its byte iterator itself.
- The stream ends at ``[DONE]`` however the body ends (the async stream decodes its body itself).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from typing import Any

import httpx2
import pytest

import turnout
from turnout import AsyncClient
from turnout.providers import _openai_models, _openai_wire
from turnout.providers._openai_wire import parse_chunk
from turnout.testing import FakeServer, Fault
from turnout.types import ChatChunk

from ..conftest import CANARY_KEY, Runner

_EVENT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
}
_USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(json.dumps(_EVENT))
    event.update(changes)
    return event


def _choice(**changes: Any) -> dict[str, Any]:
    return {**_EVENT["choices"][0], **changes}


_SHAPES = {
    "text": _event(),
    "role": _event(choices=[_choice(delta={"role": "assistant", "content": ""})]),
    "finish": _event(choices=[_choice(delta={}, finish_reason="stop")]),
    "host finish reason": _event(choices=[_choice(delta={}, finish_reason="eos_token")]),
    "delta null": _event(choices=[_choice(delta=None)]),
    "no model, no index": {"choices": [{"delta": {"content": "x"}}]},
    "two choices": _event(choices=[_choice(), _choice(index=1, delta={"content": "b"})]),
    "usage alone": _event(choices=[], usage=_USAGE),
    "usage, no choices key": {"model": "m", "usage": _USAGE},
    "usage with choices (running counts)": _event(
        choices=[_choice(), _choice(index=1, delta={"content": "b"})], usage=_USAGE
    ),
    "usage null": _event(usage=None),
    "usage empty": _event(choices=[], usage={}),
    "usage details": _event(
        choices=[],
        usage={**_USAGE, "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": None},
    ),
    "float count": _event(choices=[], usage={**_USAGE, "prompt_tokens": 3.0}),
    "text count": _event(choices=[], usage={**_USAGE, "total_tokens": "4"}),
    "bool count": _event(choices=[], usage={**_USAGE, "completion_tokens": True}),
    "no choices": _event(choices=[]),
    "tool call": _event(
        choices=[
            _choice(delta={"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f"}}]})
        ]
    ),
    "logprobs": _event(choices=[_choice(logprobs={"content": [{"token": "hi", "logprob": -0.1}]})]),
}


def _fields(chunks: list[ChatChunk]) -> list[tuple[set[str], set[str] | None]]:
    return [(c.model_fields_set, None if c.usage is None else c.usage.model_fields_set) for c in chunks]


@pytest.mark.parametrize("event", _SHAPES.values(), ids=_SHAPES.keys())
def test_an_event_decodes_without_the_wire_models_to_the_same_chunks(
    event: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = json.dumps(event).encode()
    fast = parse_chunk(raw, provider="p", model="m")
    monkeypatch.setattr(_openai_wire, "plain_chunks", lambda _: None)
    validated = parse_chunk(raw, provider="p", model="m")
    assert fast == validated
    assert _fields(fast) == _fields(validated)


def test_text_finish_and_usage_events_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream's usual events (its usage too) are not validated into the wire models; a tool call or odd count is."""
    validated: list[bytes] = []
    original = _openai_models._Chunk.model_validate_json

    def counting(raw: bytes) -> Any:
        validated.append(raw)
        return original(raw)

    monkeypatch.setattr(_openai_models._Chunk, "model_validate_json", counting)
    names = ["text", "role", "finish", "usage alone", "usage with choices (running counts)", "tool call", "float count"]
    for name in names:
        parse_chunk(json.dumps(_SHAPES[name]).encode(), provider="p", model="m")
    assert [json.loads(raw) for raw in validated] == [_SHAPES["tool call"], _SHAPES["float count"]]


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _config(server: FakeServer) -> dict[str, Any]:
    return {"providers": {"p": {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}}}


_BODY = _sse(
    _event(),
    _event(choices=[_choice(delta={"content": " there"}, finish_reason="stop")]),
    _event(choices=[], usage=_USAGE),
)


def test_a_gzip_encoded_stream_is_decoded(runner: Runner) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(
            Fault.response(
                200, gzip.compress(_BODY), content_type="text/event-stream", headers={"content-encoding": "gzip"}
            )
        )
        chunks, reply = runner.stream(_config(server), "p:gpt-4o-mini", "Hi")
    assert [c.text for c in chunks] == ["hi", " there", None]
    assert reply.text == "hi there" and reply.finish_reason == "stop" and reply.usage.total_tokens == 4


def test_a_stream_without_content_encoding_is_read_raw(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """No decoder per read: neither httpx2's ``iter_bytes`` (identity decoder and chunker) nor ``iter_raw``."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a plain stream went through httpx2's readers")

    for reader in ("iter_bytes", "aiter_bytes", "iter_raw", "aiter_raw"):
        monkeypatch.setattr(httpx2.Response, reader, refuse)
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(Fault.response(200, _BODY, content_type="text/event-stream"))
        chunks, reply = runner.stream(_config(server), "p:gpt-4o-mini", "Hi")
    assert "".join(c.text or "" for c in chunks) == reply.text == "hi there"


@pytest.mark.parametrize(
    "body",
    [
        _BODY.removesuffix(b"\n\n"),  # the body ends right after the [DONE] line
        _BODY.removesuffix(b"\n"),  # ... after its line end, without the blank line
        _BODY.replace(b"\n\n", b"\r\n\r\n"),
        _BODY + b"data: " + json.dumps(_event()).encode() + b"\n\n",  # an event after [DONE] is not read as one
    ],
    ids=["no line end after [DONE]", "no blank line after [DONE]", "crlf", "event after [DONE]"],
)
def test_the_stream_ends_at_its_done_event_however_the_body_ends(runner: Runner, body: bytes) -> None:
    """An event the body ends in (no blank line after it) is still read: here the ``[DONE]`` that ends the stream.

    The async stream decodes its body itself (`OpenAIProvider.astream`); the sync one through `iter_sse_data`.
    """
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(Fault.response(200, body, content_type="text/event-stream"))
        chunks, reply = runner.stream(_config(server), "p:gpt-4o-mini", "Hi")
    assert [c.text for c in chunks] == ["hi", " there", None]
    assert reply.text == "hi there" and reply.finish_reason == "stop" and reply.usage.total_tokens == 4


def _transport_cause(error: BaseException) -> httpx2.TransportError:
    """The httpx2 error in ``error``'s chain of causes (which must end: an error is never its own cause)."""
    seen, cause = [error], error.__cause__
    while cause is not None and not isinstance(cause, httpx2.TransportError):
        assert all(cause is not s for s in seen), f"{error!r}: a cycle in its causes"
        seen.append(cause)
        cause = cause.__cause__
    assert cause is not None, f"no httpx2 transport error behind {error!r}"
    return cause


def test_a_body_cut_mid_stream_keeps_its_request_on_the_read_error(runner: Runner) -> None:
    """The read error behind `StreamInterruptedError` names its request, as httpx2's ``iter_raw`` would have it."""
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(Fault.truncate_stream(after_chunks=2))
        with pytest.raises(turnout.StreamInterruptedError) as info:
            runner.stream(_config(server), "p:gpt-4o-mini", "Hi")
    request = _transport_cause(info.value).request  # httpx2 raises RuntimeError when none is attached
    assert (request.method, request.url.path) == ("POST", "/v1/chat/completions")


def test_an_async_stream_left_early_closes_its_byte_iterator_itself() -> None:
    """No async generator of turnout's or httpx2's reading is left for the event loop to close later.

    (httpcore's own innermost one, ``HTTP11ConnectionByteStream.__aiter__``, is: httpcore does not
    close it when the generator around it closes. Its connection is released before, by
    ``response.aclose()``.)
    """
    finalized: list[str] = []

    async def go(server: FakeServer) -> str | None:
        firstiter, finalizer = sys.get_asyncgen_hooks()
        assert finalizer is not None

        def finalize(agen: Any) -> None:  # the loop's hook: an async generator dropped while still open
            if "httpcore" not in agen.ag_code.co_filename:
                finalized.append(agen.__qualname__)
            finalizer(agen)

        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalize)
        async with AsyncClient(config=_config(server)) as client, client.stream("p:gpt-4o-mini", "Hi") as stream:
            async for chunk in stream:
                return chunk.text  # leaves with the body half read
        return None

    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(Fault.response(200, _BODY, content_type="text/event-stream"))
        assert asyncio.run(go(server)) == "hi"
    assert finalized == []
