"""The ``huggingface`` provider's endpoint helpers (``/info``, ``/health``, ``/tokenize``), the
context-window pre-check hooks, and connection handling, over HTTP to `FakeTGIServer`."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import turnout
from turnout import Client
from turnout.providers.huggingface import EndpointInfo, HuggingFaceProvider
from turnout.testing import FakeServer, FakeTGIServer, Reply

from ..conftest import LLAMA, Runner
from .conftest import hf_config

TARGET = f"hf:{LLAMA}"


@contextmanager
def provider(config: dict[str, Any]) -> Iterator[HuggingFaceProvider]:
    with Client(config=config) as client:
        found = client.provider("hf")
        assert isinstance(found, HuggingFaceProvider)
        yield found


# -- endpoint helpers and the context-window pre-check ---------------------------------------------------


def test_info_is_typed(fake_tgi: FakeTGIServer) -> None:
    with provider(hf_config(fake_tgi, scale_up_timeout=60)) as hf:
        info = hf.info()
        assert isinstance(info, EndpointInfo)
        assert (info.model_id, info.max_input_tokens, info.max_total_tokens) == (LLAMA, 4095, 4096)
        assert info.version == "3.3.6" and info.model_extra == {"validation_workers": 2}
        assert asyncio.run(hf.ainfo()) == info
    assert fake_tgi.requests[0].headers["x-scale-up-timeout"] == "60"


def test_the_helpers_share_the_process_tls_context(
    fake_tgi: FakeTGIServer, tls_contexts_made: list[ssl.SSLContext]
) -> None:
    # the async helper makes a short-lived pool per request: each used to read the CA bundle again
    with provider(hf_config(fake_tgi)) as hf:
        assert asyncio.run(hf.ainfo()) == asyncio.run(hf.ainfo()) == hf.info()
    assert len(tls_contexts_made) == 1 and len(fake_tgi.requests) == 3


def test_info_reads_the_old_max_input_length() -> None:
    info = EndpointInfo.model_validate({"model_id": "m", "max_input_length": 1023, "max_total_tokens": 1024})
    assert info.max_input_tokens == 1023


def test_health_and_token_count(fake_tgi: FakeTGIServer) -> None:
    with provider(hf_config(fake_tgi, mode="text")) as hf:
        assert hf.health()
        fake_tgi.healthy = False
        assert not hf.health()
        # <s> [ INST ] Hi there [ / INST ]: BOS added by the server, as for generation
        assert hf.count_prompt_tokens("Hi there") == 10
        assert asyncio.run(hf.acount_prompt_tokens("Hi there")) == 10
    assert fake_tgi.requests[-1].json == {"inputs": "[INST] Hi there [/INST]"}


def test_context_window_is_asked_once(fake_tgi: FakeTGIServer) -> None:
    with provider(hf_config(fake_tgi)) as hf:
        assert hf.context_window(LLAMA) == 4096 and hf.context_window(LLAMA) == 4096
        assert asyncio.run(hf.acontext_window(LLAMA)) == 4096
    assert [r.path for r in fake_tgi.requests] == ["/info"]


def test_context_window_of_a_server_without_info_is_none() -> None:
    with FakeServer(flavor="vllm", models=[LLAMA]) as vllm:
        with provider({"providers": {"hf": {"type": "huggingface", "base_url": vllm.base_url}}}) as hf:
            assert hf.context_window(LLAMA) is None and hf.context_window(LLAMA) is None
            assert asyncio.run(hf.acontext_window(LLAMA)) is None
            request = turnout.ChatRequest(messages=[turnout.Message(role="user", content="x")])
            assert hf.count_tokens(LLAMA, request) is None
        assert len(vllm.requests) == 1  # a 404 is remembered


def test_router_has_no_endpoint_helpers() -> None:
    config = {"providers": {"hf": {"type": "huggingface", "provider": "together", "api_key": "hf_x"}}}
    with provider(config) as hf:
        assert hf.context_window(LLAMA) is None
        with pytest.raises(turnout.ConfigError, match="set base_url"):
            hf.info()


def test_precheck_skips_a_text_mode_call_that_cannot_fit(runner: Runner) -> None:
    with FakeTGIServer(LLAMA, max_input_tokens=31, max_total_tokens=32) as tgi:
        with pytest.raises(turnout.ContextWindowExceededError, match="skipped before sending"):
            runner.chat(hf_config(tgi, mode="text", api_key=None), TARGET, "word " * 20, max_tokens=16)
        assert [r.path for r in tgi.requests] == ["/info", "/tokenize"]


# -- connections and concurrency -------------------------------------------------------------------------


def test_closing_a_stream_early_lets_the_next_call_through(fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Reply(" ".join(["word"] * 200), chunk_delay=0.001))
    with Client(config=hf_config(fake_tgi, mode="text")) as client:
        with client.stream(TARGET, "Hi") as stream:
            assert next(iter(stream)).text == "word"
        assert client.chat(TARGET, "again", timeout=5).text == "again"


async def test_closing_an_async_stream_early(fake_tgi: FakeTGIServer) -> None:
    fake_tgi.enqueue(Reply(" ".join(["word"] * 200), chunk_delay=0.001))
    async with turnout.AsyncClient(config=hf_config(fake_tgi)) as client:
        async with client.stream(TARGET, "Hi") as stream:
            async for _ in stream:
                break
        reply = await asyncio.wait_for(client.chat(TARGET, "again"), 5)
    assert reply.text == "again"


def test_threads_share_one_provider(fake_tgi: FakeTGIServer) -> None:
    results: list[str] = []
    with Client(config=hf_config(fake_tgi)) as client:
        threads = [
            threading.Thread(target=lambda i=i: results.append(client.chat(TARGET, f"message {i}").text))
            for i in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == sorted(f"message {i}" for i in range(12))


async def test_concurrent_async_calls_share_one_client(fake_tgi: FakeTGIServer) -> None:
    async with turnout.AsyncClient(config=hf_config(fake_tgi)) as client:
        replies = await asyncio.gather(*(client.chat(TARGET, f"message {i}") for i in range(16)))
    assert [r.text for r in replies] == [f"message {i}" for i in range(16)]
