"""`turnout.engine.chat_call.ChatCall`: the context pre-check, pricing, cut and abandoned streams, and resuming."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import AsyncClient, Client
from turnout.engine import CallFinished, StreamAbandoned
from turnout.errors import APIConnectionError, ContextWindowExceededError, ServerError, StreamInterruptedError
from turnout.options import VLLMOptions
from turnout.providers import register
from turnout.testing import FakeClock

from .conftest import Stub, stub_config
from .test_call import MODES, err, run

# --- the context pre-check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "counted"),
    [
        (["x" * 76, "y"], False),  # 77 bytes + 8 per message + max_tokens 7 = 100: surely fits a 100-token window
        (["x" * 77, "y"], True),
        (["é" * 38, "y"], False),  # 76 UTF-8 bytes
        (["é" * 38, "yy"], True),
    ],
)
def test_only_a_prompt_that_might_not_fit_is_counted(messages: list[str], counted: bool, clock: FakeClock) -> None:
    Stub.windows["a"], Stub.counts["a"] = 100, 1000  # a count skips the target
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": m} for i, m in enumerate(messages)]
    with Client(stub_config("a", "b"), clock=clock) as client:
        reply = client.chat("r", turns, max_tokens=7)
    assert reply.provider == ("b" if counted else "a")


@pytest.mark.parametrize(("count", "skipped"), [(10, True), (9, False)])
def test_without_max_tokens_one_output_token_must_fit(count: int, skipped: bool, clock: FakeClock) -> None:
    Stub.windows["a"], Stub.counts["a"] = 10, count
    with Client(stub_config("a"), clock=clock) as client:
        if not skipped:
            assert client.chat("r", "x" * 200).provider == "a"
            return
        with pytest.raises(ContextWindowExceededError) as info:
            client.chat("r", "x" * 200)
    assert (info.value.provider, info.value.model) == ("a", "m")
    assert info.value.message == (
        "skipped before sending: the prompt is 10 tokens and max_tokens is 0, more than the 10-token context window"
    )
    assert "a" not in Stub.sent


@pytest.mark.parametrize(("size", "counted"), [(76, False), (77, True)])
def test_a_message_without_text_counts_its_8_bytes(size: int, counted: bool, clock: FakeClock) -> None:
    """A turn with no text (content None) is 0 bytes + 8: 76 + 8 + 8 + max_tokens 8 = 100 fits a 100-token window."""
    Stub.windows["a"], Stub.counts["a"] = 100, 1000  # a count skips the target
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": "x" * size},
        {"role": "assistant", "content": None},
    ]
    with Client(stub_config("a", "b"), clock=clock) as client:
        reply = client.chat("r", turns, max_tokens=8)
    assert reply.provider == ("b" if counted else "a")


def test_an_unknown_count_never_skips(clock: FakeClock) -> None:
    Stub.windows["a"], Stub.counts["a"] = 10, None
    with Client(stub_config("a", "b"), clock=clock) as client:
        assert client.chat("r", "x" * 200).provider == "a"


# --- the reply ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_reply_carries_its_tags_only_when_given(mode: str, clock: FakeClock) -> None:
    assert run(stub_config("a"), mode, clock, tags={"team": "x"}).tags == {"team": "x"}
    assert run(stub_config("a"), mode, clock).tags is None


class TakesVLLMOptions(Stub):
    options_model = VLLMOptions


@pytest.mark.parametrize(("kind", "mode"), [(k, m) for k in ("chat", "stream") for m in MODES])
def test_a_reply_from_a_target_that_took_none_of_the_options_says_so(kind: str, mode: str, clock: FakeClock) -> None:
    """docs/provider-options.md: options of another kind are ignored, and the reply's warnings name the target."""
    register("engine-stub-vllm-options", TakesVLLMOptions)
    cfg = stub_config("a", "b")  # b takes VLLMOptions (the route accepts them); a, which answers, takes none
    cfg["providers"]["b"]["type"] = "engine-stub-vllm-options"
    reply = run(cfg, mode, clock, kind, provider_options=[VLLMOptions(top_k=20)])
    assert reply.provider == "a"
    assert reply.warnings == [
        "provider_options not applied: a:m (type 'engine-stub') takes no provider options, "
        "and the call gave only VLLMOptions"
    ]


class Answer(BaseModel):
    n: int


def test_a_reply_rejected_by_response_model_is_added_to_the_accepted_ones(clock: FakeClock) -> None:
    Stub.scripts["a"] = ["not json", '{"n": 1}']
    with Client(stub_config("a"), clock=clock) as client:
        reply = client.chat("r", "Hi", response_model=Answer)
    assert reply.parsed == Answer(n=1)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (20, 10)  # two replies of 10 + 5
    assert reply.cost is not None and reply.cost.total == Decimal(2 * (10 * 1 + 5 * 2)) / 1_000_000


# --- streams cut or left --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_stream_keeps_the_failure_it_wraps(mode: str, clock: FakeClock) -> None:
    cause = APIConnectionError("reset", provider="a", model="m", request_id="req-1")
    Stub.scripts["a"] = [["hello ", cause]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a"), mode, clock, kind="stream")
    exc = info.value
    assert exc.message == "stream failed after content was delivered: reset"
    assert (exc.partial_text, exc.provider, exc.model, exc.request_id) == ("hello ", "a", "m", "req-1")
    assert exc.__cause__ is cause and exc.after_content is True
    assert [a.outcome for a in exc.attempts] == ["APIConnectionError"] and exc.attempts == cause.attempts


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_interrupted_by_the_server_keeps_its_own_error(mode: str, clock: FakeClock) -> None:
    own = StreamInterruptedError("the server said: overloaded", provider="a", model="m", status_code=503)
    Stub.scripts["a"] = [["hello ", own]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a"), mode, clock, kind="stream")
    assert info.value is own
    assert (own.partial_text, own.after_content, own.status_code) == ("hello ", True, 503)
    assert [a.outcome for a in own.attempts] == ["StreamInterruptedError"]


def test_a_stream_left_early_is_paid_by_estimate(clock: FakeClock) -> None:
    Stub.scripts["a"] = [["héllo ", "world"]]
    seen: list[Any] = []
    with Client(stub_config("a"), clock=clock) as client:
        client.on(StreamAbandoned, seen.append)
        client.on(CallFinished, seen.append)
        with client.stream("r", "Hi") as stream:
            next(iter(stream))
    abandoned, finished = seen
    assert isinstance(abandoned, StreamAbandoned) and isinstance(finished, CallFinished)
    expected = turnout.Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11, estimated=True)  # 7 bytes / 4
    assert (abandoned.route, abandoned.provider, abandoned.model, abandoned.usage) == ("r", "a", "m", expected)
    assert abandoned.cost is not None and abandoned.cost.total == Decimal(9 * 1 + 2 * 2) / 1_000_000
    assert (abandoned.started, abandoned.first_chunk, abandoned.call_id) == (1000, 0, finished.call_id)
    assert (finished.usage, finished.cost, finished.cost_unknown) == (expected, abandoned.cost, False)


def test_a_stream_left_before_its_first_chunk_has_no_time_to_first_chunk(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's task is cancelled while the target is silent: abandoned, nothing came, so no time to first chunk.

    Async only: a sync caller cannot leave while its read blocks (a stream timeout ends it instead).
    """
    sent = threading.Event()

    async def astream(self: Stub, model: str, request: turnout.ChatRequest) -> AsyncIterator[turnout.ChatChunk]:
        sent.set()
        await asyncio.sleep(3600)
        yield turnout.ChatChunk(text="never")

    monkeypatch.setattr(Stub, "astream", astream)
    seen: list[StreamAbandoned] = []

    async def go() -> None:
        async with AsyncClient(stub_config("a"), clock=clock) as client:
            client.on(StreamAbandoned, seen.append)

            async def read() -> None:
                async with client.stream("r", "Hi") as stream:
                    async for _ in stream:
                        pass

            task = asyncio.create_task(read())
            while not sent.is_set():
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    [abandoned] = seen
    assert (abandoned.provider, abandoned.model, abandoned.started) == ("a", "m", clock.time)
    assert abandoned.first_chunk is None
    assert abandoned.usage.completion_tokens == 0 and abandoned.usage.estimated


# --- resuming a cut stream (resume = "continue") ---------------------------------------------------------


class Resumable(Stub):
    """A stub that can continue a cut answer: the continuation is the request with the partial text noted."""

    running: list[str] = []
    continued: list[tuple[str, str, int | None, int | None]] = []

    def with_running_usage(self, model: str, request: turnout.ChatRequest) -> turnout.ChatRequest:
        Resumable.running.append(self.name)
        return request

    def continuation(self, model: str, request: turnout.ChatRequest, partial: str) -> turnout.ChatRequest | None:
        Resumable.continued.append((self.name, partial, request.max_tokens, request.max_completion_tokens))
        return request


@pytest.fixture
def resumable() -> Iterator[type[Resumable]]:
    register("engine-stub-resumable", Resumable)
    Resumable.running, Resumable.continued = [], []
    yield Resumable


def _resume_config(*names: str, **route: Any) -> dict[str, Any]:
    cfg = stub_config(*names, resume="continue", **route)
    for name in names:
        cfg["providers"][name]["type"] = "engine-stub-resumable"
    return cfg


def test_a_cut_stream_is_continued_with_what_is_left_of_max_tokens(
    resumable: type[Resumable], clock: FakeClock
) -> None:
    used = turnout.Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12)
    Stub.scripts["a"] = [["hello ", turnout.ChatChunk(usage=used), err(APIConnectionError)], ["world"]]
    with Client(_resume_config("a"), clock=clock) as client, client.stream("r", "Hi", max_tokens=10) as stream:
        reply = stream.get_response()
    assert reply.text == "hello world"
    assert resumable.continued == [("a", "hello ", 7, None)]
    assert resumable.running == ["a", "a"]


def test_max_completion_tokens_is_shortened_too(resumable: type[Resumable], clock: FakeClock) -> None:
    used = turnout.Usage(prompt_tokens=9, completion_tokens=3, total_tokens=12)
    Stub.scripts["a"] = [["hello ", turnout.ChatChunk(usage=used), err(APIConnectionError)], ["world"]]
    with (
        Client(_resume_config("a"), clock=clock) as client,
        client.stream("r", "Hi", max_tokens=10, max_completion_tokens=10) as stream,
    ):
        stream.get_response()
    assert resumable.continued == [("a", "hello ", 7, 7)]


def test_no_continuation_when_max_tokens_is_spent(resumable: type[Resumable], clock: FakeClock) -> None:
    used = turnout.Usage(prompt_tokens=9, completion_tokens=1, total_tokens=10)
    Stub.scripts["a"] = [["hello ", turnout.ChatChunk(usage=used), err(APIConnectionError)]]
    with (
        pytest.raises(StreamInterruptedError),
        Client(_resume_config("a"), clock=clock) as client,
        client.stream("r", "Hi", max_tokens=1) as stream,
    ):
        stream.get_response()
    assert resumable.continued == []


def test_a_stream_is_sent_as_is_without_resume_or_budget(resumable: type[Resumable], clock: FakeClock) -> None:
    cfg = _resume_config("a")
    cfg["models"]["r"]["resume"] = "off"
    with Client(cfg, clock=clock) as client, client.stream("r", "Hi") as stream:
        stream.get_response()
    assert resumable.running == []
    cfg["budget"] = {"max_usd": 1}
    with Client(cfg, clock=clock) as client, client.stream("r", "Hi", max_tokens=5) as stream:
        stream.get_response()
    assert resumable.running == ["a"]


@pytest.mark.parametrize(("across", "continuers"), [(False, ["a"]), (True, ["a", "c"])])
def test_who_may_continue(across: bool, continuers: list[str], resumable: type[Resumable], clock: FakeClock) -> None:
    """This target, then (resume_across_targets) the ones after it in the route, never the ones before."""
    Stub.scripts["z"] = [err(APIConnectionError)]
    Stub.scripts["a"] = [["hello ", err(APIConnectionError)], err(APIConnectionError)]
    Stub.scripts["c"] = [["world"]]
    cfg = _resume_config("z", "a", "c", resume_across_targets=across, retry={"max_attempts": 1})
    with Client(cfg, clock=clock) as client, client.stream("r", "Hi") as stream:
        try:
            stream.get_response()
        except StreamInterruptedError:
            assert not across
    assert [name for name, *_ in resumable.continued] == continuers


def test_without_max_tokens_a_prompt_that_fills_the_window_is_not_counted(clock: FakeClock) -> None:
    """ "Hi" is 2 bytes + 8: it surely fits a 10-token window when no max_tokens asks for more."""
    Stub.windows["a"], Stub.counts["a"] = 10, 1000  # a count skips the target
    with Client(stub_config("a", "b"), clock=clock) as client:
        assert client.chat("r", "Hi").provider == "a"


@pytest.mark.parametrize(("spare", "refused"), [(0, False), (-1, True)])
def test_tokens_per_minute_counts_no_output_without_a_cap(spare: int, refused: bool, clock: FakeClock) -> None:
    cfg = stub_config("a")
    cfg["limits"] = {"a:m": {"tokens_per_minute": 15 + 9 + spare, "max_wait": 0}}  # the first reply's 15, then "Hi"
    with Client(cfg, clock=clock) as client:
        client.chat("r", "Hi")
        try:
            client.chat("r", "Hi")
        except turnout.LocalRateLimitError:
            assert refused
        else:
            assert not refused


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_cut_by_a_status_keeps_it(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [["hello ", ServerError("overloaded", provider="a", model="m", status_code=503)]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a"), mode, clock, kind="stream")
    assert info.value.status_code == 503


def _cut_and_continue(chunks: list[Any], clock: FakeClock, **kwargs: Any) -> bool:
    """Stream a piece that is cut after ``chunks``; True when the answer was continued (and finished)."""
    Stub.scripts["a"] = [[*chunks, err(APIConnectionError)], ["world"]]
    try:
        with Client(_resume_config("a"), clock=clock) as client, client.stream("r", "Hi", **kwargs) as stream:
            stream.get_response()
    except StreamInterruptedError:
        return False
    return True


@pytest.mark.parametrize(
    ("chunks", "kwargs"),
    [
        pytest.param(
            ["hi ", turnout.ChatChunk(tool_calls=[turnout.types.ToolCallDelta(index=0, id="c1", name="f")])],
            {},
            id="inside a tool call",
        ),
        pytest.param(["one ", turnout.ChatChunk(text="two ", index=1)], {}, id="two choices"),
        pytest.param(["hi "], {"n": 2}, id="n=2"),
    ],
)
def test_what_is_never_continued(
    chunks: list[Any], kwargs: dict[str, Any], resumable: type[Resumable], clock: FakeClock
) -> None:
    """No continuation inside a tool call or for several choices (docs/streaming.md)."""
    assert _cut_and_continue(chunks, clock, **kwargs) is False
    assert resumable.continued == []


def test_a_stream_cut_before_any_text_is_sent_again_not_continued(resumable: type[Resumable], clock: FakeClock) -> None:
    assert _cut_and_continue([turnout.ChatChunk(model="m")], clock) is True
    assert resumable.continued == []


def test_a_plain_cut_piece_is_continued(resumable: type[Resumable], clock: FakeClock) -> None:
    """The counterpart of the cases above: one choice, some text, no tool call."""
    assert _cut_and_continue(["hello "], clock, n=1) is True
    assert resumable.continued == [("a", "hello ", None, None)]


@pytest.mark.parametrize(
    ("completion_tokens", "left"),
    [(None, 10), (9, 1)],  # an unknown count takes nothing off; one token left still continues
)
def test_what_is_left_of_max_tokens(
    completion_tokens: int | None, left: int, resumable: type[Resumable], clock: FakeClock
) -> None:
    used = turnout.Usage(prompt_tokens=9, completion_tokens=completion_tokens)
    assert _cut_and_continue(["hello ", turnout.ChatChunk(usage=used)], clock, max_tokens=10) is True
    assert resumable.continued == [("a", "hello ", left, None)]


def test_a_cut_continuation_that_reported_usage_is_paid(resumable: type[Resumable], clock: FakeClock) -> None:
    """A continuation cut after the server's usage but before any text still paid for its prompt."""
    first = turnout.Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11)
    second = turnout.Usage(prompt_tokens=11, completion_tokens=0, total_tokens=11)
    Stub.scripts["a"] = [
        ["hello ", turnout.ChatChunk(usage=first), err(APIConnectionError)],
        [turnout.ChatChunk(usage=second), err(APIConnectionError)],
        ["world"],
    ]
    finished: list[CallFinished] = []
    with Client(_resume_config("a"), clock=clock) as client:
        client.on(CallFinished, finished.append)
        with client.stream("r", "Hi") as stream:
            reply = stream.get_response()
    assert reply.text == "hello world"
    assert finished[0].usage is not None
    assert (finished[0].usage.prompt_tokens, finished[0].usage.completion_tokens) == (
        9 + 11 + 1,
        2 + 0 + 1,
    )  # + "world"
