"""Streams that survive (issue 15): first-token and stall timeouts, and resuming a cut answer.

Every test runs a real client against the fake servers over HTTP on 127.0.0.1, sync and async.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply, ToolCallSpec, count_chat_tokens

MODES = ["sync", "async"]
WORDS = "one two three four five six"


def config(*servers: tuple[str, str, FakeServer], **route: Any) -> dict[str, Any]:
    """A route ``m`` over ``(name, type, server)`` targets (model ``llama``), priced, no ledger."""
    providers = {name: {"type": kind, "base_url": server.base_url} for name, kind, server in servers}
    targets = [f"{name}:llama" for name, _, _ in servers]
    return {
        "providers": providers,
        "models": {"m": {"targets": targets, **route}},
        "prices": {t: {"input_per_million": 1, "output_per_million": 1} for t in targets},
        "ledger": {"enabled": False},
    }


def stream(cfg: dict[str, Any], mode: str, pause: float = 0.0, **kwargs: Any) -> tuple[str, turnout.ChatResponse]:
    """Stream route ``m``; return the text the caller saw, chunk by chunk, and the final reply."""
    if mode == "sync":
        with Client(cfg) as client, client.stream("m", "Hi", **kwargs) as s:
            seen = []
            for chunk in s:
                seen.append(chunk.text or "")
                time.sleep(pause)
            return "".join(seen), s.get_response()

    async def go() -> tuple[str, turnout.ChatResponse]:
        async with AsyncClient(cfg) as client, client.stream("m", "Hi", **kwargs) as s:
            seen = []
            async for chunk in s:
                seen.append(chunk.text or "")
                await asyncio.sleep(pause)
            return "".join(seen), await s.get_response()

    return asyncio.run(go())


@pytest.fixture
def vllm() -> Any:
    with FakeServer(flavor="vllm", models=["llama"]) as server:
        yield server


# --- timeouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_first_token_timeout_retries_a_stream_without_content(vllm: FakeServer, mode: str) -> None:
    """Headers and the role chunk came, then nothing: past first_token_timeout the attempt is retried."""
    vllm.enqueue(Fault.stall_stream(0, 5.0, reply=Reply("late")), Reply("fresh answer"))
    started = time.monotonic()
    text, reply = stream(config(("v", "vllm", vllm), first_token_timeout=0.3, retry={"initial_delay": 0}), mode)
    assert time.monotonic() - started < 3.0
    assert text == reply.text == "fresh answer"
    assert [a.outcome for a in reply.attempts] == ["StreamTimeoutError", "ok"]


@pytest.mark.parametrize("mode", MODES)
def test_first_token_timeout_bounds_the_wait_for_headers(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.slow(5.0, Reply("late")), Reply("fresh answer"))
    started = time.monotonic()
    _, reply = stream(config(("v", "vllm", vllm), first_token_timeout=0.3, retry={"initial_delay": 0}), mode)
    assert time.monotonic() - started < 3.0
    assert reply.text == "fresh answer"
    assert isinstance(reply.attempts[0].outcome, str) and "Timeout" in reply.attempts[0].outcome


@pytest.mark.parametrize("mode", MODES)
def test_stall_timeout_interrupts_a_stream_gone_quiet(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.stall_stream(2, 5.0, reply=Reply(WORDS)))
    started = time.monotonic()
    with pytest.raises(turnout.StreamInterruptedError) as info:
        stream(config(("v", "vllm", vllm), stall_timeout=0.3), mode)
    assert time.monotonic() - started < 3.0
    assert isinstance(info.value.__cause__, turnout.StreamTimeoutError)
    assert "stall_timeout" in str(info.value.__cause__)
    assert info.value.partial_text == "one two"
    assert len(vllm.chat_requests) == 1  # resume is off: never retried after content
    assert vllm.chat_requests[0].json["stream_options"] == {"include_usage": True}  # no running counts needed


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_drip_and_a_slow_reader_do_not_stall(vllm: FakeServer, mode: str) -> None:
    """Chunks every 0.1 s under a 0.5 s stall timeout; a caller's 0.6 s per chunk is not the server's silence."""
    vllm.enqueue(Reply(WORDS, chunk_delay=0.1), Reply("a b c"))
    cfg = config(("v", "vllm", vllm), stall_timeout=0.5, first_token_timeout=0.5)
    assert stream(cfg, mode)[1].text == WORDS
    assert stream(cfg, mode, pause=0.6)[1].text == "a b c"


# --- error events inside a 200 stream, classified by their code or type --------------------------


@pytest.mark.parametrize("mode", MODES)
def test_error_events_are_typed_by_code_and_type(mode: str) -> None:
    """OpenAI's in-stream rate limit says no status: its code makes it a 429, retried; a context
    overflow falls back; after content the typed error is the cause, with the server's message."""
    rate: dict[str, Any] = {"error_type": "requests", "error_code": "rate_limit_exceeded"}
    with FakeServer(flavor="openai") as a, FakeServer(flavor="openai") as b:
        cfg = config(("a", "openai-compatible", a), ("b", "openai-compatible", b), retry={"initial_delay": 0})
        a.enqueue(Fault.stream_error(0, "Rate limit reached for requests", **rate), Reply("fine"))
        reply = stream(cfg, mode)[1]
        assert [x.outcome for x in reply.attempts] == ["RateLimitError", "ok"]
        assert reply.attempts[0].error == "Rate limit reached for requests"
        long: dict[str, Any] = {"error_type": "invalid_request_error", "error_code": "context_length_exceeded"}
        a.enqueue(Fault.stream_error(0, "This model's maximum context length is 8 tokens", **long))
        b.enqueue(Reply("elsewhere"))
        reply = stream(cfg, mode)[1]
        assert (reply.provider, reply.attempts[0].outcome) == ("b", "ContextWindowExceededError")
        a.enqueue(Fault.stream_error(2, "Rate limit reached for requests", reply=Reply(WORDS), **rate))
        with pytest.raises(turnout.StreamInterruptedError) as info:
            stream(cfg, mode)
        assert isinstance(info.value.__cause__, turnout.RateLimitError)
        assert info.value.__cause__.message == "Rate limit reached for requests"


# --- resume = "continue" -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_stream_is_continued_on_vllm(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)), Reply(WORDS))
    cfg = config(("v", "vllm", vllm), resume="continue", retry={"initial_delay": 0})
    text, reply = stream(cfg, mode, max_tokens=50)
    assert text == reply.text == WORDS  # the caller saw one answer, without a repeat
    first, second = vllm.chat_requests
    assert second.json["continue_final_message"] is True and second.json["add_generation_prompt"] is False
    assert second.json["messages"][-1] == {"role": "assistant", "content": "one two"}
    assert [a.outcome for a in reply.attempts] == ["StreamInterruptedError", "ok"]
    # both requests asked for running counts, so the cut piece is billed from the server's count at the cut
    assert first.json["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert not reply.usage.estimated and reply.cost is not None and not reply.cost.estimated
    assert reply.usage.completion_tokens == 2 + 4
    assert reply.usage.prompt_tokens == count_chat_tokens(first.json["messages"]) + count_chat_tokens(
        second.json["messages"]
    )
    assert second.json["max_tokens"] == 50 - 2  # what is left of max_tokens


@pytest.mark.parametrize("mode", MODES)
def test_the_budget_and_the_ledger_see_both_pieces(
    vllm: FakeServer, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)), Reply(WORDS))
    cfg = config(("v", "vllm", vllm), resume="continue", retry={"initial_delay": 0})
    cfg["budget"] = {"max_usd": 100, "period": "day"}
    monkeypatch.setenv("TURNOUT_LEDGER", str(tmp_path / "ledger.sqlite3"))
    if mode == "sync":
        with Client(cfg) as client:
            with client.stream("m", "Hi", max_tokens=50) as s:
                reply = s.get_response()
            assert client.budgets is not None
            spent = client.budgets.status()[0].spent
    else:

        async def go() -> tuple[turnout.ChatResponse, Decimal]:
            async with AsyncClient(cfg) as client:
                async with client.stream("m", "Hi", max_tokens=50) as s:
                    reply = await s.get_response()
                assert client.budgets is not None
                return reply, client.budgets.status()[0].spent

        reply, spent = asyncio.run(go())  # type: ignore[assignment]
    assert reply.cost is not None and spent == reply.cost.total > 0
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        [(attempts, cost, tokens)] = db.execute("SELECT attempts, cost, completion_tokens FROM calls").fetchall()
    assert (attempts, Decimal(cost), tokens) == (2, reply.cost.total, 6)


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_counts_under_the_targets_rate_limit(vllm: FakeServer, mode: str) -> None:
    """A continuation is a request like any other: with room for one request a minute and no
    wait allowed, the cut answer is not continued (nothing more is sent) and the stream is
    interrupted, with the refusal as its cause; with room for two, it is continued."""
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)))
    cfg = config(("v", "vllm", vllm), resume="continue", retry={"initial_delay": 0})
    cfg["limits"] = {"v:llama": {"requests_per_minute": 1, "max_wait": 0}}
    with pytest.raises(turnout.StreamInterruptedError) as info:
        stream(cfg, mode)
    assert isinstance(info.value.__cause__, turnout.LocalRateLimitError)
    assert info.value.partial_text == "one two"
    assert len(vllm.chat_requests) == 1
    cfg["limits"] = {"v:llama": {"requests_per_minute": 2, "max_wait": 0}}
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)), Reply(WORDS))
    assert stream(cfg, mode)[1].text == WORDS
    assert len(vllm.chat_requests) == 3


@pytest.mark.parametrize("mode", MODES)
def test_a_stalled_stream_is_continued(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.stall_stream(3, 5.0, reply=Reply(WORDS)), Reply(WORDS))
    cfg = config(("v", "vllm", vllm), resume="continue", stall_timeout=0.3, retry={"initial_delay": 0})
    text, reply = stream(cfg, mode)
    assert text == reply.text == WORDS
    assert [a.outcome for a in reply.attempts] == ["StreamTimeoutError", "ok"]


@pytest.mark.parametrize("mode", MODES)
def test_resume_never_continues_a_tool_call(vllm: FakeServer, mode: str) -> None:
    call = ToolCallSpec("get_weather", '{"city": "Paris", "unit": "celsius"}')
    vllm.enqueue(Fault.truncate_stream(1, reply=Reply(tool_calls=[call])))
    with pytest.raises(turnout.StreamInterruptedError):
        stream(
            config(("v", "vllm", vllm), resume="continue"),
            mode,
            tools=[{"type": "function", "function": {"name": "get_weather"}}],
        )
    assert len(vllm.chat_requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_openai_compatible_continues_only_when_declared(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)))
    cfg = config(("c", "openai-compatible", vllm), resume="continue", retry={"initial_delay": 0})
    with pytest.raises(turnout.StreamInterruptedError):
        stream(cfg, mode)
    assert len(vllm.chat_requests) == 1
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)), Reply(WORDS))
    cfg["providers"]["c"]["continue_final_message"] = True
    assert stream(cfg, mode)[1].text == WORDS
    assert vllm.chat_requests[-1].json["continue_final_message"] is True


@pytest.mark.parametrize("mode", MODES)
def test_resume_across_targets_only_when_asked(mode: str) -> None:
    with FakeServer(flavor="vllm", models=["llama"]) as a, FakeServer(flavor="vllm", models=["llama"]) as b:
        route = {"resume": "continue", "retry": {"max_attempts": 1}}
        a.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)))
        with pytest.raises(turnout.StreamInterruptedError) as info:
            stream(config(("a", "vllm", a), ("b", "vllm", b), **route), mode)
        assert b.chat_requests == []
        assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)  # what cut it, not itself
        a.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)))
        b.enqueue(Reply(WORDS))
        text, reply = stream(config(("a", "vllm", a), ("b", "vllm", b), resume_across_targets=True, **route), mode)
        assert text == reply.text == WORDS
        assert [(x.provider, x.outcome) for x in reply.attempts] == [("a", "StreamInterruptedError"), ("b", "ok")]
        assert b.chat_requests[0].json["continue_final_message"] is True


def test_fake_vllm_refuses_both_generation_prompts(vllm: FakeServer) -> None:
    body = {
        "model": "llama",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}],
        "continue_final_message": True,
        "add_generation_prompt": True,
    }
    answer = httpx2.post(vllm.base_url + "/chat/completions", json=body)
    assert answer.status_code == 400
    assert "Cannot set both `continue_final_message` and `add_generation_prompt` to True." in answer.text


# --- TGI text mode (huggingface provider over huggingface_hub) ---------------------------------

LLAMA = "meta-llama/Llama-2-7b-chat-hf"


def tgi_config(server: FakeTGIServer, **route: Any) -> dict[str, Any]:
    return {
        "providers": {"hf": {"type": "huggingface", "base_url": server.url, "mode": "text"}},
        "models": {"m": {"targets": [f"hf:{LLAMA}"], "retry": {"initial_delay": 0}, **route}},
        "prices": {f"hf:{LLAMA}": {"input_per_million": 1, "output_per_million": 1}},
        "ledger": {"enabled": False},
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "fault",
    [
        Fault.truncate_stream(2, reply=Reply(WORDS)),
        Fault.end_stream(2, reply=Reply(WORDS)),
        Fault.stream_error(2, "overloaded", 503, reply=Reply(WORDS)),
    ],
    ids=["cut", "ended", "error-event"],
)
def test_tgi_text_mode_continues_the_rendered_prompt(mode: str, fault: Fault) -> None:
    with FakeTGIServer(LLAMA) as tgi:
        tgi.enqueue(fault, Reply(WORDS))
        text, reply = stream(tgi_config(tgi, resume="continue"), mode, max_tokens=20)
        assert text == reply.text == WORDS
        first, second = (r.json for r in tgi.generate_requests)
        assert second["inputs"] == first["inputs"] + " one two"  # the Llama 2 prompt, then the answer so far
        assert second["parameters"]["max_new_tokens"] == 20 - 2


@pytest.mark.parametrize("mode", MODES)
def test_tgi_stall_timeout(mode: str) -> None:
    """Async: the stall is cut at 0.3 s. Sync: huggingface_hub's read cannot be interrupted, so the
    timeout is seen when the late chunk arrives (1 s), and the stream is still interrupted."""
    with FakeTGIServer(LLAMA) as tgi:
        tgi.enqueue(Fault.stall_stream(2, 1.0, reply=Reply(WORDS)))
        started = time.monotonic()
        with pytest.raises(turnout.StreamInterruptedError) as info:
            stream(tgi_config(tgi, stall_timeout=0.3), mode)
        assert isinstance(info.value.__cause__, turnout.StreamTimeoutError)
        assert time.monotonic() - started < (0.9 if mode == "async" else 3.0)


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        ({"stall_timeout": 0}, "stall_timeout"),
        ({"first_token_timeout": -1}, "first_token_timeout"),
        ({"resume": "yes"}, "resume"),
        ({"resume_across_targets": "maybe"}, "resume_across_targets"),
    ],
)
def test_stream_settings_are_checked_at_load(vllm: FakeServer, route: dict[str, Any], fragment: str) -> None:
    with pytest.raises(turnout.ConfigError, match=rf"models\.m\.{fragment}"):
        Client(config(("v", "vllm", vllm), **route))


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_is_retried_and_a_refused_one_costs_nothing(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)), Fault.server_error(503), Reply(WORDS))
    cfg = config(("v", "vllm", vllm), resume="continue", retry={"initial_delay": 0})
    text, reply = stream(cfg, mode, max_tokens=50)
    assert text == reply.text == WORDS
    assert [a.outcome for a in reply.attempts] == ["StreamInterruptedError", "ServerError", "ok"]
    assert reply.usage.completion_tokens == 2 + 4  # the 503 generated nothing and is not billed
    assert [r.json.get("continue_final_message") for r in vllm.chat_requests] == [None, True, True]


@pytest.mark.parametrize("mode", MODES)
def test_continuations_stop_when_the_retries_are_spent(vllm: FakeServer, mode: str) -> None:
    vllm.enqueue(*[Fault.truncate_stream(1, reply=Reply(WORDS))] * 2)
    cfg = config(("v", "vllm", vllm), resume="continue", retry={"initial_delay": 0, "max_attempts": 2})
    with pytest.raises(turnout.StreamInterruptedError) as info:
        stream(cfg, mode)
    assert info.value.partial_text == "one two"  # both pieces reached the caller
    assert len(vllm.chat_requests) == 2


@pytest.mark.parametrize("mode", MODES)
def test_openai_is_never_asked_to_continue(mode: str) -> None:
    with FakeServer(flavor="openai") as server:
        server.enqueue(Fault.truncate_stream(2, reply=Reply(WORDS)))
        cfg = config(("o", "openai", server), resume="continue", resume_across_targets=True)
        cfg["providers"]["o"]["api_key"] = "sk-test"
        with pytest.raises(turnout.StreamInterruptedError):
            stream(cfg, mode)
        assert len(server.chat_requests) == 1
