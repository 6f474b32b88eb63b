"""Stream semantics: fallback before the first content, StreamInterruptedError after it, early close."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeServer, Fault, Reply

from .conftest import LLAMA, Runner


def test_truncated_stream_is_an_error_not_a_short_answer(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer
) -> None:
    fake_vllm.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("alpha beta gamma delta")))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(config, f"local:{LLAMA}", "Hi")
    error = info.value
    assert error.partial_text == "alpha beta"
    assert error.provider == "local" and error.retryable
    assert [a.outcome for a in error.attempts] == ["StreamInterruptedError"]


def test_stream_ending_without_done_is_an_error(runner: Runner, config: dict[str, Any], fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Fault.truncate_stream(after_chunks=0))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(config, f"local:{LLAMA}", "Hi")
    assert info.value.partial_text == ""


def test_truncation_before_content_falls_back(runner: Runner, config: dict[str, Any], fake_openai: FakeServer) -> None:
    fake_openai.enqueue(Fault.truncate_stream(after_chunks=0))
    chunks, reply = runner.stream(config, "fast", "Hi")
    assert reply.provider == "local"
    assert [a.outcome for a in reply.attempts] == ["StreamInterruptedError", "ok"]
    assert "".join(c.text or "" for c in chunks) == reply.text


def test_truncation_after_content_does_not_fall_back(
    runner: Runner, config: dict[str, Any], fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    fake_openai.enqueue(Fault.truncate_stream(after_chunks=1, reply=Reply("partial answer")))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        runner.stream(config, "fast", "Hi")
    assert info.value.partial_text == "partial"
    assert fake_vllm.chat_requests == []  # never a duplicated answer from a second target


def test_error_event_after_content_becomes_stream_interrupted(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer
) -> None:
    fake_vllm.enqueue(
        Fault.stream_error(after_chunks=1, message="engine died", status=500, reply=Reply("one two three"))
    )
    with pytest.raises(turnout.StreamInterruptedError, match="engine died") as info:
        runner.stream(config, f"local:{LLAMA}", "Hi")
    assert info.value.partial_text == "one"
    assert isinstance(info.value.__cause__, turnout.ServerError)


def test_error_event_before_content_falls_back(runner: Runner, config: dict[str, Any], fake_openai: FakeServer) -> None:
    fake_openai.enqueue(Fault.stream_error(after_chunks=0, message="overloaded", status=503))
    _, reply = runner.stream(config, "fast", "Hi")
    assert [a.outcome for a in reply.attempts] == ["ServerError", "ok"]


@pytest.mark.parametrize("streamed", [False, True])
def test_malformed_json_is_a_response_validation_error(
    runner: Runner, config: dict[str, Any], fake_vllm: FakeServer, streamed: bool
) -> None:
    fake_vllm.enqueue(Fault.malformed_json())
    with pytest.raises(turnout.ResponseValidationError):
        runner.call(streamed, config, f"local:{LLAMA}", "Hi")


def test_closing_a_stream_early_releases_the_connection(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    fake_vllm.enqueue(Reply(" ".join(["word"] * 200), chunks=200))
    with Client(config=config) as client:
        with client.stream(f"local:{LLAMA}", "Hi") as stream:
            first = next(iter(stream))
            assert first is not None
        # the pool has the connection back (or closed it): a new call gets served at once
        reply = client.chat(f"local:{LLAMA}", "again", timeout=5)
        assert reply.text
        pool = client.provider("local").http._transport._pool  # type: ignore[attr-defined]
        assert all(not c.is_idle() or c.is_available() for c in pool.connections)
        assert sum(1 for c in pool.connections if not c.is_idle()) == 0
    with pytest.raises(turnout.TurnoutError, match="not finished"):
        _ = stream.response


async def test_closing_an_async_stream_early_releases_the_connection(
    config: dict[str, Any], fake_vllm: FakeServer
) -> None:
    fake_vllm.enqueue(Reply(" ".join(["word"] * 200), chunks=200))
    async with AsyncClient(config=config) as client:
        async with client.stream(f"local:{LLAMA}", "Hi") as stream:
            async for _ in stream:
                break
        pool = client.provider("local").ahttp._transport._pool  # type: ignore[attr-defined]
        assert sum(1 for c in pool.connections if not c.is_idle()) == 0
        reply = await asyncio.wait_for(client.chat(f"local:{LLAMA}", "again"), 5)
        assert reply.text


def test_stream_is_lazy(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    with Client(config=config) as client:
        stream = client.stream(f"local:{LLAMA}", "Hi")
        assert fake_vllm.requests == []
        stream.close()
    assert fake_vllm.requests == []


def test_threads_share_one_client(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    results: list[str] = []
    with Client(config=config) as client:

        def work(i: int) -> None:
            results.append(client.chat(f"local:{LLAMA}", f"message {i}").text)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 16


async def test_concurrent_async_calls(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    async with AsyncClient(config=config) as client:
        replies = await asyncio.gather(*(client.chat(f"local:{LLAMA}", f"message {i}") for i in range(32)))
    assert len(replies) == 32 and all(r.provider == "local" for r in replies)


def test_finished_streams_give_their_connection_back(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    """A stream read to ``[DONE]`` is read to the end of its body, so the next call reuses the connection."""
    before = fake_vllm.connections_accepted
    with Client(config=config) as client:
        for i in range(5):
            fake_vllm.enqueue(Reply(f"reply {i}"))
            with client.stream(f"local:{LLAMA}", "Hi") as stream:
                assert "".join(c.text or "" for c in stream) == f"reply {i}"
    assert fake_vllm.connections_accepted - before == 1


async def test_finished_async_streams_give_their_connection_back(config: dict[str, Any], fake_vllm: FakeServer) -> None:
    before = fake_vllm.connections_accepted
    async with AsyncClient(config=config) as client:
        for i in range(5):
            fake_vllm.enqueue(Reply(f"reply {i}"))
            async with client.stream(f"local:{LLAMA}", "Hi") as stream:
                assert "".join([c.text or "" async for c in stream]) == f"reply {i}"
    assert fake_vllm.connections_accepted - before == 1
